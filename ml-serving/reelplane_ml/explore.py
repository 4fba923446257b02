"""Exploration: how a new video finds its audience without followers.

A fresh video starts in tier 0 with an audience of `tier0_impressions`, to be
shown within `tier0_window_s` of its upload (the research's "200 impressions
in the first 30 minutes"). Its
completion rate, the mean share of it watched per impression in exploration
slots (watch-through of an untargeted audience, `VideoStats.explore_*`), gets
a Beta posterior (fractional successes)
with a prior centred on the cohort median (the median smoothed rate of fresh
videos); once judged (a new video after `min_impressions_to_judge`
exploration impressions, a promoted one after half its tier's audience),
P(rate > median) above `promote_above` multiplies its audience by
`tier_growth`; below `drop_below` it leaves the pool. Fresh slots go to the
least-served new videos (tier 0: every upload gets its first audience within
minutes) and, by `promoted_share`, to promoted videos by Thompson sampling
(tier >= 1: the better a video completes, the more it is drawn until its
audience is spent). Follower count is never an input. Pure functions.

Why watch-through, and only in exploration slots: nearly all full views come
from viewers already into the video's niche, and the other sources pick
exactly those viewers, so the share of full views, or any rate over all
impressions, measures who was shown the video more than the video. In the
simulator's world (`e2e/bench/recommender_quality.py`; 300 videos, 200 random
viewers each) mean watch-through correlates 0.81 with hidden quality, the
share of full views 0.29; over all impressions, two bottom-quartile videos
out-watched the top-1 % ones (0.60 vs 0.50) and were promoted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reelplane_ml.config import ExplorationConfig
from reelplane_ml.types import VideoStats

#: The cohort median before any fresh video has been judged (the simulator's
#: typical watch-through is 0.25-0.35; the first judged videos replace it).
DEFAULT_WATCH_THROUGH = 0.3
#: Exploration holds new videos back from ranked slots only once this many fresh
#: videos have been judged (`held_back`).
HOLD_AFTER_JUDGED = 10


@dataclass(frozen=True, slots=True)
class TierDecision:
    tier: int  # 0 = new; each promotion adds one
    audience: int  # impressions allowed so far
    eligible: bool  # may still get fresh slots
    p_better: float  # P(completion rate > cohort median)


def posterior(
    stats: VideoStats | None, median: float, cfg: ExplorationConfig
) -> tuple[float, float]:
    """(alpha, beta) of the completion-rate posterior, the prior worth
    `prior_strength` impressions at the cohort median."""
    s = stats or VideoStats()
    n = s.explore_impressions
    watched = min(max(s.explore_watched_share, 0.0), float(n))
    alpha = 1.0 + cfg.prior_strength * median + watched
    beta = 1.0 + cfg.prior_strength * (1.0 - median) + (n - watched)
    return alpha, beta


def p_better(alpha: float, beta: float, median: float) -> float:
    """P(rate > median) under Beta(alpha, beta), by the normal approximation."""
    total = alpha + beta
    mean = alpha / total
    sd = math.sqrt(alpha * beta / (total * total * (total + 1.0)))
    return 0.5 * (1.0 + math.erf((mean - median) / (sd * math.sqrt(2.0) + 1e-12)))


def tier_decision(
    stats: VideoStats | None, median: float, cfg: ExplorationConfig, *, age_s: float = 0.0
) -> TierDecision:
    """The video's tier, audience and whether it stays in the fresh pool. A
    video still in tier 0 `tier0_window_s` after its upload has had its chance."""
    n = stats.explore_impressions if stats else 0
    a, b = posterior(stats, median, cfg)
    p = p_better(a, b, median)
    if n >= cfg.min_impressions_to_judge and p < cfg.drop_below:
        return TierDecision(0, cfg.tier0_impressions, False, p)
    tier = 0
    audience = cfg.tier0_impressions
    judged = cfg.min_impressions_to_judge  # a new video is judged early, later tiers at half
    while tier + 1 < cfg.tiers and n >= judged and p > cfg.promote_above:
        tier += 1
        audience *= cfg.tier_growth
        judged = audience // 2
    if tier == 0 and age_s > cfg.tier0_window_s:
        return TierDecision(0, audience, False, p)
    return TierDecision(tier, audience, n < audience, p)


@dataclass(frozen=True, slots=True)
class TierDecisions:
    """`tier_decision` and `posterior` of many videos at once (arrays, one row each)."""

    tier: NDArray[np.int64]
    audience: NDArray[np.int64]
    eligible: NDArray[np.bool_]
    p_better: NDArray[np.float64]
    alpha: NDArray[np.float64]
    beta: NDArray[np.float64]


def tier_decisions(
    impressions: NDArray[np.int64],
    watched_share: NDArray[np.float64],
    median: float,
    cfg: ExplorationConfig,
    *,
    age_s: NDArray[np.float64],
) -> TierDecisions:
    """`tier_decision` and `posterior` for a whole fresh pool in numpy (the same
    rules: a replica judges thousands of fresh videos every second), from each
    video's exploration impressions and watched share."""
    n = np.asarray(impressions, np.int64)
    done = np.clip(np.asarray(watched_share, np.float64), 0.0, n)
    alpha = 1.0 + cfg.prior_strength * median + done
    beta = 1.0 + cfg.prior_strength * (1.0 - median) + (n - done)
    total = alpha + beta
    sd = np.sqrt(alpha * beta / (total * total * (total + 1.0)))
    z = (alpha / total - median) / (sd * math.sqrt(2.0) + 1e-12)
    # math.erf once per distinct z (most of a pool shares a few: no exploration yet)
    z_set, z_at = np.unique(z, return_inverse=True)
    erf = np.fromiter(map(math.erf, z_set.tolist()), np.float64, len(z_set))
    p = 0.5 * (1.0 + erf[z_at.reshape(-1)])
    dropped = (n >= cfg.min_impressions_to_judge) & (p < cfg.drop_below)
    tier = np.zeros(len(n), np.int64)
    audience = np.full(len(n), cfg.tier0_impressions, np.int64)
    judged = np.full(len(n), cfg.min_impressions_to_judge)
    good = p > cfg.promote_above
    for _ in range(cfg.tiers - 1):  # once a video stops climbing it stays put
        up = good & (n >= judged) & ~dropped
        tier = np.where(up, tier + 1, tier)
        audience = np.where(up, audience * cfg.tier_growth, audience)
        judged = np.where(up, audience // 2, judged)
    expired = (tier == 0) & (np.asarray(age_s, np.float64) > cfg.tier0_window_s)
    eligible = ~dropped & ~expired & (n < audience)
    return TierDecisions(tier, audience, eligible, p, alpha, beta)


def held_back(
    tier: NDArray[np.int64],
    impressions: NDArray[np.int64],
    cfg: ExplorationConfig,
    *,
    age_s: NDArray[np.float64],
) -> NDArray[np.bool_]:
    """Which fresh videos only exploration slots may show (besides their
    creator's followers): every one not promoted, being judged or judged
    no better than the cohort (the traffic-pool rule: a new video reaches the
    ranked feed by earning it, so a poor one is seen by its first audience
    only). A video that never got enough exploration traffic to be judged
    within `tier0_window_s` is released to the ranked feed, and nothing is
    held while fewer than `HOLD_AFTER_JUDGED` fresh videos have been judged
    at all (a small or new instance, whose exploration traffic cannot judge
    its uploads: they go to the ranked feed as before)."""
    n = np.asarray(impressions)
    unjudged = n < cfg.min_impressions_to_judge
    if int((~unjudged).sum()) < HOLD_AFTER_JUDGED:
        return np.zeros(len(n), np.bool_)
    expired = np.asarray(age_s, np.float64) > cfg.tier0_window_s
    out: NDArray[np.bool_] = (np.asarray(tier) == 0) & ~(unjudged & expired)
    return out


def least_served(
    new: NDArray[np.int64], impressions: NDArray[np.int64], k: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The `k` of `new` (indices into `impressions`) with the fewest
    impressions, ties broken at random, split so that a request draws only the
    random part: (`below`: every one under the cut, all taken; `ties`: those
    exactly at the cut, of which a request takes `k - len(below)` uniformly).
    Impressions are whole numbers, so this is what a random tie-break picks;
    the split is computed once per pool snapshot."""
    new = np.asarray(new, np.int64)
    if len(new) <= k:
        return new, np.zeros(0, np.int64)
    n = np.asarray(impressions)[new]
    cut = np.partition(n, k - 1)[k - 1]
    return new[n < cut], new[n == cut]


def thompson_sample(
    stats: VideoStats | None, median: float, cfg: ExplorationConfig, rng: np.random.Generator
) -> float:
    """One draw of the completion rate from the video's posterior."""
    a, b = posterior(stats, median, cfg)
    return float(rng.beta(a, b))


def fresh_priority(
    tier: NDArray[np.int64],
    impressions: NDArray[np.int64],
    theta: NDArray[np.float64],
    sim: NDArray[np.float32],
) -> NDArray[np.float64]:
    """Who gets a fresh slot. A new video (tier 0) is owed its first audience:
    the least-served come first (so a new upload is judged within minutes),
    ties broken by its completion-rate draw, never by relevance: a first
    audience picked by interest would be judging the audience, not the video.
    A promoted video earns its larger audience by Thompson sampling: its
    completion-rate draw, times relevance to the user."""
    new = theta / (1.0 + impressions.astype(np.float64))
    promoted = theta * (1.0 + np.maximum(sim.astype(np.float64), 0.0))
    out: NDArray[np.float64] = np.where(tier > 0, promoted, new)
    return out


def cohort_median(rates: list[float], default: float) -> float:
    """Median of the fresh videos' smoothed watch-through (default when none)."""
    if not rates:
        return default
    return float(np.median(np.asarray(rates)))


def slot_kinds(
    limit: int, fresh_ratio: float, random_ratio: float, rng: np.random.Generator
) -> list[str]:
    """Which slots of a page are "fresh", "random" or "ranked": fresh slots spread
    evenly (the expected share is `fresh_ratio`, pages shorter than 1/ratio get
    one with that probability); each slot is uniformly random with `random_ratio`."""
    kinds = ["ranked"] * limit
    if limit <= 0:
        return kinds
    expected = fresh_ratio * limit
    n_fresh = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
    if n_fresh:
        step = limit / n_fresh
        offset = rng.random() * step
        for i in range(n_fresh):
            kinds[min(limit - 1, int(offset + i * step))] = "fresh"
    for i in range(limit):
        if rng.random() < random_ratio:
            kinds[i] = "random"
    return kinds
