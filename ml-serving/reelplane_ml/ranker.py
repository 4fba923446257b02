"""The ranker: expected completion, like, share and follow minus fast skips, from
content similarity and real-time statistics, then real-time re-scoring.

Five logistic heads over one feature row per candidate (`FEATURES`); the
weights are a (len(FEATURES), len(HEADS)) matrix the trainer fits on the
interaction log, or calibrated defaults (`default_ranker`). Pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from reelplane_ml.config import RankerConfig
from reelplane_ml.types import VideoStats

if TYPE_CHECKING:
    from reelplane_ml.interactions import InteractionLog

FEATURES: tuple[str, ...] = (
    "bias",
    "sim_user",  # user vector . video vector
    "sim_recent",  # mean vector of the latest strong engagements . video vector
    "sim_skip",  # mean vector of recent fast skips . video vector
    "completion_logit",  # smoothed completion rate (real-time)
    "like_logit",
    "share_logit",
    "skip_logit",
    "log_impressions",
    "log_age_h",
    "followed",  # the user follows the creator
    "friend",  # a followee liked or completed it
    "trend_velocity",  # log1p(completions per minute)
    "log_duration",
)
HEADS: tuple[str, ...] = ("complete", "like", "share", "follow", "fast_skip")
F = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True, eq=False)
class RankerWeights:
    """Head weights (len(FEATURES), len(HEADS)) and the priors that smooth the
    real-time rates: rate = (count + strength * prior) / (impressions + strength)."""

    weights: NDArray[np.float32]
    prior_completion: float = 0.3
    prior_like: float = 0.05
    prior_share: float = 0.01
    prior_skip: float = 0.2
    prior_strength: float = 20.0

    def arrays(self) -> dict[str, NDArray[np.generic]]:
        priors = [
            self.prior_completion,
            self.prior_like,
            self.prior_share,
            self.prior_skip,
            self.prior_strength,
        ]
        return {"ranker_w": self.weights, "ranker_priors": np.array(priors, dtype=np.float32)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[np.generic]]) -> RankerWeights:
        p = [float(x) for x in arrays["ranker_priors"]]
        return cls(np.asarray(arrays["ranker_w"], dtype=np.float32), *p)


def default_ranker() -> RankerWeights:
    """Hand-calibrated heads, used until the trainer fits them."""
    w = np.zeros((len(FEATURES), len(HEADS)), dtype=np.float32)

    def put(head: str, **coefs: float) -> None:
        for name, value in coefs.items():
            w[F[name], HEADS.index(head)] = value

    # what the user just completed or liked weighs as much as the long-term
    # profile: a new interest shows on the very next page
    put("complete", bias=-1.0, sim_user=3.0, sim_recent=3.0, sim_skip=-1.0,
        completion_logit=0.9, skip_logit=-0.3, friend=0.3, followed=0.3)  # fmt: skip
    put("like", bias=-3.0, sim_user=2.5, sim_recent=1.5, like_logit=0.9, completion_logit=0.3)
    put("share", bias=-4.5, sim_user=2.0, share_logit=0.9, completion_logit=0.3)
    put("follow", bias=-5.0, sim_user=2.0, completion_logit=0.4, followed=-3.0)
    put("fast_skip", bias=-1.5, sim_user=-3.0, sim_skip=1.5, skip_logit=0.9,
        completion_logit=-0.3)  # fmt: skip
    return RankerWeights(w)


def with_log_priors(r: RankerWeights, log: InteractionLog) -> RankerWeights:
    """The same heads with the smoothing priors set to the log's own rates
    (completion, like, share, fast skip per impression)."""
    if len(log) == 0:
        return r
    from reelplane_ml.types import COMPLETION_RATIO

    return replace(
        r,
        prior_completion=float((log.completion >= COMPLETION_RATIO).mean()),
        prior_like=float(log.liked.mean()),
        prior_share=float(log.shared.mean()),
        prior_skip=float(log.fast_skip.mean()),
    )


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def stats_features(stats: VideoStats | None, r: RankerWeights) -> tuple[float, ...]:
    """(completion_logit, like_logit, share_logit, skip_logit, log_impressions,
    trend_velocity) from real-time statistics, smoothed towards the priors."""
    s = stats or VideoStats()
    n = s.impressions + r.prior_strength
    k = r.prior_strength
    return (
        _logit((s.completions + k * r.prior_completion) / n),
        _logit((s.likes + k * r.prior_like) / n),
        _logit((s.shares + k * r.prior_share) / n),
        _logit((s.fast_skips + k * r.prior_skip) / n),
        math.log1p(s.impressions),
        math.log1p(s.completions_per_min),
    )


#: The features `stats_matrix` fills, in its column order.
STATS_FEATURES = (
    "completion_logit",
    "like_logit",
    "share_logit",
    "skip_logit",
    "log_impressions",
    "trend_velocity",
)


def stats_matrix(stats: Sequence[VideoStats | None], r: RankerWeights) -> NDArray[np.float32]:
    """`stats_features` for many videos at once: (n, len(STATS_FEATURES))."""
    counts = np.zeros((len(stats), 6), dtype=np.float64)
    # one array assignment for the videos that have statistics, not one per row
    present = [(i, s) for i, s in enumerate(stats) if s is not None]
    if present:
        counts[[i for i, _ in present]] = [
            (s.impressions, s.completions, s.likes, s.shares, s.fast_skips, s.completions_per_min)
            for _, s in present
        ]
    k = r.prior_strength
    priors = np.array([r.prior_completion, r.prior_like, r.prior_share, r.prior_skip])
    # the four rates smoothed towards their priors, as logits, in one pass
    p = np.clip((counts[:, 1:5] + k * priors) / (counts[:, :1] + k), 1e-4, 1 - 1e-4)
    out = np.empty((len(stats), len(STATS_FEATURES)), dtype=np.float32)
    out[:, :4] = np.log(p / (1 - p))
    out[:, 4:] = np.log1p(counts[:, [0, 5]])
    return out


def head_probabilities(x: NDArray[np.float32], r: RankerWeights) -> NDArray[np.float32]:
    """(n, len(HEADS)) probabilities for feature rows x (n, len(FEATURES))."""
    z = np.clip(x @ r.weights, -30.0, 30.0)
    out: NDArray[np.float32] = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    return out


def head_weights(cfg: RankerConfig) -> NDArray[np.float32]:
    return np.array(
        [cfg.w_complete, cfg.w_like, cfg.w_share, cfg.w_follow, cfg.w_fast_skip], dtype=np.float32
    )


def diversity_factor(kth: int, cfg: RankerConfig) -> float:
    """Home-mixer's author diversity: (1 - floor) * decay^k + floor for the
    creator's k-th (0-based) video on the page."""
    return (1 - cfg.diversity_floor) * cfg.diversity_decay**kth + cfg.diversity_floor


def fatigue_factor(age_s: float, cfg: RankerConfig) -> float:
    """After "not interested" on a creator: hidden (0) for `fatigue_filter_s`,
    then x0.2 rising to 1.0 in four steps over `fatigue_discount_s`."""
    if age_s < cfg.fatigue_filter_s:
        return 0.0
    into = age_s - cfg.fatigue_filter_s
    if cfg.fatigue_discount_s <= 0 or into >= cfg.fatigue_discount_s:
        return 1.0
    step = int(4 * into / cfg.fatigue_discount_s)
    return 0.2 * (step + 1)


def trending_factor(z: float, cfg: RankerConfig) -> float:
    """x (1 + boost * clip(z, 0, 3))."""
    return 1.0 + cfg.trending_boost * min(max(z, 0.0), 3.0)
