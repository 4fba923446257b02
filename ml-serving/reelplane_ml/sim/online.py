"""The simulated crowd online: users request For You pages from a
RecommenderCore minute by minute, watch them (the world's hidden watch model),
and their events update what the recommender sees (user state, real-time
stats, friend activity) as the real-time consumers would.

`OnlineSim.step` yields every impression as an `Engagement` record and every
upload as an `Upload`, so the same crowd can also be driven through the real
event path (engagement events, video.ready) by the serving half.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from reelplane_ml.core import RecommenderCore
from reelplane_ml.features import TextEncoder
from reelplane_ml.interactions import Engagement, InteractionLog
from reelplane_ml.sim.world import World
from reelplane_ml.stats import LiveStats
from reelplane_ml.types import (
    COMPLETION_RATIO,
    EXPLORATION_SOURCES,
    FriendActivity,
    Recommendation,
    RecommendRequest,
    UserState,
    Watch,
)

MINUTE_MS = 60_000
HISTORY_KEPT = 100


@dataclass(frozen=True, slots=True)
class Upload:
    """A new video: what `video.ready` and the feature worker would see."""

    video_id: str
    creator_id: str
    caption: str
    duration_ms: int
    has_audio: bool
    created_at_ms: int


@dataclass
class _User:
    watches: deque[Watch] = field(default_factory=lambda: deque(maxlen=HISTORY_KEPT))
    liked: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    seen: set[str] = field(default_factory=set)
    friend_activity: deque[FriendActivity] = field(default_factory=lambda: deque(maxlen=50))
    followed: set[str] = field(default_factory=set)


class OnlineSim:
    """A crowd of `world` users served by `core`, on the world's clock."""

    def __init__(
        self,
        world: World,
        core: RecommenderCore,
        encoder: TextEncoder,
        *,
        stats: LiveStats | None = None,
        now_ms: int | None = None,
        seed: int = 0,
    ) -> None:
        self.world = world
        self.core = core
        self.encoder = encoder
        self.stats = stats or LiveStats()
        self.now_ms = now_ms if now_ms is not None else world.cfg.start_ms
        self.rng = np.random.default_rng(seed)
        self.users: dict[int, _User] = {}
        self.followers: dict[int, list[int]] = {}
        for u, friends in enumerate(world.friends):
            for f in friends:
                self.followers.setdefault(f, []).append(u)
        self.impressions: dict[str, int] = {}  # during this run
        self.by_source: dict[tuple[str, str], int] = {}  # (video_id, source) -> impressions
        self.request_ms: list[float] = []

    # -- state ---------------------------------------------------------------------------
    def user(self, u: int) -> _User:
        st = self.users.get(u)
        if st is None:
            st = _User(followed={self.world.creator_id(c) for c in self.world.follows[u]})
            self.users[u] = st
        return st

    def load_history(self, log: InteractionLog) -> None:
        """Replay a logged history into user states and real-time totals."""
        comp = log.completion
        for i in range(len(log)):
            u = self.world.user_index(log.user_ids[int(log.user[i])])
            vid = log.video_ids[int(log.video[i])]
            st = self.user(u)
            w = Watch(vid, int(log.watched_ms[i]), int(log.duration_ms[i]), int(log.at_ms[i]))
            st.watches.appendleft(w)
            st.seen.add(vid)
            if log.liked[i]:
                st.liked.appendleft(vid)
            self.stats.record(vid, int(log.at_ms[i]), completed=bool(comp[i] >= COMPLETION_RATIO),
                              liked=bool(log.liked[i]), shared=bool(log.shared[i]),
                              fast_skip=w.fast_skip)  # fmt: skip

    def state(self, u: int) -> UserState:
        st = self.user(u)
        return UserState(
            user_id=self.world.user_id(u),
            watches=tuple(st.watches),
            liked=tuple(st.liked),
            followed_creators=frozenset(st.followed),
            seen=st.seen,
            friend_activity=tuple(st.friend_activity),
        )

    # -- uploads -------------------------------------------------------------------------
    def upload(self, videos: np.ndarray) -> list[Upload]:
        """Index world videos (already generated) as uploaded now."""
        w = self.world
        w.created_at_ms[videos] = self.now_ms
        self.core.upsert_videos(w.features([int(v) for v in videos], self.encoder))
        return [
            Upload(
                w.video_id(int(v)),
                w.creator_id(int(w.creator_of[v])),
                w.captions[int(v)],
                int(w.duration_ms[v]),
                bool(w.has_audio[v]),
                self.now_ms,
            )
            for v in videos
        ]

    # -- serving and watching --------------------------------------------------------------
    def serve(self, users: list[int], limit: int = 10) -> list[list[Recommendation]]:
        import time

        items = [
            (
                RecommendRequest(
                    self.world.user_id(u),
                    now_ms=self.now_ms,
                    limit=limit,
                    seed=int(self.rng.integers(1 << 31)),
                ),
                self.state(u),
            )
            for u in users
        ]
        t = time.perf_counter()
        pages = self.core.recommend_batch(items, self.stats)
        self.request_ms.append((time.perf_counter() - t) * 1000 / max(len(items), 1))
        return pages

    def watch(self, u: int, page: list[Recommendation]) -> Iterator[Engagement]:
        """The user watches the page; every impression updates state and stats."""
        if not page:
            return
        w = self.world
        vids = np.array([w.video_index(r.video_id) for r in page], np.int64)
        res = w.respond(np.full(len(vids), u, np.int64), vids, self.rng)
        st = self.user(u)
        for k, rec in enumerate(page):
            t = self.now_ms + k * 3000
            watch = Watch(rec.video_id, int(res.watched_ms[k]), int(w.duration_ms[vids[k]]), t)
            st.watches.appendleft(watch)
            st.seen.add(rec.video_id)
            liked = bool(res.liked[k])
            completed = watch.completion >= COMPLETION_RATIO
            if liked:
                st.liked.appendleft(rec.video_id)
            creator = w.creator_id(int(w.creator_of[vids[k]]))
            if res.followed[k]:
                st.followed.add(creator)
            self.stats.record(rec.video_id, t, completed=completed, liked=liked,
                              shared=bool(res.shared[k]), fast_skip=watch.fast_skip,
                              explored=rec.source in EXPLORATION_SOURCES,
                              watched_share=watch.completion)  # fmt: skip
            self.impressions[rec.video_id] = self.impressions.get(rec.video_id, 0) + 1
            key = (rec.video_id, rec.source)
            self.by_source[key] = self.by_source.get(key, 0) + 1
            if liked or completed:
                act = FriendActivity(
                    rec.video_id, w.user_id(u), "liked" if liked else "completed", t
                )
                for f in self.followers.get(u, ()):
                    self.user(f).friend_activity.appendleft(act)
            yield Engagement(
                user_id=w.user_id(u), video_id=rec.video_id, at_ms=t,
                watched_ms=watch.watched_ms, duration_ms=watch.duration_ms, liked=liked,
                shared=bool(res.shared[k]), followed=bool(res.followed[k]), source=rec.source,
            )  # fmt: skip

    def step(
        self,
        active: int,
        *,
        batch: int = 32,
        uploads: Callable[[OnlineSim], list[Upload]] | None = None,
    ) -> Iterator[Engagement | Upload]:
        """One simulated minute: uploads, then `active` random users each get
        and watch a page (in request batches of `batch`)."""
        if uploads is not None:
            yield from uploads(self)
        users = self.rng.choice(self.world.n_users, size=active, replace=False).tolist()
        start = self.now_ms
        n_batches = max(1, -(-len(users) // batch))
        for k, s in enumerate(range(0, len(users), batch)):
            # requests spread over the minute, so real-time state moves within it
            self.now_ms = start + k * MINUTE_MS // n_batches
            chunk = users[s : s + batch]
            for u, page in zip(chunk, self.serve(chunk), strict=True):
                yield from self.watch(u, page)
        self.now_ms = start + MINUTE_MS
