"""Notify settings (`REELPLANE_*` variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from reelplane.settings import SECTION_CONFIG


class NotifySettings(BaseSettings):
    model_config = SECTION_CONFIG

    notify_log_cap: int = Field(
        500, ge=10, le=10_000, description="Notifications kept per user (newest). Default 500"
    )
    notify_ttl_s: int = Field(
        30 * 86_400,
        ge=60,
        description="Seconds a notification is kept before it expires. Default 2592000 (30 days)",
    )
    notify_fanout_max: int = Field(
        10_000,
        ge=0,
        description="Most followers told that a creator posted (a larger audience is not "
        "notified past this many: they see the video in Following). Default 10000",
    )
    notify_live_queue: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Notifications queued for one WebSocket before the client counts as too "
        "slow and is disconnected (it catches up from the log with its cursor). Default 64",
    )
    notify_heartbeat_s: float = Field(
        20.0, gt=0, description="Seconds between the server's heartbeats on a WebSocket. Default 20"
    )
    notify_auth_timeout_s: float = Field(
        5.0, gt=0, description="Seconds a WebSocket has to authenticate. Default 5"
    )
