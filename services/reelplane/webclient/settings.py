"""Web client settings (`REELPLANE_*` variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from reelplane.settings import SECTION_CONFIG


class WebSettings(BaseSettings):
    model_config = SECTION_CONFIG

    web_enabled: bool = Field(
        True,
        description="Serve the browser client at / (with the gateway). Default true",
    )
    web_static_dir: Path | None = Field(
        None,
        description="Folder of the assembled client (`reelplane web build` writes it). "
        "Default .cache/web/static in the source checkout",
    )
    web_media_origins: list[str] = Field(
        default_factory=list,
        description="Origins besides the gateway's own that serve playback (edge PoPs), "
        "allowed by the client's Content-Security-Policy (JSON list). Default []",
    )
