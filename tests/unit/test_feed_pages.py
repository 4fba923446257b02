"""Cached feed pages: the template keeps the cards, the viewer's state and the
counters are filled in at read time, into exactly the bytes of the whole page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelplane.engagement.counters import Counters
from reelplane.feed.items import (
    ITEM_STATE_TEMPLATES,
    FeedItem,
    FeedPage,
    ItemCounters,
    VideoCard,
    feed_card,
    fill_page,
    item_state_keys,
    page_template,
)
from reelplane.ports.cache import ITEM_PLACEHOLDER, USER_PLACEHOLDER

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
    state = [v for _, lk, cm, vw, liked in rows for v in (lk, cm, vw, b"1" if liked else b"0")]
    items = [
        FeedItem(
            **dict(feed_card(card)),
            counters=ItemCounters(**vars(Counters(expected(lk), expected(cm), expected(vw)))),
            viewer_liked=liked,
        )
        for card, lk, cm, vw, liked in rows
    ]
    whole = FeedPage(items=items, next_cursor=next_cursor).model_dump_json().encode()
    assert fill_page(template, state) == whole


def test_an_unknown_like_state_or_a_state_of_another_page_fills_nothing() -> None:
    card = VideoCard("v1", "c1", "ada", "Ada", "hi", (), 1000, datetime.now(UTC), None, None)
    template = page_template([card], None)
    assert fill_page(template, [b"1", b"2", b"3", b"0"]) is not None
    assert fill_page(template, [b"1", b"2", b"3", None]) is None  # the route reads the store
    assert fill_page(template, [b"1", b"2", b"3", b"yes"]) is None
    assert fill_page(template, [b"1", b"2", b"3"]) is None
    assert fill_page(page_template([], None), []) == b'{"items":[],"next_cursor":null}'
    with pytest.raises(ValueError, match="invalid literal"):
        fill_page(template, [b"x", b"2", b"3", b"0"])


def test_item_state_keys_follow_the_templates_the_edge_expands() -> None:
    keys = item_state_keys("u1", ["v1", "v2"])
    per_item = [
        t.replace(USER_PLACEHOLDER, "u1").replace(ITEM_PLACEHOLDER, v)
        for v in ("v1", "v2")
        for t in ITEM_STATE_TEMPLATES
    ]
    assert keys == per_item
    assert keys[:4] == ["ctr:likes:v1", "ctr:comments:v1", "ctr:views:v1", "liked:u1:v1"]
