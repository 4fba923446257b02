"""Pure rules: exploration tiers, Thompson sampling, re-scorers, towers, artifacts."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from reelplane_ml import explore
from reelplane_ml.artifact import ModelArtifact, default_artifact
from reelplane_ml.config import ExplorationConfig, RankerConfig
from reelplane_ml.ranker import (
    diversity_factor,
    fatigue_factor,
    stats_features,
    stats_matrix,
    trending_factor,
)
from reelplane_ml.retrieval import IndexParams
from reelplane_ml.stats import LiveStats
from reelplane_ml.towers import UserHistory, content_towers, user_vectors, video_vectors
from reelplane_ml.types import IMAGE_DIM, TEXT_DIM, VideoFeatures, VideoStats

CFG = ExplorationConfig()


def stats(n: int, rate: float) -> VideoStats:
    return VideoStats(impressions=n, explore_impressions=n, explore_watched_share=n * rate)


@pytest.mark.unit
def test_a_new_video_gets_the_first_tier_audience() -> None:
    d = explore.tier_decision(None, 0.3, CFG)
    assert (d.tier, d.audience, d.eligible) == (0, 200, True)


@pytest.mark.unit
def test_a_video_that_completes_well_is_promoted_tenfold_per_tier() -> None:
    d = explore.tier_decision(stats(100, 0.6), 0.3, CFG)
    assert (d.tier, d.audience, d.eligible) == (1, 2000, True)
    d = explore.tier_decision(stats(1000, 0.6), 0.3, CFG)
    assert (d.tier, d.audience) == (2, 20_000)
    d = explore.tier_decision(stats(20_000, 0.6), 0.3, CFG)
    assert (d.tier, d.eligible) == (2, False)  # the last tier's audience is spent


@pytest.mark.unit
def test_a_poor_video_leaves_the_pool_and_an_average_one_stops_at_its_tier() -> None:
    assert not explore.tier_decision(stats(100, 0.1), 0.3, CFG).eligible
    avg = explore.tier_decision(stats(150, 0.3), 0.3, CFG)
    assert (avg.tier, avg.eligible) == (0, True)
    assert not explore.tier_decision(stats(200, 0.3), 0.3, CFG).eligible


@pytest.mark.unit
def test_p_better_grows_with_the_completion_rate() -> None:
    ps = [explore.p_better(*explore.posterior(stats(200, r), 0.3, CFG), 0.3) for r in
          (0.1, 0.2, 0.3, 0.4, 0.5)]  # fmt: skip
    assert ps == sorted(ps) and ps[0] < 0.01 and ps[-1] > 0.99


@pytest.mark.unit
def test_exploration_judges_how_far_viewers_watch_not_how_many_finish() -> None:
    """A niche video finished by the 30 % of its audience already into its
    topic and swiped away by the rest is not the better video: one that every
    viewer watches 60 % of is."""
    niche = VideoStats(200, 60, explore_impressions=200, explore_watched_share=60 + 140 * 0.02)
    broad = VideoStats(200, 0, explore_impressions=200, explore_watched_share=200 * 0.6)
    assert explore.tier_decision(broad, 0.3, CFG).tier == 1
    niche_d = explore.tier_decision(niche, 0.3, CFG)
    assert niche_d.tier == 0 and niche_d.p_better < explore.tier_decision(broad, 0.3, CFG).p_better


@pytest.mark.unit
def test_exploration_judges_only_impressions_in_exploration_slots() -> None:
    """Viewers the ranked sources picked by interest finish nearly anything of
    their niche: those impressions neither promote nor use up the audience."""
    targeted = VideoStats(impressions=5000, completions=4800)
    d = explore.tier_decision(targeted, 0.3, CFG)
    assert (d.tier, d.audience, d.eligible) == (0, 200, True)
    stats = LiveStats()
    stats.record("v", 0, completed=True, watched_share=1.0)
    stats.record("v", 1, explored=True, watched_share=0.25)
    got = stats.get("v")
    assert got is not None and (got.impressions, got.explore_impressions) == (2, 1)
    assert got.explore_watched_share == 0.25


@pytest.mark.unit
def test_follower_count_is_never_an_input_to_exploration() -> None:
    for fn in (explore.tier_decision, explore.thompson_sample, explore.posterior):
        assert "follow" not in " ".join(inspect.signature(fn).parameters)
    assert not any("follow" in f for f in VideoStats.__dataclass_fields__)


@pytest.mark.unit
def test_thompson_samples_spread_for_new_videos_and_narrow_with_evidence() -> None:
    rng = np.random.default_rng(0)
    new = [explore.thompson_sample(None, 0.3, CFG, rng) for _ in range(500)]
    known = [explore.thompson_sample(stats(2000, 0.3), 0.3, CFG, rng) for _ in range(500)]
    assert np.std(new) > 5 * np.std(known)
    assert abs(np.mean(known) - 0.3) < 0.01


@pytest.mark.unit
def test_fresh_slots_are_the_configured_share() -> None:
    rng = np.random.default_rng(1)
    kinds = [k for _ in range(2000) for k in explore.slot_kinds(10, 0.1, 0.01, rng)]
    assert abs(kinds.count("fresh") / len(kinds) - 0.1) < 0.01
    assert abs(kinds.count("random") / len(kinds) - 0.01) < 0.004
    assert explore.slot_kinds(0, 0.1, 0.01, rng) == []


@pytest.mark.unit
def test_rescorers_follow_home_mixer_constants() -> None:
    cfg = RankerConfig()
    assert [round(diversity_factor(k, cfg), 4) for k in range(4)] == [1.0, 0.625, 0.4375, 0.3438]
    assert fatigue_factor(0, cfg) == 0.0
    assert fatigue_factor(13 * 86400, cfg) == 0.0
    assert fatigue_factor(15 * 86400, cfg) == pytest.approx(0.2)
    assert fatigue_factor((14 + 36) * 86400, cfg) == pytest.approx(0.4)
    assert fatigue_factor(200 * 86400, cfg) == 1.0
    assert trending_factor(-1, cfg) == 1.0 and trending_factor(10, cfg) == pytest.approx(1.6)


@pytest.mark.unit
def test_real_time_rates_are_smoothed_towards_the_prior() -> None:
    r = default_artifact().ranker
    none = stats_features(None, r)
    one = stats_features(VideoStats(impressions=1, completions=1), r)
    many = stats_features(VideoStats(impressions=1000, completions=1000), r)
    assert none[0] < one[0] < many[0]
    assert one[0] - none[0] < 0.2  # one completion barely moves the estimate


@pytest.mark.unit
def test_the_batched_stats_features_are_the_per_video_ones() -> None:
    """`stats_matrix` (what ranking runs) gives each row `stats_features`, with
    videos that have no statistics among ones that do, and clipped extremes."""
    r = default_artifact().ranker
    rows: list[VideoStats | None] = [
        None,
        VideoStats(impressions=1, completions=1),
        VideoStats(
            impressions=40, completions=31, likes=7, shares=2, fast_skips=3, completions_per_min=4.5
        ),
        None,
        VideoStats(impressions=10**9, completions=10**9, likes=0, fast_skips=10**9),
    ]
    got = stats_matrix(rows, r)
    assert got.shape == (len(rows), 6) and got.dtype == np.float32
    for i, st in enumerate(rows):
        assert got[i].tolist() == pytest.approx(stats_features(st, r), rel=1e-6, abs=1e-6)
    assert stats_matrix([], r).shape == (0, 6)


@pytest.mark.unit
def test_live_stats_count_totals_and_velocity() -> None:
    s = LiveStats(window_min=5)
    for k in range(10):
        s.record("a", 60_000 * 10 + k, completed=k % 2 == 0, liked=k == 0)
    s.record("b", 60_000 * 10, completed=False)
    a = s.get("a")
    assert a is not None and (a.impressions, a.completions, a.likes) == (10, 5, 1)
    assert a.completions_per_min == pytest.approx(1.0)
    assert [v for v, _ in s.trending(5)] == ["a"]
    s.record("b", 60_000 * 20)  # ten minutes later: a's window is over
    a = s.get("a")
    assert a is not None and a.impressions_per_min == 0.0 and a.impressions == 10
    assert s.get("missing") is None


def features(i: int, seed: int = 0) -> VideoFeatures:
    rng = np.random.default_rng(seed + i)
    cap = rng.standard_normal(TEXT_DIM).astype(np.float32)
    return VideoFeatures(f"v{i}", "c1", cap / np.linalg.norm(cap),
                         rng.random(IMAGE_DIM).astype(np.float32), ("a", "b"), 20_000)  # fmt: skip


@pytest.mark.unit
def test_content_towers_put_a_user_next_to_what_they_watched() -> None:
    w = content_towers()
    vids = [features(i) for i in range(50)]
    vec, hist = video_vectors(w, vids)
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    u = user_vectors(w, hist, [UserHistory([7], [1.0], [7], [], [], (), 12.0)])[0]
    assert int(np.argmax(vec @ u)) == 7


@pytest.mark.unit
def test_artifact_round_trips_and_rejects_garbage() -> None:
    a = ModelArtifact("v9", content_towers(seed=3), default_artifact().ranker,
                      IndexParams(kind="ivf", nprobe=64), {"recall@100": 0.3})  # fmt: skip
    b = ModelArtifact.from_bytes(a.to_bytes())
    assert (b.version, b.index, dict(b.metrics)) == ("v9", a.index, {"recall@100": 0.3})
    vids = [features(i) for i in range(5)]
    assert np.allclose(video_vectors(a.towers, vids)[0], video_vectors(b.towers, vids)[0])
    assert np.allclose(a.ranker.weights, b.ranker.weights)
    with pytest.raises(ValueError, match="not a model artifact"):
        ModelArtifact.from_bytes(b"hello")
    assert a.towers.without_ids().video_ids == ()


@pytest.mark.unit
def test_new_videos_are_served_least_served_first_and_promoted_ones_by_their_draw() -> None:
    tier = np.array([0, 0, 0, 1, 1])
    imps = np.array([0, 50, 150, 300, 300])
    theta = np.array([0.1, 0.9, 0.9, 0.6, 0.3])
    sim = np.zeros(5, np.float32)
    p = explore.fresh_priority(tier, imps, theta, sim)
    assert p[0] > p[1] > p[2]  # tier 0: fewest impressions first, whatever the draw
    assert p[3] > p[4]  # promoted: the better draw
    # a new video's first audience is not picked by interest; a promoted one's is
    relevant = explore.fresh_priority(tier, imps, theta, np.ones(5, np.float32))
    assert relevant[:3].tolist() == p[:3].tolist()
    assert (relevant[3:] > p[3:]).all()


@pytest.mark.unit
def test_held_back_once_exploration_judges_until_promoted_or_never_judged_in_time() -> None:
    tier = np.array([0, 0, 1, 0])
    imps = np.array([60, 10, 600, 10])
    ages = np.array([60.0, 60.0, 60.0, CFG.tier0_window_s + 1.0])
    # too few judged videos (a small instance): nothing is held
    assert not explore.held_back(tier, imps, CFG, age_s=ages).any()
    judged = explore.HOLD_AFTER_JUDGED
    tier_n = np.concatenate([tier, np.zeros(judged, np.int64)])
    imps_n = np.concatenate([imps, np.full(judged, CFG.min_impressions_to_judge)])
    ages_n = np.concatenate([ages, np.full(judged, 60.0)])
    held = explore.held_back(tier_n, imps_n, CFG, age_s=ages_n)
    # judged and not promoted, being judged: held; promoted: not; unjudged in time: released
    assert held[:4].tolist() == [True, True, False, False]


@pytest.mark.unit
def test_tier_zero_lasts_its_window_but_a_promoted_video_stays() -> None:
    late = CFG.tier0_window_s + 1
    assert explore.tier_decision(stats(20, 0.3), 0.3, CFG, age_s=60).eligible
    assert not explore.tier_decision(stats(20, 0.3), 0.3, CFG, age_s=late).eligible
    assert explore.tier_decision(stats(150, 0.6), 0.3, CFG, age_s=late).eligible


@pytest.mark.unit
def test_ranker_priors_come_from_the_log() -> None:
    from reelplane_ml.interactions import Engagement, InteractionLog
    from reelplane_ml.ranker import with_log_priors

    log = InteractionLog.from_records(
        Engagement(
            user_id="u", video_id=f"v{i}", at_ms=i, watched_ms=w, duration_ms=10_000, liked=i == 0
        )
        for i, w in enumerate([10_000, 10_000, 500, 5_000])
    )
    r = with_log_priors(default_artifact().ranker, log)
    assert (r.prior_completion, r.prior_like, r.prior_skip) == (0.5, 0.25, 0.25)
