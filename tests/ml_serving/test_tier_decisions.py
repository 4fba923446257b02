"""The fresh pool's vectorised tier rules are the scalar rules, video by video."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelplane_ml import explore
from reelplane_ml.config import ExplorationConfig
from reelplane_ml.types import VideoStats

pytestmark = pytest.mark.unit

videos = st.lists(
    st.tuples(
        st.integers(0, 30_000),  # impressions
        st.floats(0.0, 1.2),  # watch-through: shares watched over impressions (may exceed 1)
        st.floats(0.0, 7200.0),  # age, s
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(videos, st.floats(0.05, 0.95), st.integers(1, 5))
def test_vectorised_tier_decisions_match_the_scalar_rules(
    pool: list[tuple[int, float, float]], median: float, tiers: int
) -> None:
    cfg = ExplorationConfig(tiers=tiers)
    imp = np.asarray([n for n, _, _ in pool], np.int64)
    done = np.asarray([n * share for n, share, _ in pool], np.float64)
    ages = np.asarray([a for _, _, a in pool], np.float64)
    got = explore.tier_decisions(imp, done, median, cfg, age_s=ages)
    for i, (n, _, age) in enumerate(pool):
        stats = (
            VideoStats(explore_impressions=n, explore_watched_share=float(done[i]))
            if n or done[i]
            else None
        )
        want = explore.tier_decision(stats, median, cfg, age_s=age)
        alpha, beta = explore.posterior(stats, median, cfg)
        assert (int(got.tier[i]), int(got.audience[i]), bool(got.eligible[i])) == (
            want.tier,
            want.audience,
            want.eligible,
        )
        assert got.p_better[i] == pytest.approx(want.p_better, abs=1e-12)
        assert (got.alpha[i], got.beta[i]) == pytest.approx((alpha, beta))


def test_a_large_random_pool_gets_the_scalar_decisions() -> None:
    rng = np.random.default_rng(7)
    cfg = ExplorationConfig()
    imp = rng.integers(0, 5000, 5000)
    imp[::3] = rng.integers(0, 300, len(imp[::3]))  # many around tier 0's audience
    done = imp * rng.beta(2, 3, len(imp))
    ages = rng.uniform(0, 2 * cfg.tier0_window_s, len(imp))
    got = explore.tier_decisions(imp, done, 0.4, cfg, age_s=ages)
    want = [
        explore.tier_decision(
            VideoStats(explore_impressions=int(n), explore_watched_share=float(c)),
            0.4,
            cfg,
            age_s=float(a),
        )
        for n, c, a in zip(imp, done, ages, strict=True)
    ]
    assert got.tier.tolist() == [d.tier for d in want]
    assert got.audience.tolist() == [d.audience for d in want]
    assert got.eligible.tolist() == [d.eligible for d in want]
    assert {d.tier for d in want} >= {0, 1} and 0 < sum(d.eligible for d in want) < len(want)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 6), max_size=80),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
)
def test_least_served_is_the_random_tie_break_drawn_in_two_parts(
    impressions: list[int], k: int, seed: int
) -> None:
    """Every `k` least-served videos a random tie-break can pick (impressions
    plus a uniform draw, the smallest `k`) is `below` plus some of `ties`, and
    `below` plus any `k - len(below)` of `ties` is one of them."""
    imp = np.asarray(impressions, np.int64)
    new = np.flatnonzero(imp % 3 != 2)  # a subset of the pool, as tier 0 is
    below, ties = explore.least_served(new, imp, k)
    assert set(below) | set(ties) <= set(new.tolist())
    if len(new) <= k:
        assert sorted(below.tolist()) == new.tolist() and len(ties) == 0
        return
    assert len(below) < k <= len(below) + len(ties)
    assert len({int(imp[i]) for i in ties}) == 1
    assert all(imp[i] < imp[ties[0]] for i in below)
    key = imp[new] + np.random.default_rng(seed).random(len(new))
    picked = set(new[np.argpartition(key, k - 1)[:k]].tolist())
    assert set(below.tolist()) <= picked
    assert picked - set(below.tolist()) <= set(ties.tolist())
