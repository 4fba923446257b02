"""Notify settings (`REELPLANE_*` variables)."""

from __future__ import annotations

from email.utils import parseaddr

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from reelplane.notify.digest import DigestPeriod
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
    # -- digests (`reelplane notify digest`; the mail server is REELPLANE_MAIL_URL) --
    digest_period: DigestPeriod = Field(
        DigestPeriod.WEEKLY,
        description="What a digest covers: daily (the UTC day before the run) or weekly "
        "(the Monday-to-Monday UTC week before the run's week). Default weekly",
    )
    digest_from: str = Field(
        "Reelplane <digest@reelplane.local>",
        description="The digests' From address, e.g. Reelplane <digest@example.org>. "
        "Default Reelplane <digest@reelplane.local>",
    )
    digest_top_videos: int = Field(
        3, ge=0, le=20, description="Videos listed under 'Your top videos'. Default 3"
    )
    digest_followers_shown: int = Field(
        10,
        ge=0,
        le=100,
        description="New followers named in a digest (the rest are counted). Default 10",
    )
    digest_suggestions: int = Field(
        3, ge=0, le=20, description="Creators suggested in a digest. Default 3"
    )
    digest_claim_ttl_s: int = Field(
        3600,
        ge=60,
        description="Seconds after which a digest claimed but never marked sent (a run "
        "that crashed mid-send) is tried again by the next run. Default 3600",
    )
    digest_shards: int = Field(
        1,
        ge=1,
        le=65_536,
        description="Runs the users are split over by id, each sending its share (an "
        "Indexed Job's Pods; each takes its index from JOB_COMPLETION_INDEX or "
        "--shard-index). Default 1",
    )
    digest_batch: int = Field(
        200, ge=1, le=10_000, description="Users read per database round trip. Default 200"
    )

    @field_validator("digest_from")
    @classmethod
    def _an_address(cls, value: str) -> str:
        address = parseaddr(value)[1]
        if "@" not in address or address.startswith("@") or address.endswith("@"):
            raise ValueError(f"not a mail address: {value!r}")
        return value
