"""The embedded search index is one SQLite file that outlives the process."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelplane.backends import make_search
from reelplane.ports.search import UserDoc, VideoDoc
from reelplane.ports.search_query import parse_query
from reelplane.settings import Settings

pytestmark = pytest.mark.embedded


async def test_the_default_index_file_is_under_the_working_directory_and_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()  # sqlite:///.reelplane/search.db: relative, as SQLAlchemy reads it
    index = make_search(settings)
    await index.ensure_indices()
    await index.upsert_videos([VideoDoc("v1", "u1", "ada", "dance all night", ("fyp",), 1)])
    await index.upsert_users([UserDoc("u1", "ada_lovelace", "Ada Lovelace", 3)])
    await index.close()
    assert (tmp_path / ".reelplane" / "search.db").is_file()

    reopened = make_search(settings)
    await reopened.ensure_indices()
    try:
        page = await reopened.search_videos(parse_query("danc"), limit=5, now_ms=2)
        assert [s.item.video_id for s in page.items] == ["v1"]
        users = await reopened.search_users(parse_query("lovel"), limit=5)
        assert [s.item.handle for s in users.items] == ["ada_lovelace"]
    finally:
        await reopened.close()


async def test_an_empty_sqlite_url_keeps_the_index_in_memory(tmp_path: Path) -> None:
    index = make_search(Settings(search_url="sqlite://"))
    await index.ensure_indices()
    await index.upsert_videos([VideoDoc("v1", "u1", "ada", "dance", (), 1)])
    page = await index.search_videos(parse_query("dance"), limit=5, now_ms=2)
    assert len(page.items) == 1
    await index.close()
