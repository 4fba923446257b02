"""Real-time signals, in seconds: each user's recent history and seen filter,
and per-video real-time statistics, kept in the cache by a consumer of
`engagement` (research 4.1, 4.7).

Per event, a handful of cache writes (no read on the path but the skip-run
counter and, for a watch, whether it was an exploration slot):

| key | holds |
|---|---|
| `rec:u:{u}:hist` | the last `rec_history_cap` events (watch, like, unlike, view), newest first |
| `rec:u:{u}:seen` | a Bloom filter over a bitset (Redis 7.0 has no Bloom module) |
| `rec:u:{u}:skips` | fast skips in a row |
| `rec:v:{kind}:{minute}` | per-minute counts by video (a sorted set), 2 h |
| `rec:v:{kind}` | lifetime counts by video (a sorted set) |
| `rec:v:ximp`, `rec:v:xwatch` | lifetime exploration-slot impressions, share watched summed |
| `rec:u:{u}:x:{v}` | set by a serving replica that gave v an exploration slot on u's page, 1 d |

A strong signal (a like, a completion, a run of fast skips) deletes the user's
cached candidates (`rec:u:{u}:cand`), so the next request retrieves anew with
the user tower recomputed from the fresh history. `load_user_state` reads it
all back for one request; `StatsSnapshot` is a replica's in-memory copy of the
statistics, refreshed every second without per-candidate cache calls.

An impression is a `video.watched` (the exposure whose outcome is known: the
completion rate's numerator and denominator come from the same events); a
`video.viewed` only marks the video seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Literal

from reelplane.events.envelope import Event, VideoLiked, VideoUnliked, VideoViewed, VideoWatched
from reelplane.ports.cache import Cache
from reelplane_ml.bloom import SeenFilter, bloom_offsets
from reelplane_ml.settings import SignalSettings
from reelplane_ml.types import FriendActivity, UserState, VideoStats, Watch

log = logging.getLogger(__name__)

StatKind = Literal["imp", "done", "like", "share", "skip", "ximp", "xwatch"]
STAT_KINDS: tuple[StatKind, ...] = ("imp", "done", "like", "share", "skip")
#: Lifetime totals only: impressions in exploration slots and the share watched
#: summed over them (exploration judges a new video on these; `explore`).
EXPLORE_KINDS: tuple[StatKind, ...] = ("ximp", "xwatch")
#: How long a page's exploration slot waits for its watch event, s.
EXPLORED_TTL_S = 86_400.0
#: Per-minute sorted sets live this long, s.
MINUTE_TTL_S = 2 * 3600.0
#: Minutes read back on each snapshot refresh to find the videos that moved.
MOVED_MINUTES = 2
#: Members read from one per-minute set at most (the busiest videos of that minute).
MINUTE_READ_CAP = 100_000

EntryKind = Literal["watch", "like", "unlike", "view"]


def history_key(user_id: str) -> str:
    return f"rec:u:{user_id}:hist"


def seen_key(user_id: str) -> str:
    return f"rec:u:{user_id}:seen"


def skips_key(user_id: str) -> str:
    return f"rec:u:{user_id}:skips"


def candidates_key(user_id: str) -> str:
    """The user's cached candidates (written by the serving side; dropped here)."""
    return f"rec:u:{user_id}:cand"


def explored_key(user_id: str, video_id: str) -> str:
    """Set when the user's page gave the video an exploration slot."""
    return f"rec:u:{user_id}:x:{video_id}"


def minute_key(kind: StatKind, minute: int) -> str:
    return f"rec:v:{kind}:{minute}"


def total_key(kind: StatKind) -> str:
    return f"rec:v:{kind}"


# -- what one event does ---------------------------------------------------------------
@dataclass(frozen=True)
class HistoryEntry:
    """One event of a user's recent history, as stored (compact JSON)."""

    video_id: str
    kind: EntryKind
    at_ms: int
    watched_ms: int = 0
    duration_ms: int = 0

    def to_bytes(self) -> bytes:
        data: dict[str, object] = {"v": self.video_id, "k": self.kind, "t": self.at_ms}
        if self.kind == "watch":
            data["w"], data["d"] = self.watched_ms, self.duration_ms
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> HistoryEntry | None:
        """The entry, or None for one this version cannot read."""
        try:
            data = json.loads(raw)
            kind = data["k"]
            if kind not in ("watch", "like", "unlike", "view"):
                return None
            return cls(
                str(data["v"]), kind, int(data["t"]), int(data.get("w", 0)), int(data.get("d", 0))
            )
        except (ValueError, KeyError, TypeError):
            return None


SkipEffect = Literal["fast", "reset", "none"]


@dataclass(frozen=True)
class SignalEffects:
    """The cache writes one engagement event asks for (`effects_of`, pure)."""

    user_id: str
    video_id: str
    at_ms: int
    entry: HistoryEntry
    stats: tuple[StatKind, ...] = ()
    #: A watch's share of the video (`Watch.completion`); None for other events.
    watched_share: float | None = None
    #: A like or a completion: the user's cached candidates are stale.
    strong: bool = False
    #: A fast skip adds to the run; any other watch ends it.
    skip: SkipEffect = "none"


def effects_of(event: Event) -> SignalEffects | None:
    """What an engagement event changes in the signals, None for one that
    changes nothing (a comment)."""
    at_ms = int(event.occurred_at.timestamp() * 1000)
    if isinstance(event, VideoWatched):
        p = event.payload
        watch = Watch(p.video_id, p.watched_ms, p.duration_ms, at_ms)
        entry = HistoryEntry(p.video_id, "watch", at_ms, p.watched_ms, p.duration_ms)
        stats: tuple[StatKind, ...] = ("imp",)
        if watch.completed:
            stats += ("done",)
        if watch.fast_skip:
            stats += ("skip",)
        return SignalEffects(
            p.user_id,
            p.video_id,
            at_ms,
            entry,
            stats,
            watched_share=watch.completion,
            strong=watch.completed,
            skip="fast" if watch.fast_skip else "reset",
        )
    if isinstance(event, VideoLiked):
        p2 = event.payload
        entry = HistoryEntry(p2.video_id, "like", at_ms)
        return SignalEffects(p2.user_id, p2.video_id, at_ms, entry, ("like",), strong=True)
    if isinstance(event, VideoUnliked):
        p3 = event.payload
        return SignalEffects(
            p3.user_id, p3.video_id, at_ms, HistoryEntry(p3.video_id, "unlike", at_ms)
        )
    if isinstance(event, VideoViewed):
        p4 = event.payload
        return SignalEffects(
            p4.user_id, p4.video_id, at_ms, HistoryEntry(p4.video_id, "view", at_ms)
        )
    return None


#: Called with a user id after a strong signal (e.g. to drop the feed's session too).
StrongSignalHook = Callable[[str], Awaitable[None]]


async def apply_signal(
    cache: Cache,
    effects: SignalEffects,
    settings: SignalSettings,
    on_strong: StrongSignalHook | None = None,
) -> bool:
    """Write one event's effects to the cache; returns whether it was a strong
    signal (which dropped the user's cached candidates). Safe to redo: a repeat
    adds one history entry and one count at most (the runner dedups by id)."""
    u, v = effects.user_id, effects.video_id
    await cache.push_capped(
        history_key(u),
        [effects.entry.to_bytes()],
        cap=settings.rec_history_cap,
        ttl_s=settings.rec_history_ttl_s,
    )
    offsets = bloom_offsets(v, bits=settings.rec_seen_bits, hashes=settings.rec_seen_hashes)
    await cache.set_bits(seen_key(u), offsets, ttl_s=settings.rec_seen_ttl_s)
    minute = effects.at_ms // 60_000
    for kind in effects.stats:
        await cache.zincrby(minute_key(kind, minute), v, 1.0, ttl_s=MINUTE_TTL_S)
        await cache.zincrby(total_key(kind), v, 1.0)
    if effects.watched_share is not None and await cache.get(explored_key(u, v)) is not None:
        await cache.zincrby(total_key("ximp"), v, 1.0)
        await cache.zincrby(total_key("xwatch"), v, effects.watched_share)
    strong = effects.strong
    if effects.skip == "fast":
        run = await cache.incr(skips_key(u))
        await cache.expire(skips_key(u), settings.rec_history_ttl_s)
        if run >= settings.rec_fast_skip_run:
            strong = True
            await cache.delete(skips_key(u))
    elif effects.skip == "reset":
        await cache.delete(skips_key(u))
    if strong:
        await cache.delete(candidates_key(u))
        if on_strong is not None:
            await on_strong(u)
    return strong


# -- reading a user back -----------------------------------------------------------------
def user_state_from(
    user_id: str,
    history: Sequence[bytes],
    seen: Container[str],
    *,
    followed_creators: frozenset[str] = frozenset(),
    friend_activity: tuple[FriendActivity, ...] = (),
) -> UserState:
    """A UserState from the cached history (newest first): watches, and the
    videos liked and not unliked since."""
    watches: list[Watch] = []
    liked: list[str] = []
    unliked: set[str] = set()
    for raw in history:
        entry = HistoryEntry.from_bytes(raw)
        if entry is None:
            continue
        if entry.kind == "watch" and entry.duration_ms > 0:
            watches.append(Watch(entry.video_id, entry.watched_ms, entry.duration_ms, entry.at_ms))
        elif entry.kind == "unlike":
            unliked.add(entry.video_id)
        elif entry.kind == "like" and entry.video_id not in unliked and entry.video_id not in liked:
            liked.append(entry.video_id)
    return UserState(
        user_id=user_id,
        watches=tuple(watches),
        liked=tuple(liked),
        followed_creators=followed_creators,
        seen=seen,
        friend_activity=friend_activity,
    )


async def load_user_state(
    cache: Cache,
    user_id: str,
    settings: SignalSettings,
    *,
    followed_creators: frozenset[str] = frozenset(),
) -> UserState:
    """The user as the cache knows them now (two reads: history and seen bits)."""
    history, (bitset,) = await asyncio.gather(
        cache.list_range(history_key(user_id), settings.rec_history_cap),
        cache.get_many([seen_key(user_id)]),
    )
    seen = SeenFilter(bitset or b"", settings.rec_seen_bits, settings.rec_seen_hashes)
    return user_state_from(user_id, history, seen, followed_creators=followed_creators)


# -- per-video statistics, per replica ---------------------------------------------------
@dataclass
class _Totals:
    counts: dict[StatKind, float] = field(default_factory=dict)
    # minute -> kind -> count, for the velocity window
    minutes: dict[int, dict[StatKind, float]] = field(default_factory=dict)


class StatsSnapshot:
    """A replica's in-memory copy of the real-time statistics (a
    `reelplane_ml.types.VideoStatsView`): `refresh` reads the videos that moved in
    the last minutes and their lifetime totals; requests read plain dicts."""

    def __init__(self, *, window_min: int = 5) -> None:
        self.window_min = window_min
        self._videos: dict[str, _Totals] = {}
        self._view: dict[str, VideoStats] = {}
        self._trending: list[tuple[str, float]] = []
        self.refreshed_at_ms = 0

    def get(self, video_id: str) -> VideoStats | None:
        return self._view.get(video_id)

    def get_many(self, video_ids: Sequence[str]) -> list[VideoStats | None]:
        return list(map(self._view.get, video_ids))

    def trending(self, limit: int) -> Sequence[tuple[str, float]]:
        return self._trending[: max(0, limit)]

    async def refresh(self, cache: Cache, *, now_ms: int | None = None) -> int:
        """Read what changed (the window's per-minute sets, then the lifetime
        totals of the videos in them); returns how many videos moved."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        minute = now_ms // 60_000
        first = minute - self.window_min + 1
        moved: set[str] = set()
        window: dict[int, dict[StatKind, list[tuple[str, float]]]] = {}
        for m in range(first, minute + 1):
            per_kind = await asyncio.gather(
                *(cache.ztop([minute_key(k, m)], MINUTE_READ_CAP) for k in STAT_KINDS)
            )
            window[m] = dict(zip(STAT_KINDS, per_kind, strict=True))
            if m > minute - MOVED_MINUTES:
                for pairs in per_kind:
                    moved.update(v for v, _ in pairs)
        if not self._videos and self.refreshed_at_ms == 0:
            # First refresh: every video with a lifetime count.
            for kind in STAT_KINDS + EXPLORE_KINDS:
                for v, _ in await cache.ztop([total_key(kind)], 10_000_000):
                    moved.add(v)
        ordered = sorted(moved)
        if ordered:
            kinds = STAT_KINDS + EXPLORE_KINDS
            totals = await asyncio.gather(*(cache.zscores(total_key(k), ordered) for k in kinds))
            for i, v in enumerate(ordered):
                t = self._videos.setdefault(v, _Totals())
                t.counts = {k: totals[j][i] or 0.0 for j, k in enumerate(kinds)}
        for t in self._videos.values():
            t.minutes = {}
        for m, by_kind in window.items():
            for kind, pairs in by_kind.items():
                for v, count in pairs:
                    self._videos.setdefault(v, _Totals()).minutes.setdefault(m, {})[kind] = count
        self._rebuild()
        self.refreshed_at_ms = now_ms
        return len(moved)

    def forget(self, video_id: str) -> None:
        self._videos.pop(video_id, None)
        self._view.pop(video_id, None)

    def _rebuild(self) -> None:
        w = float(self.window_min)
        view: dict[str, VideoStats] = {}
        scored: list[tuple[str, float]] = []
        for v, t in self._videos.items():
            per: dict[StatKind, float] = dict.fromkeys(STAT_KINDS, 0.0)
            for counts in t.minutes.values():
                for k, c in counts.items():
                    per[k] += c
            view[v] = VideoStats(
                impressions=int(t.counts.get("imp", 0)),
                completions=int(t.counts.get("done", 0)),
                likes=int(t.counts.get("like", 0)),
                shares=int(t.counts.get("share", 0)),
                fast_skips=int(t.counts.get("skip", 0)),
                explore_impressions=int(t.counts.get("ximp", 0)),
                explore_watched_share=float(t.counts.get("xwatch", 0.0)),
                impressions_per_min=per["imp"] / w,
                completions_per_min=per["done"] / w,
                likes_per_min=per["like"] / w,
            )
            velocity = (per["done"] + per["like"]) / w
            if velocity > 0:
                scored.append((v, velocity))
        scored.sort(key=lambda vs: (-vs[1], vs[0]))
        self._view = view
        self._trending = scored[:1000]


async def keep_refreshing(
    snapshot: StatsSnapshot, cache: Cache, stop: asyncio.Event, *, every_s: float
) -> None:
    """Refresh the snapshot every `every_s` until stop is set (errors are logged:
    requests keep the last snapshot)."""
    while not stop.is_set():
        try:
            await snapshot.refresh(cache)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stats snapshot refresh failed; keeping the last one")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
