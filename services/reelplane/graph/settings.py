"""Graph settings (`REELPLANE_*` variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from reelplane.settings import SECTION_CONFIG


class GraphSettings(BaseSettings):
    model_config = SECTION_CONFIG

    celebrity_follower_threshold: int = Field(
        10_000,
        ge=1,
        description="Followers from which a creator is a celebrity: their videos are "
        "pulled into Following at read time instead of pushed by fan-out. Default 10000",
    )
