"""Cached feed pages: the template keeps the cards, the counters and the
viewer's likes are filled in, into exactly the bytes of the whole page."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelplane.engagement.counters import Counters
from reelplane.engagement.likes_version import NO_LIKES_VERSION
from reelplane.feed.foryou import ForYouCursor, StoredPage, cached_page
from reelplane.feed.items import (
    COUNTER_TEMPLATES,
    FeedItem,
    FeedPage,
    ItemCounters,
    VideoCard,
    counter_keys,
    feed_card,
    fill_page,
    page_template,
)
from reelplane.ports.gate import ITEM_PLACEHOLDER

pytestmark = pytest.mark.unit

cards_st = st.builds(
    VideoCard,
    video_id=st.text(min_size=1, max_size=12),
    creator_id=st.text(min_size=1, max_size=8),
    creator_handle=st.text(max_size=8),
    creator_display_name=st.text(max_size=20),  # quotes, NULs, emoji, controls
    caption=st.text(max_size=60),
    hashtags=st.lists(st.text(max_size=6), max_size=3).map(tuple),
    duration_ms=st.none() | st.integers(0, 10**7),
    ready_at=st.datetimes(timezones=st.just(UTC)),
    master_playlist_key=st.none() | st.text(max_size=10),
    poster_key=st.none() | st.text(max_size=10),
)
counter_st = st.none() | st.integers(-5, 10**12).map(lambda n: str(n).encode())


def expected(counter: bytes | None) -> int:
    """How the counters endpoint shows a cached counter (`read_counters`)."""
    return max(0, int(counter)) if counter is not None else 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(cards_st, counter_st, counter_st, counter_st, st.booleans()),
        max_size=6,
    ),
    st.none() | st.text(max_size=30),
)
def test_a_filled_template_is_the_page_pydantic_would_write(
    rows: list[tuple[VideoCard, bytes | None, bytes | None, bytes | None, bool]],
    next_cursor: str | None,
) -> None:
    template = page_template([r[0] for r in rows], next_cursor)
    counters = [v for _, lk, cm, vw, _ in rows for v in (lk, cm, vw)]
    flags = b"".join(b"1" if r[4] else b"0" for r in rows)
    items = [
        FeedItem(
            **dict(feed_card(card)),
            counters=ItemCounters(**vars(Counters(expected(lk), expected(cm), expected(vw)))),
            viewer_liked=liked,
        )
        for card, lk, cm, vw, liked in rows
    ]
    whole = FeedPage(items=items, next_cursor=next_cursor).model_dump_json().encode()
    assert fill_page(template, counters, flags) == whole


def test_state_that_does_not_match_the_template_fills_nothing() -> None:
    card = VideoCard("v1", "c1", "ada", "Ada", "hi", (), 1000, datetime.now(UTC), None, None)
    template = page_template([card], None)
    assert fill_page(template, [b"1", b"2", b"3"], b"0") is not None
    assert fill_page(template, [b"1", b"2", b"3"], b"?") is None
    assert fill_page(template, [b"1", b"2"], b"0") is None
    assert fill_page(template, [b"1", b"2", b"3", b"4", b"5", b"6"], b"00") is None
    assert fill_page(page_template([], None), [], b"") == b'{"items":[],"next_cursor":null}'
    with pytest.raises(ValueError, match="invalid literal"):
        fill_page(template, [b"x", b"2", b"3"], b"0")


def test_counter_keys_follow_the_templates_the_edge_expands() -> None:
    keys = counter_keys(["v1", "v2"])
    per_item = [t.replace(ITEM_PLACEHOLDER, v) for v in ("v1", "v2") for t in COUNTER_TEMPLATES]
    assert keys == per_item
    assert keys[:3] == ["ctr:likes:v1", "ctr:comments:v1", "ctr:views:v1"]


def test_a_cached_page_is_served_only_at_the_likes_version_it_was_read_at() -> None:
    card = VideoCard("v1", "c1", "ada", "Ada", "hi", (), 1000, datetime.now(UTC), None, None)
    page = StoredPage(["v1"], b"t1", b"1", b"s1 10", page_template([card], "next"))
    assert StoredPage.decode(page.encode(), first=True) == page
    counters = (b"4", None, b"2")
    body = cached_page(None, 10, (page.encode(), b"t1", *counters))
    assert body is not None
    item = json.loads(body)["items"][0]
    assert item["viewer_liked"] is True
    assert item["counters"] == {"likes": 4, "comments": 0, "views": 2}
    # Liked or unliked since (a new token), or the token expired: not served.
    assert cached_page(None, 10, (page.encode(), b"t2", *counters)) is None
    assert cached_page(None, 10, (page.encode(), None, *counters)) is None
    assert cached_page(None, 20, (page.encode(), b"t1", *counters)) is None  # another size
    never = replace(page, version=NO_LIKES_VERSION, liked=b"0")
    assert cached_page(None, 10, (never.encode(), None, *counters)) is not None
    # A cursor's page: only while its session is the current one.
    later = replace(page, session_line=None)
    position = ForYouCursor(s="s1", o=10)
    assert cached_page(position, 10, (b"s1", later.encode(), b"t1", *counters)) is not None
    assert cached_page(position, 10, (b"s2", later.encode(), b"t1", *counters)) is None
    # A value in another format (before templates) is no page.
    assert cached_page(position, 10, (b"s1", b'{"items":[]}', b"t1")) is None
