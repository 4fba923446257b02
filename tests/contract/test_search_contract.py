"""The search port's contract, run on SQLite FTS5 and on OpenSearch."""

from __future__ import annotations

import asyncio
import time

from reelplane.ports.search import Position, SearchIndex, UserDoc, VideoDoc
from reelplane.ports.search_query import parse_query

NOW = 1_800_000_000_000  # a fixed ranking clock (ms)
DAY_MS = 24 * 3600 * 1000


def video(
    vid: str,
    caption: str,
    tags: tuple[str, ...] = (),
    *,
    handle: str = "ada",
    likes: int = 0,
    age_days: float = 0,
) -> VideoDoc:
    return VideoDoc(
        video_id=vid,
        owner_id=f"owner-{handle}",
        handle=handle,
        caption=caption,
        hashtags=tags,
        ready_at_ms=NOW - int(age_days * DAY_MS),
        likes=likes,
    )


async def found(index: SearchIndex, q: str, limit: int = 50) -> list[str]:
    page = await index.search_videos(parse_query(q), limit=limit, now_ms=NOW)
    return [s.item.video_id for s in page.items]


async def found_users(index: SearchIndex, q: str) -> list[str]:
    page = await index.search_users(parse_query(q), limit=50)
    return [s.item.handle for s in page.items]


CATALOGUE = [
    video("v1", "Café dance-off tonight", ("fyp", "dance")),
    video("v2", "cooking pasta at home", ("food",), handle="bob"),
    video("v3", "Dancing in the rain", ("dance", "rain")),
    video("v4", "sunset timelapse", ("fyp", "nature"), handle="bob"),
]
USERS = [
    UserDoc("u1", "ada_lovelace", "Ada Lovelace", 100),
    UserDoc("u2", "bob", "Bobby Tables", 5),
    UserDoc("u3", "adam", "Adam Smith", 1),
    UserDoc("u4", "ada_byron", "Ada Byron", 1),
]


async def seeded(index: SearchIndex) -> SearchIndex:
    await index.upsert_videos(CATALOGUE)
    await index.upsert_users(USERS)
    await index.refresh()
    return index


async def test_typed_prefix_finds_videos_and_users(search: SearchIndex) -> None:
    await seeded(search)
    assert set(await found(search, "danc")) == {"v1", "v3"}
    assert await found(search, "cafe dance-o") == ["v1"]  # accents folded, last word a prefix
    assert await found(search, "sunset time") == ["v4"]
    assert await found_users(search, "lovel") == ["ada_lovelace"]
    assert await found_users(search, "ada_l") == ["ada_lovelace"]
    assert "bob" in await found_users(search, "bobby t")


async def test_every_word_must_match(search: SearchIndex) -> None:
    await seeded(search)
    assert await found(search, "dance pasta") == []
    assert await found(search, "pasta home ") == ["v2"]


async def test_a_small_typo_is_tolerated(search: SearchIndex) -> None:
    await seeded(search)
    assert "v2" in await found(search, "psata ")  # two letters swapped
    assert "v4" in await found(search, "sunsett ")  # one letter too many
    assert "ada_lovelace" in await found_users(search, "lovelase ")


async def test_hashtags_filter_and_list_by_use(search: SearchIndex) -> None:
    await seeded(search)
    assert set(await found(search, "#fyp")) == {"v1", "v4"}
    assert await found(search, "#fyp sunset") == ["v4"]
    assert await found(search, "#nosuchtag") == []
    tags = await search.search_hashtags("d", limit=10)
    assert [(s.item.tag, s.item.videos) for s in tags.items] == [("dance", 2)]
    f_tags = await search.search_hashtags("f", limit=10)
    assert [(s.item.tag, s.item.videos) for s in f_tags.items] == [("fyp", 2), ("food", 1)]


async def test_a_deleted_video_leaves_results_within_5_s(search: SearchIndex) -> None:
    await seeded(search)
    await search.delete_video("v1")
    await search.delete_video("v1")  # idempotent
    await search.delete_video("never-indexed")
    deadline = time.monotonic() + 5
    while "v1" in await found(search, "dance") or "v1" in await found(search, "#fyp"):
        assert time.monotonic() < deadline, "v1 still found 5 s after its deletion"
        await asyncio.sleep(0.2)
    assert await found(search, "dance") == ["v3"]
    tags = await search.search_hashtags("fy", limit=10)
    assert [(s.item.tag, s.item.videos) for s in tags.items] == [("fyp", 1)]


async def test_upsert_replaces_the_document(search: SearchIndex) -> None:
    await seeded(search)
    await search.upsert_videos([video("v2", "grilled fish", ("food",), handle="bob")])
    await search.refresh()
    assert await found(search, "pasta ") == []
    assert await found(search, "grilled ") == ["v2"]


async def test_popular_and_fresh_videos_rank_first(search: SearchIndex) -> None:
    await search.upsert_videos(
        [
            video("old", "skate trick", age_days=60),
            video("new", "skate trick", age_days=0),
            video("liked", "skate trick", likes=5000, age_days=60),
        ]
    )
    await search.refresh()
    assert await found(search, "skate trick ") == ["liked", "new", "old"]


async def test_users_rank_exact_handle_then_followers(search: SearchIndex) -> None:
    await seeded(search)
    assert (await found_users(search, "ada "))[:2] == ["ada_lovelace", "ada_byron"]
    assert (await found_users(search, "@adam"))[0] == "adam"  # the exact handle wins
    await search.set_followers("u4", 1_000_000)
    await search.set_followers("no-such-user", 3)  # ignored
    await search.refresh()
    assert (await found_users(search, "ada "))[:2] == ["ada_byron", "ada_lovelace"]


async def test_cursor_pages_cover_the_results_once_in_order(search: SearchIndex) -> None:
    docs = [video(f"p{i:02d}", f"party clip {i}", likes=i % 5, age_days=i % 3) for i in range(25)]
    await search.upsert_videos(docs)
    await search.refresh()
    everything = await found(search, "party", limit=50)
    assert len(everything) == 25
    paged: list[str] = []
    after: Position | None = None
    while True:
        page = await search.search_videos(parse_query("party"), limit=7, now_ms=NOW, after=after)
        if not page.items:
            break
        paged += [s.item.video_id for s in page.items]
        after = page.last
    assert paged == everything


async def test_hashtag_pages_cover_every_tag_once(search: SearchIndex) -> None:
    await search.upsert_videos(
        [video(f"t{i}", "tagged", tuple(f"tag{j}" for j in range(i % 6 + 1))) for i in range(12)]
    )
    await search.refresh()
    seen: list[tuple[str, int]] = []
    after: Position | None = None
    while True:
        page = await search.search_hashtags("tag", limit=4, after=after)
        if not page.items:
            break
        seen += [(s.item.tag, s.item.videos) for s in page.items]
        after = page.last
    assert seen == [(f"tag{j}", 12 - 2 * j) for j in range(6)]


async def test_hostile_queries_are_only_words(search: SearchIndex) -> None:
    await seeded(search)
    for q in ['"*:*"', "*:*", '"unbalanced dance', "!!! ??? ...", "dance) OR (1=1", "NEAR(a b)"]:
        videos = await found(search, q)
        users = await found_users(search, q)
        assert set(videos) <= {"v1", "v3"}, q  # at most the word "dance" matched
        assert users == [], q
    assert await found(search, '"dance') != []
    assert await found(search, "x" * 10_000) == []
