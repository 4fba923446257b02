"""The graph's and engagement's pure rules."""

from __future__ import annotations

import pytest

from reelplane.engagement.core import (
    clean_comment,
    counter_deltas,
    is_completion,
    trending_bucket,
    trending_points,
    window_buckets,
)
from reelplane.errors import InvalidInput
from reelplane.events.envelope import (
    VideoLiked,
    VideoLikePayload,
    VideoUnliked,
    VideoWatched,
    VideoWatchedPayload,
)
from reelplane.graph.core import check_follow, creator_tier, is_user_id

pytestmark = pytest.mark.unit


def test_creator_tier_switches_at_the_threshold() -> None:
    assert creator_tier(9_999, 10_000) == "normal"
    assert creator_tier(10_000, 10_000) == "celebrity"


def test_self_follow_is_invalid() -> None:
    check_follow("a", "b")
    with pytest.raises(InvalidInput):
        check_follow("a", "a")


def test_user_ids_and_handles_do_not_collide() -> None:
    assert is_user_id("0" * 32)
    assert not is_user_id("ada")
    assert not is_user_id("g" * 32)


def test_comments_are_cleaned_and_length_limited() -> None:
    assert clean_comment("  hi\u200b there\x07 \n", 10) == "hi there"
    with pytest.raises(InvalidInput):
        clean_comment(" \n\t ", 10)
    with pytest.raises(InvalidInput):
        clean_comment("x" * 11, 10)


def test_completion_ratio() -> None:
    assert is_completion(9_000, 10_000, 0.9)
    assert not is_completion(8_999, 10_000, 0.9)
    assert not is_completion(5, 0, 0.9)


def test_counter_deltas_and_trending_points() -> None:
    liked = VideoLiked(key="u", payload=VideoLikePayload(user_id="u", video_id="v"))
    unliked = VideoUnliked(key="u", payload=VideoLikePayload(user_id="u", video_id="v"))
    full = VideoWatched(
        key="u",
        payload=VideoWatchedPayload(user_id="u", video_id="v", watched_ms=10, duration_ms=10),
    )
    part = VideoWatched(
        key="u",
        payload=VideoWatchedPayload(user_id="u", video_id="v", watched_ms=1, duration_ms=10),
    )
    assert counter_deltas(liked) == [("v", "likes", 1)]
    assert counter_deltas(unliked) == [("v", "likes", -1)]
    assert counter_deltas(full) == []
    assert trending_points(liked, 0.9) == ("v", 1.0)
    assert trending_points(full, 0.9) == ("v", 1.0)
    assert trending_points(part, 0.9) is None
    assert trending_points(unliked, 0.9) is None


def test_the_window_covers_thirty_one_minute_buckets() -> None:
    now = 1_000 * 60_000 + 30_000  # half way through minute 1000
    buckets = window_buckets(now, 1800, 60)
    assert buckets[0] == 1000 == trending_bucket(now, 60)
    assert len(buckets) == 30 and buckets[-1] == 971
