"""Trending: likes and completions counted in per-bucket sorted sets in the cache;
the sliding window is the union of the last window_s of buckets."""

from __future__ import annotations

from reelplane.engagement.core import trending_bucket, trending_key, window_buckets
from reelplane.ports.cache import Cache


async def add_points(
    cache: Cache,
    video_id: str,
    points: float,
    *,
    at_ms: int,
    now_ms: int,
    window_s: int,
    bucket_s: int,
) -> bool:
    """Count points in the bucket of the moment they happened (so a replayed
    event lands where it did the first time); False when already out of the window."""
    bucket = trending_bucket(at_ms, bucket_s)
    if bucket not in window_buckets(now_ms, window_s, bucket_s):
        return False
    # A bucket lives while it can be in a window, plus one bucket of slack.
    await cache.zincrby(trending_key(bucket), video_id, points, ttl_s=window_s + 2 * bucket_s)
    return True


async def top_trending(
    cache: Cache, *, now_ms: int, window_s: int, bucket_s: int, limit: int
) -> list[tuple[str, float]]:
    """(video_id, points) of the window ending now, highest first."""
    keys = [trending_key(b) for b in window_buckets(now_ms, window_s, bucket_s)]
    return await cache.ztop(keys, limit)
