"""Transcode worker settings (`REELPLANE_TRANSCODE_*`, `REELPLANE_FFMPEG_PATH`, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reelplane.errors import ConfigError
from reelplane.settings import ENV_PREFIX, setting_name
from reelplane_transcode.ladder import LadderSpec, expand_rungs, parse_ladder_document, parse_rungs

#: Defaults of the worker's consumer: the topic uploads are announced on, and the
#: group the worker commits in (a TranscodePool sets its own, whose lag it scales on).
DEFAULT_TOPIC = "uploads"
DEFAULT_GROUP = "transcode"


class TranscodeSettings(BaseSettings):
    """How the worker encodes; each field documents its default."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    transcode_accel: Literal["none", "cuda", "cuda-decode"] = Field(
        "none",
        description="none: libx264/libx265 on the CPU; cuda: NVDEC decode, scale_cuda, "
        "h264_nvenc/hevc_nvenc (a GPU node), falling back to cuda-decode (or none) when a "
        "probe at the first job finds no working NVENC (e.g. an H100) or NVDEC; "
        "cuda-decode: NVDEC decode, libx264/libx265. Default none",
    )
    transcode_topic: str = Field(
        DEFAULT_TOPIC,
        min_length=1,
        description="Topic the uploads are consumed from. Default uploads",
    )
    transcode_group: str = Field(
        DEFAULT_GROUP,
        min_length=1,
        description="Consumer group of the workers (a TranscodePool's spec.kafka.consumerGroup, "
        "whose lag sizes the pool). Default transcode",
    )
    transcode_ladder_file: Path | None = Field(
        None,
        description="A TranscodePool's ladder.json (segmentSeconds and renditions, each "
        "rung in its own codec, height = short side); when set it replaces "
        "REELPLANE_TRANSCODE_RUNGS, _CODECS and _SEGMENT_S. Default none",
    )
    transcode_rungs: str = Field(
        "360:800:500,720:2800:1700,1080:5000:3000",
        description="Ladder rungs as short-side:h264-kbps:hevc-kbps, comma separated, each "
        "in every codec of REELPLANE_TRANSCODE_CODECS. Default 360p, 720p, 1080p",
    )
    transcode_codecs: str = Field(
        "h264,hevc", description="Video codecs of every rung, comma separated. Default h264,hevc"
    )
    transcode_h264_preset: str = Field("veryfast", description="libx264 preset. Default veryfast")
    transcode_hevc_preset: str = Field("superfast", description="libx265 preset. Default superfast")
    transcode_nvenc_preset: str = Field("p4", description="NVENC preset (p1..p7). Default p4")
    transcode_segment_s: float = Field(
        2.0, gt=0.5, le=10, description="HLS segment (and keyframe) interval, seconds. Default 2"
    )
    transcode_stills_interval_s: float = Field(
        3.0, gt=0, description="One still every this many seconds (recommender input). Default 3"
    )
    transcode_max_fps: float = Field(60.0, gt=0, description="Frame-rate cap. Default 60")
    transcode_audio_kbps: int = Field(128, ge=32, le=512, description="AAC bit rate. Default 128")
    transcode_lease_s: float = Field(
        60.0,
        gt=0,
        description="A worker's claim on a job; renewed every third of it while it works, so "
        "a killed worker's job is taken over after at most this long. Default 60 s",
    )
    transcode_max_attempts: int = Field(
        3, ge=1, description="Claims of one asset before it is marked failed. Default 3"
    )
    transcode_timeout_s: float = Field(
        3600.0, gt=0, description="Longest one ffmpeg run may take. Default 3600 s"
    )
    transcode_progress_interval_s: float = Field(
        1.0, gt=0, description="How often progress is written to the video rows. Default 1 s"
    )
    transcode_upload_concurrency: int = Field(
        8, ge=1, le=64, description="Objects uploaded at once. Default 8"
    )
    transcode_work_dir: Path | None = Field(
        None, description="Scratch folder for sources and outputs. Default: the system temp dir"
    )
    ffmpeg_path: str = Field("ffmpeg", description="The ffmpeg binary. Default ffmpeg (on PATH)")
    ffprobe_path: str = Field("ffprobe", description="The ffprobe binary. Default ffprobe")

    @field_validator("transcode_rungs")
    @classmethod
    def _rungs(cls, value: str) -> str:
        parse_rungs(value)
        return value

    @field_validator("transcode_codecs")
    @classmethod
    def _codecs(cls, value: str) -> str:
        codecs = [c.strip() for c in value.split(",") if c.strip()]
        if not codecs or any(c not in ("h264", "hevc") for c in codecs):
            raise ValueError("transcode_codecs must list h264 and/or hevc")
        return value

    @property
    def codecs(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.transcode_codecs.split(",") if c.strip())


def load_ladder(settings: TranscodeSettings) -> LadderSpec:
    """The ladder the worker encodes: the pool's ladder file when
    `transcode_ladder_file` is set, else the rungs, codecs and segment settings.
    A missing, unreadable or malformed file is one ConfigError naming the setting."""
    path = settings.transcode_ladder_file
    if path is None:
        rungs = expand_rungs(parse_rungs(settings.transcode_rungs), settings.codecs)
        return LadderSpec(rungs=rungs, segment_s=settings.transcode_segment_s)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            setting_name("transcode_ladder_file"), f"cannot read {path}: {reason}"
        ) from None
    try:
        return parse_ladder_document(text)
    except ValueError as exc:
        raise ConfigError(setting_name("transcode_ladder_file"), f"{path}: {exc}") from None
