"""Engagement settings (`REELPLANE_*` variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from reelplane.settings import SECTION_CONFIG


class EngagementSettings(BaseSettings):
    model_config = SECTION_CONFIG

    comment_max_chars: int = Field(
        500, ge=1, le=2000, description="Longest comment, in characters. Default 500"
    )
    completion_ratio: float = Field(
        0.9,
        gt=0,
        le=1,
        description="watched_ms / duration_ms from which a watch counts as a completion "
        "(trending, and For You does not show the video again). Default 0.9",
    )
    trending_window_s: int = Field(
        1800, ge=60, description="Sliding window of trending counts, seconds. Default 1800"
    )
    trending_bucket_s: int = Field(
        60, ge=1, description="Granularity the window slides by, seconds. Default 60"
    )
    watch_history_ttl_s: int = Field(
        180 * 86400, ge=0, description="How long watch history is kept (0: forever). 180 days"
    )
