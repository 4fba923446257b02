"""A synthetic short-video world with hidden ground truth (RecSim/KuaiSim-style).

Hidden (never shown to a model): each user's topic interests, each video's topic
mixture and quality, each creator's skill. Observable: what a real platform
sees: captions written from the video's topic words (plus filler), hashtags,
a poster-like image vector, duration, audio, creator, upload time, and the
engagement each impression produced (watch time, like, share, follow).

The watch model is the research prototype's: expected completion
e = sigmoid(6 a + 2 q - 2.5), a = cos(interests, topics), q = quality ~ Beta(2, 5)
(mixed with the creator's skill); the watched share is e + N(0, 0.15), clipped;
under 10 % is a fast skip (< 2 s); at least 60 % may bring a like or share, a
completion a follow, more likely for better videos. A user's true top 100 are
the unseen videos with the highest e.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from reelplane_ml.features import TextEncoder, hashtags_of
from reelplane_ml.interactions import InteractionLog
from reelplane_ml.sim.topics import FILLER, TOPICS
from reelplane_ml.types import IMAGE_DIM, VideoFeatures

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
DAY_MS = 86_400_000


@dataclass(frozen=True)
class WorldConfig:
    n_users: int = 10_000
    n_videos: int = 30_000
    n_creators: int = 3_000
    n_topics: int = len(TOPICS)
    topic_alpha: float = 0.08
    interest_alpha: float = 0.08
    caption_words: int = 8
    filler_share: float = 0.35
    friends_per_user: int = 8
    creators_followed: int = 5
    history_days: float = 14.0
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """Vectorised watch-model results for n impressions."""

    watched_ms: I64
    completion: F32
    liked: NDArray[np.bool_]
    shared: NDArray[np.bool_]
    followed: NDArray[np.bool_]


def _sigmoid(x: NDArray[np.floating]) -> F32:
    out: F32 = (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
    return out


@dataclass
class World:
    """Hidden state and observable features of users, creators and videos."""

    cfg: WorldConfig
    interest: F32  # (U, T) L2-normalised hidden interests
    topics: F32  # (V, T) L2-normalised hidden topic mixtures
    dominant: I64  # (V,) the video's main topic
    quality: F32  # (V,) hidden quality in [0, 1]
    creator_of: I64  # (V,)
    creator_skill: F32  # (C,)
    creator_focus: F32  # (C, T)
    captions: list[str]
    duration_ms: I64
    has_audio: NDArray[np.bool_]
    created_at_ms: I64
    image: F32  # (V, IMAGE_DIM)
    friends: list[list[int]]  # user -> users they follow
    follows: list[set[int]]  # user -> creators they follow
    palette: F32  # (T, IMAGE_DIM) hidden per-topic image signature
    rng: np.random.Generator = field(repr=False)

    # -- ids -----------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return int(self.interest.shape[0])

    @property
    def n_videos(self) -> int:
        return int(self.topics.shape[0])

    @staticmethod
    def user_id(u: int) -> str:
        return f"u{u}"

    @staticmethod
    def video_id(v: int) -> str:
        return f"v{v}"

    @staticmethod
    def creator_id(c: int) -> str:
        return f"c{c}"

    @staticmethod
    def video_index(video_id: str) -> int:
        return int(video_id[1:])

    @staticmethod
    def user_index(user_id: str) -> int:
        return int(user_id[1:])

    # -- generation ------------------------------------------------------------------
    @classmethod
    def generate(cls, cfg: WorldConfig) -> World:
        rng = np.random.default_rng(cfg.seed)
        t = cfg.n_topics
        interest = rng.dirichlet([cfg.interest_alpha] * t, size=cfg.n_users).astype(np.float32)
        interest = _rows_normalised(interest)
        creator_focus = rng.dirichlet([0.1] * t, size=cfg.n_creators).astype(np.float32)
        creator_skill = rng.beta(2.0, 5.0, size=cfg.n_creators).astype(np.float32)
        # creators publish at different rates (a few are prolific)
        rate = rng.pareto(1.5, size=cfg.n_creators) + 1.0
        creator_of = rng.choice(cfg.n_creators, size=cfg.n_videos, p=rate / rate.sum())
        palette = (rng.standard_normal((t, IMAGE_DIM)) * 0.15).astype(np.float32)
        world = cls(
            cfg=cfg,
            interest=interest,
            topics=np.zeros((0, t), np.float32),
            dominant=np.zeros(0, np.int64),
            quality=np.zeros(0, np.float32),
            creator_of=np.zeros(0, np.int64),
            creator_skill=creator_skill,
            creator_focus=creator_focus,
            captions=[],
            duration_ms=np.zeros(0, np.int64),
            has_audio=np.zeros(0, np.bool_),
            created_at_ms=np.zeros(0, np.int64),
            image=np.zeros((0, IMAGE_DIM), np.float32),
            friends=[],
            follows=[],
            palette=palette,
            rng=rng,
        )
        created = cfg.start_ms - (rng.random(cfg.n_videos) * cfg.history_days * DAY_MS).astype(
            np.int64
        )
        world.add_videos(creator_of.astype(np.int64), np.sort(created))
        world._connect_users()
        return world

    def add_videos(
        self,
        creators: I64,
        created_at_ms: I64,
        *,
        quality: F32 | None = None,
        dominant: I64 | None = None,
    ) -> I64:
        """Generate videos by `creators` (hidden topic and quality drawn from the
        creator's focus and skill unless given); returns their indices."""
        rng, cfg = self.rng, self.cfg
        n = len(creators)
        t = cfg.n_topics
        if dominant is None:
            cdf = np.cumsum(self.creator_focus[creators], axis=1)
            u = rng.random((n, 1)) * cdf[:, -1:]
            dominant = np.minimum((cdf < u).sum(axis=1), t - 1).astype(np.int64)
        mix = rng.dirichlet([cfg.topic_alpha] * t, size=n).astype(np.float32)
        topics = 0.6 * np.eye(t, dtype=np.float32)[dominant] + 0.4 * mix
        if quality is None:
            own = rng.beta(2.0, 5.0, size=n).astype(np.float32)
            quality = (0.4 * self.creator_skill[creators] + 0.6 * own).astype(np.float32)
        captions = [self._caption(topics[i], int(dominant[i])) for i in range(n)]
        duration = np.clip(rng.lognormal(np.log(25_000), 0.6, size=n), 5_000, 180_000)
        image = topics @ self.palette + rng.standard_normal((n, IMAGE_DIM)) * 0.05
        first = self.n_videos
        self.topics = np.concatenate([self.topics, _rows_normalised(topics)])
        self.dominant = np.concatenate([self.dominant, dominant])
        self.quality = np.concatenate([self.quality, quality.astype(np.float32)])
        self.creator_of = np.concatenate([self.creator_of, creators.astype(np.int64)])
        self.captions.extend(captions)
        self.duration_ms = np.concatenate([self.duration_ms, duration.astype(np.int64)])
        self.has_audio = np.concatenate([self.has_audio, rng.random(n) < 0.95])
        self.created_at_ms = np.concatenate([self.created_at_ms, created_at_ms.astype(np.int64)])
        self.image = np.concatenate([self.image, image.astype(np.float32)])
        return np.arange(first, first + n, dtype=np.int64)

    def add_creator(self, *, focus_topic: int) -> int:
        """A brand-new creator (no followers, no videos) focused on one topic."""
        focus = np.zeros(self.cfg.n_topics, np.float32)
        focus[focus_topic] = 1.0
        self.creator_focus = np.concatenate([self.creator_focus, focus[None]])
        self.creator_skill = np.concatenate([self.creator_skill, np.array([0.3], np.float32)])
        return int(self.creator_focus.shape[0] - 1)

    def _caption(self, topics: F32, dominant: int) -> str:
        rng, cfg = self.rng, self.cfg
        k = cfg.caption_words
        filler = rng.random(k) < cfg.filler_share
        cdf = np.cumsum(topics / topics.sum())
        picked = np.minimum(np.searchsorted(cdf, rng.random(k)), len(cdf) - 1)
        slot = rng.integers(0, 10, k)
        fill = rng.integers(0, len(FILLER), k)
        words = [
            FILLER[int(fill[i])] if filler[i] else TOPICS[int(picked[i])][1][int(slot[i])]
            for i in range(k)
        ]
        if rng.random() < 0.7:
            words.append("#" + TOPICS[dominant][0])
        return " ".join(words)

    def _connect_users(self) -> None:
        """Friends by homophily; a few followed creators from the user's interests."""
        rng, cfg = self.rng, self.cfg
        n = self.n_users
        self.friends = []
        for u in range(n):
            pool = np.unique(rng.integers(0, n, size=200))
            sim = self.interest[pool] @ self.interest[u]
            order = pool[np.argsort(-sim)]
            self.friends.append([int(x) for x in order if x != u][: cfg.friends_per_user])
        focus = _rows_normalised(self.creator_focus)
        self.follows = []
        for u in range(n):
            pool = np.unique(rng.integers(0, focus.shape[0], size=300))
            sim = focus[pool] @ self.interest[u]
            self.follows.append({int(c) for c in pool[np.argsort(-sim)][: cfg.creators_followed]})

    # -- the watch model ---------------------------------------------------------------
    def hook_probability(self, users: I64, videos: I64) -> F32:
        """Expected completion per (user, video) pair: the hidden truth."""
        a = _rowwise_dot(self.interest, users, self.topics, videos)
        return _sigmoid(6.0 * a + 2.0 * self.quality[videos] - 2.5)

    def hook_matrix(self, users: I64) -> F32:
        """(len(users), V) expected completion of every video (the oracle)."""
        a = self.interest[users] @ self.topics.T
        return _sigmoid(6.0 * a + 2.0 * self.quality[None, :] - 2.5)

    def respond(self, users: I64, videos: I64, rng: np.random.Generator | None = None) -> Outcome:
        """Draw what each user does with each video."""
        rng = rng or self.rng
        n = len(users)
        q = self.quality[videos]
        dur = self.duration_ms[videos]
        expected = self.hook_probability(users, videos)
        completion = np.clip(expected + rng.normal(0.0, 0.15, n), 0.0, 1.0).astype(np.float32)
        watched = (completion * dur).astype(np.int64)
        skip = completion < 0.1  # swiped away in the first second or two
        watched[skip] = rng.integers(300, 1900, int(skip.sum()))
        completion[skip] = watched[skip] / dur[skip]
        engaged = completion >= 0.6
        liked = engaged & (rng.random(n) < 0.05 + 0.3 * q)
        shared = engaged & (rng.random(n) < 0.01 + 0.05 * q)
        followed = (completion >= 0.9) & (rng.random(n) < 0.005 + 0.03 * q)
        return Outcome(watched, completion, liked, shared, followed)

    # -- what a model may see ----------------------------------------------------------
    def features(self, videos: Sequence[int], encoder: TextEncoder) -> list[VideoFeatures]:
        """Observable features of the videos (caption text embedded for real)."""
        caps = [self.captions[v] for v in videos]
        vecs = encoder.embed(caps)
        return [
            VideoFeatures(
                video_id=self.video_id(v),
                creator_id=self.creator_id(int(self.creator_of[v])),
                caption_vec=vecs[i],
                image_vec=self.image[v],
                hashtags=hashtags_of(caps[i]),
                duration_ms=int(self.duration_ms[v]),
                has_audio=bool(self.has_audio[v]),
                created_at_ms=int(self.created_at_ms[v]),
            )
            for i, v in enumerate(videos)
        ]

    def logged_exposure(
        self,
        per_user: int,
        *,
        popular_share: float = 0.6,
        popularity_exponent: float = 0.9,
        seed: int = 1,
    ) -> InteractionLog:
        """An earlier recommender's log: per user about `per_user` impressions
        over the history window, `popular_share` of them from a Zipf popularity
        prior (exponent `popularity_exponent`), the rest interest-driven
        (noisy), each answered by the watch model. This is the exposure-biased
        log a trainer gets."""
        rng = np.random.default_rng(seed)
        cfg = self.cfg
        v = self.n_videos
        # the old system's popularity: Zipf over a quality-leaning order
        order = np.argsort(-(self.quality + rng.normal(0, 0.15, v)))
        zipf = 1.0 / np.arange(1, v + 1) ** popularity_exponent
        pop_cdf = np.cumsum(zipf / zipf.sum())
        lo = cfg.start_ms - int(cfg.history_days * DAY_MS)
        n_int = round(per_user * (1 - popular_share))
        users: list[I64] = []
        videos: list[I64] = []
        for start in range(0, self.n_users, 512):
            batch = np.arange(start, min(start + 512, self.n_users))
            # noisy interest targeting: the best of 2,000 random videos per user
            pool = rng.integers(0, v, size=(len(batch), 2000))
            aff = np.take_along_axis(self.interest[batch] @ self.topics.T, pool, axis=1)
            gumbel = -np.log(-np.log(rng.random(aff.shape)))
            best = np.argpartition(-(8.0 * aff + gumbel), n_int, axis=1)[:, :n_int]
            picks = np.take_along_axis(pool, best, axis=1)
            pop = order[np.searchsorted(pop_cdf, rng.random((len(batch), per_user - n_int)))]
            both = np.concatenate([picks, pop], axis=1)
            users.append(np.repeat(batch, both.shape[1]))
            videos.append(both.reshape(-1))
        user = np.concatenate(users).astype(np.int64)
        video = np.concatenate(videos).astype(np.int64)
        # one impression per (user, video)
        key = np.unique(user * v + video)
        user, video = key // v, key % v
        born = np.maximum(self.created_at_ms[video], lo)
        at = born + (rng.random(len(video)) * (cfg.start_ms - born)).astype(np.int64)
        by_time = np.argsort(at, kind="stable")
        user, video, at = user[by_time], video[by_time], at[by_time]
        res = self.respond(user, video, rng)
        return self.log_of(user, video, at, res)

    def log_of(self, user: I64, video: I64, at_ms: I64, res: Outcome) -> InteractionLog:
        """Impressions and their outcomes as an InteractionLog over the world's ids."""
        return InteractionLog(
            user_ids=tuple(self.user_id(u) for u in range(self.n_users)),
            video_ids=tuple(self.video_id(i) for i in range(self.n_videos)),
            user=user,
            video=video,
            at_ms=at_ms,
            watched_ms=res.watched_ms,
            duration_ms=self.duration_ms[video].copy(),
            liked=res.liked,
            shared=res.shared,
            followed=res.followed,
        )


def _rowwise_dot(a: F32, ia: I64, b: F32, ib: I64, chunk: int = 65536) -> F32:
    """(a[ia] * b[ib]).sum(1), in chunks (no n x T temporaries of the whole batch)."""
    out = np.empty(len(ia), np.float32)
    for s in range(0, len(ia), chunk):
        out[s : s + chunk] = np.einsum("ij,ij->i", a[ia[s : s + chunk]], b[ib[s : s + chunk]])
    return out


def _rows_normalised(x: F32) -> F32:
    out: F32 = (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)).astype(np.float32)
    return out
