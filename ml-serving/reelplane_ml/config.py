"""RecommenderCore's tunables (the `Recommender` resource's spec renders into
these; every field has its default and unit here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SourceCaps(BaseModel):
    """At most this many candidates per source (home-mixer's per-source caps)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ann: int = Field(300, ge=0, le=5000)
    recent: int = Field(100, ge=0, le=1000)
    trending: int = Field(100, ge=0, le=1000)
    friends: int = Field(100, ge=0, le=1000)
    following: int = Field(50, ge=0, le=1000)
    fresh: int = Field(50, ge=0, le=1000)


class ExplorationConfig(BaseModel):
    """Fresh-pool slots allocated by Thompson sampling on completion rate, in
    traffic tiers; a small uniformly random slice for unbiased evaluation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fresh_slot_ratio: float = Field(0.1, ge=0.0, le=0.5, description="share of slots")
    random_slot_ratio: float = Field(0.01, ge=0.0, le=0.1, description="share of slots")
    fresh_window_s: int = Field(48 * 3600, ge=60, description="a video is fresh this long")
    tier0_impressions: int = Field(200, ge=10, description="audience of a new video")
    tier0_window_s: int = Field(1800, ge=60, description="tier 0 lasts this long after upload")
    tier_growth: int = Field(10, ge=2, description="each promotion multiplies the audience")
    tiers: int = Field(3, ge=1, le=6)
    min_impressions_to_judge: int = Field(
        50, ge=10, description="exploration impressions before a new video is judged"
    )
    promote_above: float = Field(0.8, gt=0.5, lt=1.0, description="P(rate > median)")
    drop_below: float = Field(0.2, gt=0.0, lt=0.5, description="P(rate > median)")
    prior_strength: float = Field(10.0, gt=0.0, description="pseudo-impressions of the prior")
    promoted_share: float = Field(0.5, ge=0.0, le=1.0, description="of fresh slots")
    pool_sample: int = Field(500, ge=10, description="fresh videos scored per request")
    pool_scan: int = Field(5000, ge=100, description="newest fresh videos judged each second")


class RankerConfig(BaseModel):
    """score = sum(weight * p_head), then multiplicative re-scorers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    w_complete: float = 1.0
    w_like: float = 2.0
    w_share: float = 4.0
    w_follow: float = 4.0
    w_fast_skip: float = -2.0
    trending_boost: float = Field(0.2, ge=0.0, description="x (1 + boost * z), z in [0, 3]")
    trending_max_share: float = Field(
        0.3, ge=0.0, le=1.0, description="of a page's slots for trending-only candidates"
    )
    friend_boost: float = Field(1.2, ge=1.0)
    fresh_creator_boost: float = Field(1.3, ge=1.0)
    promoted_boost: float = Field(
        1.5, ge=1.0, description="x in ranked slots for a fresh video exploration promoted"
    )
    fresh_creator_age_s: int = Field(7 * 86400, ge=0, description="a creator's first upload")
    diversity_decay: float = Field(0.5, gt=0.0, le=1.0)
    diversity_floor: float = Field(0.25, ge=0.0, le=1.0)
    creator_window: int = Field(5, ge=1, description="one video per creator per this many slots")
    fatigue_filter_s: int = Field(14 * 86400, ge=0, description="not-interested hides this long")
    fatigue_discount_s: int = Field(140 * 86400, ge=0, description="then discounts this long")


class RecommenderConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    caps: SourceCaps = SourceCaps()
    exploration: ExplorationConfig = ExplorationConfig()
    ranker: RankerConfig = RankerConfig()
    #: Candidates ranked per request at most (after dedup and filters).
    max_candidates: int = Field(700, ge=10, le=10_000)
    #: Strong engagements (completion or like) among this many latest watches
    #: feed the "recent" source (more like what the user just loved).
    recent_window: int = Field(5, ge=1, le=50)
    #: Share of a page given to the "recent" source when every one of the last
    #: `recent_window` views was a strong engagement (proportionally less otherwise).
    recent_slot_share: float = Field(0.5, ge=0.0, le=1.0)
