"""Engagement rules, pure: comment text, completions, counter deltas, trending windows."""

from __future__ import annotations

import unicodedata
from typing import Literal

from reelplane.errors import InvalidInput
from reelplane.events.envelope import (
    CommentCreated,
    CommentDeleted,
    Event,
    VideoLiked,
    VideoUnliked,
    VideoViewed,
    VideoWatched,
)

CounterKind = Literal["likes", "comments", "views"]
COUNTER_KINDS: tuple[CounterKind, ...] = ("likes", "comments", "views")


def clean_comment(text: str, max_chars: int) -> str:
    """The comment as stored: stripped of surrounding whitespace and of control
    characters other than newlines; InvalidInput when empty or over max_chars."""
    kept = "".join(
        ch for ch in text if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf")
    ).strip()
    if not kept:
        raise InvalidInput("a comment needs some text")
    if len(kept) > max_chars:
        raise InvalidInput(f"a comment has at most {max_chars} characters (got {len(kept)})")
    return kept


def is_completion(watched_ms: int, duration_ms: int, ratio: float) -> bool:
    """Whether a watch reached `ratio` of the video (e.g. 0.9)."""
    return duration_ms > 0 and watched_ms >= ratio * duration_ms


def counter_deltas(event: Event) -> list[tuple[str, CounterKind, int]]:
    """(video_id, counter, delta) changes an engagement event makes."""
    if isinstance(event, VideoLiked):
        return [(event.payload.video_id, "likes", +1)]
    if isinstance(event, VideoUnliked):
        return [(event.payload.video_id, "likes", -1)]
    if isinstance(event, CommentCreated):
        return [(event.payload.video_id, "comments", +1)]
    if isinstance(event, CommentDeleted):
        return [(event.payload.video_id, "comments", -1)]
    if isinstance(event, VideoViewed):
        return [(event.payload.video_id, "views", +1)]
    return []


def counter_key(video_id: str, kind: CounterKind) -> str:
    return f"ctr:{kind}:{video_id}"


def likes_version_key(user_id: str) -> str:
    """Changes with each like or unlike of user_id (`reelplane.engagement.likes_version`)."""
    return f"likesv:{user_id}"


def trending_points(event: Event, completion_ratio: float) -> tuple[str, float] | None:
    """(video_id, points) an event adds to trending: a like or a completed watch
    is one point each; anything else none."""
    if isinstance(event, VideoLiked):
        return event.payload.video_id, 1.0
    if isinstance(event, VideoWatched):
        p = event.payload
        if is_completion(p.watched_ms, p.duration_ms, completion_ratio):
            return p.video_id, 1.0
    return None


def trending_bucket(ts_ms: int, bucket_s: int) -> int:
    """The bucket (index since the epoch) a moment falls in."""
    return ts_ms // (bucket_s * 1000)


def window_buckets(now_ms: int, window_s: int, bucket_s: int) -> list[int]:
    """The buckets of the sliding window ending now, newest first: the current
    one and enough before it to cover window_s."""
    newest = trending_bucket(now_ms, bucket_s)
    count = max(1, -(-window_s // bucket_s))
    return [newest - i for i in range(count)]


def trending_key(bucket: int) -> str:
    return f"trend:{bucket}"
