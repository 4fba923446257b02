"""The values `RecommenderCore` takes and returns (frozen dataclasses: they cross
no process boundary by themselves; `*_to_json`/`*_from_json` in `features` and
`candidates.encode_candidates` are the wire forms for the cache and between
deployments).

Units: `*_ms` are milliseconds (durations) or milliseconds since the epoch
(instants: `at_ms`, `now_ms`, `created_at_ms`).
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

#: Caption embedding width (wordllama l2_supercat, 256-d, L2-normalised).
TEXT_DIM = 256
#: Image fallback width: 3 x 8-bin HSV histogram (24) + 8 x 8 grey thumbnail (64).
IMAGE_DIM = 88

#: A watch shorter than this, or under FAST_SKIP_RATIO of the video, is a fast skip.
FAST_SKIP_MS = 2000
FAST_SKIP_RATIO = 0.1
#: A watch of at least this share of the video counts as a completion.
COMPLETION_RATIO = 0.9

#: Where a candidate came from; a Recommendation's `source` is one of these.
Source = Literal["ann", "recent", "trending", "friends", "following", "fresh", "random"]
SOURCES: tuple[Source, ...] = (
    "ann",
    "recent",
    "trending",
    "friends",
    "following",
    "fresh",
    "random",
)
#: Slots whose audience the recommender did not pick by interest: the impressions
#: exploration judges a new video on (`VideoStats.explore_impressions`).
EXPLORATION_SOURCES: frozenset[str] = frozenset({"fresh", "random"})

Vector = NDArray[np.float32]


@dataclass(frozen=True, eq=False, slots=True)
class VideoFeatures:
    """What the recommender knows of a video, computed once when it becomes ready
    (`reelplane_ml.features.video_features`). Hidden quality is never here."""

    video_id: str
    creator_id: str
    caption_vec: Vector  # (TEXT_DIM,) float32, L2-normalised; zeros without a caption
    image_vec: Vector  # (IMAGE_DIM,) float32; zeros without a poster
    hashtags: tuple[str, ...] = ()
    duration_ms: int = 0
    has_audio: bool = True
    created_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class Watch:
    """One view of a video by the user: `watched_ms` of `duration_ms`, at `at_ms`."""

    video_id: str
    watched_ms: int
    duration_ms: int
    at_ms: int = 0

    @property
    def completion(self) -> float:
        """Share watched, in [0, 1] (re-watches count once)."""
        if self.duration_ms <= 0:
            return 0.0
        return min(1.0, max(0.0, self.watched_ms / self.duration_ms))

    @property
    def fast_skip(self) -> bool:
        return self.watched_ms < FAST_SKIP_MS or self.completion < FAST_SKIP_RATIO

    @property
    def completed(self) -> bool:
        return self.completion >= COMPLETION_RATIO


@dataclass(frozen=True, slots=True)
class FriendActivity:
    """A followee liked or completed a video (friend-activity candidates)."""

    video_id: str
    friend_id: str
    kind: Literal["liked", "completed"]
    at_ms: int = 0


@dataclass(frozen=True, slots=True)
class UserState:
    """The user as the recommender sees them at request time; the real-time
    consumer keeps it fresh (seconds), so the user tower is recomputed per request.

    `watches` holds every view, fast skips included, newest first (the tower reads
    the last 50). `seen` is any membership test (a Redis bitset Bloom filter, a
    set): seen videos are never recommended. `not_interested` maps a creator id to
    when the user said "not interested" (feedback fatigue)."""

    user_id: str
    watches: tuple[Watch, ...] = ()
    liked: tuple[str, ...] = ()  # video ids, newest first
    shared: tuple[str, ...] = ()  # video ids, newest first
    followed_creators: frozenset[str] = frozenset()
    not_interested: Mapping[str, int] = field(default_factory=dict)
    seen: Container[str] = frozenset()
    friend_activity: tuple[FriendActivity, ...] = ()  # newest first

    @property
    def skipped(self) -> tuple[str, ...]:
        """Fast-skipped video ids, newest first."""
        return tuple(w.video_id for w in self.watches if w.fast_skip)


@dataclass(frozen=True, slots=True)
class VideoStats:
    """Real-time statistics of one video: totals and per-minute velocity over
    the last few minutes (the ranker's and exploration's only popularity input;
    follower counts are never one)."""

    impressions: int = 0
    completions: int = 0
    likes: int = 0
    shares: int = 0
    fast_skips: int = 0
    #: Impressions in exploration slots (`EXPLORATION_SOURCES`), and the share of
    #: the video watched (`Watch.completion`) summed over them: exploration's
    #: completion rate is the mean watch-through of an audience nobody targeted.
    #: (Viewers picked by interest finish nearly any video of their niche, and
    #: only they finish most videos: the share of full views over all
    #: impressions measures who was shown the video more than the video.)
    explore_impressions: int = 0
    explore_watched_share: float = 0.0
    impressions_per_min: float = 0.0
    completions_per_min: float = 0.0
    likes_per_min: float = 0.0


class VideoStatsView(Protocol):
    """Read side of the real-time statistics (an in-memory snapshot per replica,
    refreshed every <= 1 s; `reelplane_ml.stats.LiveStats` is one)."""

    def get(self, video_id: str) -> VideoStats | None:
        """The video's statistics, None when it has none yet."""
        ...

    def get_many(self, video_ids: Sequence[str]) -> list[VideoStats | None]:
        """`get` of each (a ranked page reads a few hundred at once)."""
        ...

    def trending(self, limit: int) -> Sequence[tuple[str, float]]:
        """Up to `limit` (video_id, velocity score) pairs, best first."""
        ...


@dataclass(frozen=True, slots=True)
class RecommendRequest:
    """One For You request. `limit` is the page size; `exclude` adds ids to skip
    beyond the user's seen filter; `now_ms` is the request's clock (the simulator
    runs its own); `seed` makes exploration reproducible (None: random)."""

    user_id: str
    now_ms: int
    limit: int = 10
    exclude: frozenset[str] = frozenset()
    seed: int | None = None


class Candidate(NamedTuple):
    """A retrieved video before ranking: the sources that proposed it (first is
    the primary) and the retrieval score of the best one. Cacheable per user.
    (A NamedTuple: hundreds are made per request, and tuples are cheap.)"""

    video_id: str
    sources: tuple[Source, ...]
    retrieval_score: float = 0.0


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A ranked video: its score, the source that placed it (`random` marks the
    uniformly random slice, logged for unbiased evaluation) and human-readable
    reasons (which sources, which signals) for debugging."""

    video_id: str
    score: float
    source: Source
    reasons: tuple[str, ...] = ()
