"""`reelplane search ...`: maintain the search index."""

from __future__ import annotations

import asyncio

import click

from reelplane.clitools import one_line_errors
from reelplane.settings import load_settings


@click.group("search")
def search_group() -> None:
    """The search index (REELPLANE_SEARCH_URL)."""


@search_group.command("reindex")
@one_line_errors
def reindex() -> None:
    """Write every ready video and every user to the index (a backfill; the
    indexer keeps it current from then on). Safe to run while it serves."""
    from reelplane.backends import open_backends, open_search
    from reelplane.search.indexer import reindex_all

    async def go() -> tuple[int, int]:
        settings = load_settings()
        backends = await open_backends(settings)
        try:
            index = await open_search(settings)
            try:
                return await reindex_all(backends, index)
            finally:
                await index.close()
        finally:
            await backends.close()

    videos, users = asyncio.run(go())
    click.echo(f"reelplane: search index rebuilt ({videos} videos, {users} users)")
