"""In-memory real-time video statistics (a `VideoStatsView`): totals plus
per-minute velocity over a sliding window of one-minute buckets.

The embedded mode and the simulator use it directly; the Redis-backed consumer
can feed one per replica from its snapshot. Not thread-safe for writes: one
writer (the consumer), readers take `get`/`trending` (plain dict reads).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from reelplane_ml.types import VideoStats


@dataclass
class _Counts:
    impressions: int = 0
    completions: int = 0
    likes: int = 0
    shares: int = 0
    fast_skips: int = 0
    explore_impressions: int = 0
    explore_watched_share: float = 0.0
    # minute -> (impressions, completions, likes)
    minutes: dict[int, list[int]] = field(default_factory=dict)


class LiveStats:
    """Per-video counters; velocity is the mean per minute over `window_min`."""

    def __init__(self, *, window_min: int = 5) -> None:
        self.window_min = window_min
        self._counts: dict[str, _Counts] = defaultdict(_Counts)
        self._now_min = 0
        self._trending: list[tuple[str, float]] = []
        self._trending_at = -1
        # VideoStats per video, valid for one minute of the stats clock
        self._cache: dict[str, VideoStats] = {}
        self._cache_min = -1

    def record(
        self,
        video_id: str,
        at_ms: int,
        *,
        impression: bool = True,
        completed: bool = False,
        liked: bool = False,
        shared: bool = False,
        fast_skip: bool = False,
        explored: bool = False,
        watched_share: float = 0.0,
    ) -> None:
        """Count one impression of the video and its outcome; `explored`: it
        was shown in an exploration slot, `watched_share` of it was watched."""
        c = self._counts[video_id]
        self._cache.pop(video_id, None)
        minute = at_ms // 60_000
        self._now_min = max(self._now_min, minute)
        bucket = c.minutes.setdefault(minute, [0, 0, 0])
        if impression:
            c.impressions += 1
            bucket[0] += 1
        if completed:
            c.completions += 1
            bucket[1] += 1
        if liked:
            c.likes += 1
            bucket[2] += 1
        c.shares += int(shared)
        c.fast_skips += int(fast_skip)
        if explored and impression:
            c.explore_impressions += 1
            c.explore_watched_share += watched_share
        if len(c.minutes) > self.window_min + 1:
            for m in [m for m in c.minutes if m <= self._now_min - self.window_min]:
                del c.minutes[m]

    def forget(self, video_id: str) -> None:
        self._counts.pop(video_id, None)
        self._cache.pop(video_id, None)

    def get_many(self, video_ids: Sequence[str]) -> list[VideoStats | None]:
        return list(map(self.get, video_ids))

    def get(self, video_id: str) -> VideoStats | None:
        if self._cache_min != self._now_min:
            self._cache.clear()
            self._cache_min = self._now_min
        hit = self._cache.get(video_id)
        if hit is not None:
            return hit
        c = self._counts.get(video_id)
        if c is None:
            return None
        lo = self._now_min - self.window_min
        imp = comp = likes = 0
        for m, (i, co, li) in c.minutes.items():
            if m > lo:
                imp += i
                comp += co
                likes += li
        w = float(self.window_min)
        out = VideoStats(
            impressions=c.impressions,
            completions=c.completions,
            likes=c.likes,
            shares=c.shares,
            fast_skips=c.fast_skips,
            explore_impressions=c.explore_impressions,
            explore_watched_share=c.explore_watched_share,
            impressions_per_min=imp / w,
            completions_per_min=comp / w,
            likes_per_min=likes / w,
        )
        self._cache[video_id] = out
        return out

    def trending(self, limit: int) -> Sequence[tuple[str, float]]:
        """Videos by completions + likes per minute over the window, recomputed
        at most once per minute of the stats clock."""
        if self._trending_at != self._now_min:
            lo = self._now_min - self.window_min
            scored: list[tuple[str, float]] = []
            for vid, c in self._counts.items():
                score = sum(co + li for m, (_, co, li) in c.minutes.items() if m > lo)
                if score > 0:
                    scored.append((vid, score / self.window_min))
            scored.sort(key=lambda t: -t[1])
            self._trending = scored[:1000]
            self._trending_at = self._now_min
        return self._trending[:limit]
