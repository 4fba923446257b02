"""Feed settings (`REELPLANE_*` variables)."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings

from reelplane.settings import SECTION_CONFIG


class FeedSettings(BaseSettings):
    model_config = SECTION_CONFIG

    feed_page_cache_ttl_s: float = Field(
        300, gt=0, description="How long an assembled For You page is cached, s. Default 300"
    )
    feed_timeline_cap: int = Field(
        1000, ge=10, description="Most videos kept in one Following timeline. Default 1000"
    )
    feed_timeline_ttl_s: int = Field(
        30 * 86400, ge=0, description="Timeline entries expire after this, s. Default 30 days"
    )
    feed_fanout_batch: int = Field(
        1000, ge=1, le=10_000, description="Followers written per fan-out batch. Default 1000"
    )
    feed_trim_every: int = Field(
        64,
        ge=1,
        description="A timeline is trimmed to the cap on about one push in this many "
        "(amortizes the read a trim costs). Default 64",
    )
    feed_recent_follow_pull_s: int = Field(
        600,
        ge=0,
        description="Creators followed within this many seconds are also pulled at read "
        "time, so a follow shows in Following at once (the backfill follows). Default 600",
    )
    feed_backfill_videos: int = Field(
        20, ge=0, description="Recent videos copied into a timeline on follow. Default 20"
    )
    feed_foryou_list_size: int = Field(
        200, ge=10, le=2000, description="Videos assembled per For You session. Default 200"
    )
    feed_fresh_window_s: int = Field(
        7 * 86400, ge=60, description="Videos this recent are 'fresh' candidates. Default 7 days"
    )
    feed_exploration_every: int = Field(
        5,
        ge=0,
        description="Every Nth For You slot goes to a new, little-seen video (0: none). Default 5",
    )
    feed_diversity_window: int = Field(
        5, ge=1, description="No creator twice within this many For You items. Default 5"
    )
    feed_hashtag_max_in_window: int = Field(
        2, ge=1, description="Most items sharing a hashtag within the window. Default 2"
    )
    feed_shard_count: int = Field(
        1,
        ge=1,
        le=1024,
        description="Feed shards in all (FeedShard `shardCount`); a shard serves the users "
        "with hash(user_id) % count == index. Default 1: one feed serves everyone",
    )
    # After the count: its validator compares the two.
    feed_shard_index: int = Field(
        0, ge=0, description="This feed's shard (FeedShard `shardIndex`). Default 0"
    )
    recommender_url: str = Field(
        "",
        description="Base URL of the recommender (ml-serving); `embedded:` runs it in this "
        "process (what `reelplane dev` sets when unset); empty: candidates come from "
        "trending, fresh videos and followed creators. Default empty",
    )
    recommender_timeout_s: float = Field(
        0.15, gt=0, description="Recommender call budget; on timeout fall back. Default 0.15"
    )

    @field_validator("feed_shard_index")
    @classmethod
    def _index_below_count(cls, index: int, info: ValidationInfo) -> int:
        count = info.data.get("feed_shard_count", 1)
        if index >= count:
            raise ValueError(f"must be below the shard count ({count})")
        return index
