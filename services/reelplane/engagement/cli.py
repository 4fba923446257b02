"""`reelplane counters ...`: repair the cached counters from the source of truth."""

from __future__ import annotations

import asyncio

import click

from reelplane.clitools import one_line_errors
from reelplane.settings import load_settings


@click.group()
def counters() -> None:
    """Likes, comments and views counters kept in the cache."""


@counters.command("repair")
@click.option("--video", "video_ids", multiple=True, help="Only these video ids (repeatable).")
@one_line_errors
def repair(video_ids: tuple[str, ...]) -> None:
    """Recompute counters from the relational store and overwrite the cache."""
    from reelplane.backends import open_backends
    from reelplane.engagement.counters import repair_counters

    async def go() -> int:
        backends = await open_backends(load_settings())
        try:
            return await repair_counters(backends, list(video_ids) or None)
        finally:
            await backends.close()

    fixed = asyncio.run(go())
    click.echo(f"reelplane: counters repaired ({fixed} differed from the source of truth)")
