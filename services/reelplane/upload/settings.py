"""Upload settings (`REELPLANE_UPLOAD_*`, `REELPLANE_PLAYBACK_*`, ...), apart from
the foundation's `Settings` so the upload service owns its knobs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reelplane.ports.objects import MIN_PART_SIZE
from reelplane.settings import ENV_PREFIX

MIB = 1024 * 1024


class UploadSettings(BaseSettings):
    """Upload, validation and playback configuration; each field documents its default."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    upload_max_size_bytes: int = Field(
        2 * 1024 * MIB, ge=1, description="Tus-Max-Size: largest upload, bytes. Default 2 GiB"
    )
    upload_part_size_bytes: int = Field(
        5 * MIB,
        ge=MIN_PART_SIZE,
        le=512 * MIB,
        description="Object-store multipart part size, bytes (>= 5 MiB, S3's minimum). "
        "Default 5 MiB",
    )
    upload_expiry_s: float = Field(
        86_400.0,
        gt=0,
        description="Upload-Expires: an unfinished upload lives this long. Default 24 h",
    )
    upload_idle_timeout_s: float = Field(
        60.0, gt=0, description="A PATCH body that sends nothing for this long is cut. Default 60 s"
    )
    upload_lock_s: float = Field(
        30.0,
        gt=0,
        description="Lease of one PATCH on its upload, renewed while bytes flow. Default 30 s",
    )
    upload_lock_wait_s: float = Field(
        5.0, ge=0, description="How long a PATCH waits for a busy upload before 423. Default 5 s"
    )
    upload_lease_linger_s: float = Field(
        2.0,
        ge=0,
        le=30,
        description="After a PATCH, its replica keeps the upload's lease this long, so the "
        "client's next PATCH (on the same connection, so the same replica) skips taking it "
        "again; a PATCH sent to another replica meanwhile waits at most this long. 0: give "
        "the lease up at once. Default 2 s",
    )
    upload_max_duration_s: float = Field(
        600.0, gt=0, description="Longest accepted video, seconds. Default 600 (10 min)"
    )
    upload_min_duration_s: float = Field(
        0.1, ge=0, description="Shortest accepted video, seconds. Default 0.1"
    )
    upload_min_side_px: int = Field(
        64, ge=2, description="Smallest accepted short side of the picture, pixels. Default 64"
    )
    upload_max_side_px: int = Field(
        4096, ge=16, description="Largest accepted long side of the picture, pixels. Default 4096"
    )
    upload_max_aspect_ratio: float = Field(
        4.0, ge=1, description="Largest accepted long/short side ratio. Default 4 (e.g. 9:36)"
    )
    upload_caption_max_chars: int = Field(
        2200, ge=0, le=2200, description="Longest caption, characters. Default 2200"
    )
    upload_max_hashtags: int = Field(30, ge=0, description="Most hashtags per video. Default 30")
    upload_announce_after_s: float = Field(
        30.0,
        gt=0,
        description="The janitor re-publishes events not confirmed as sent after this "
        "long. Default 30 s",
    )
    upload_reannounce_after_s: float = Field(
        300.0,
        gt=0,
        description="A video still waiting for its transcode (uploaded, or transcoding with "
        "no live worker lease) that has not moved for this long is announced to the "
        "workers again, whatever became of its event (an in-process bus restarted, a "
        "dead letter, a killed worker). Raise it when a transcode backlog often waits "
        "longer: each round adds one event per waiting video. Default 300 s",
    )
    upload_janitor_interval_s: float = Field(
        30.0,
        gt=0,
        description="How often the janitor expires uploads and re-announces. Default 30 s",
    )
    upload_work_dir: Path | None = Field(
        None,
        description="Scratch folder for probing finished uploads. Default: the system temp dir",
    )
    ffprobe_path: str = Field(
        "ffprobe", description="The ffprobe binary. Default ffprobe (on PATH)"
    )
    ffprobe_timeout_s: float = Field(120.0, gt=0, description="ffprobe time limit. Default 120 s")
    playback_origin_base: str = Field(
        "/v1/objects",
        description="URL prefix under which the origin serves objects (playlists, segments, "
        "thumbnails). Default /v1/objects (this service's byte-range route)",
    )
    edge_routing_table: Path | None = Field(
        None,
        description="Routing table of the EdgePoPs (a JSON or YAML file, e.g. the operator's "
        "ConfigMap mounted as a file). Default none: playback URLs point at the origin",
    )

    @model_validator(mode="after")
    def _sides(self) -> UploadSettings:
        if self.upload_min_side_px > self.upload_max_side_px:
            raise ValueError("upload_min_side_px must not exceed upload_max_side_px")
        return self
