"""What ffprobe says about a source file, and whether we accept it (pure).

`parse_probe` turns ffprobe's JSON (`-show_format -show_streams -count_packets`)
into a typed `ProbeResult`; `rejection_reason` applies the upload rules. The
transcode worker plans its ladder from the same `ProbeResult`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict

#: Containers we take (ffprobe's format names) and what users are told to send.
SUPPORTED_CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm"})
SUPPORTED_VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "prores"})
_PARTIAL = re.compile(r"partial file|moov atom not found|truncat", re.IGNORECASE)
_LOG_PREFIX = re.compile(r"^\[[^\]]*@ ?0x[0-9a-f]+\]\s*")


class VideoStreamInfo(BaseModel):
    """The first real video stream (cover art excluded). Sizes in pixels; the
    display size has the rotation applied (a phone's portrait clip stored as
    1920x1080 with rotation 90 displays as 1080x1920)."""

    model_config = ConfigDict(frozen=True)

    codec: str
    profile: str | None = None
    width: int
    height: int
    rotation_deg: int = 0
    fps: float | None = None
    nb_frames: int | None = None
    nb_read_packets: int | None = None
    pix_fmt: str | None = None
    bit_rate_bps: int | None = None

    @property
    def display_width(self) -> int:
        return self.height if self.rotation_deg % 180 == 90 else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation_deg % 180 == 90 else self.height


class AudioStreamInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    codec: str
    channels: int | None = None
    sample_rate_hz: int | None = None


class ProbeResult(BaseModel):
    """A source file as ffprobe sees it. Durations in seconds, sizes in bytes."""

    model_config = ConfigDict(frozen=True)

    readable: bool
    error: str | None = None
    format_names: tuple[str, ...] = ()
    duration_s: float | None = None
    size_bytes: int | None = None
    video: VideoStreamInfo | None = None
    audio: AudioStreamInfo | None = None
    other_stream_types: tuple[str, ...] = ()
    partial: bool = False

    @property
    def duration_ms(self) -> int:
        return round((self.duration_s or 0.0) * 1000)


@dataclass(frozen=True)
class SourceLimits:
    """What an accepted source must satisfy (see UploadSettings for defaults)."""

    max_duration_s: float = 600.0
    min_duration_s: float = 0.1
    min_side_px: int = 64
    max_side_px: int = 4096
    max_aspect_ratio: float = 4.0


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN -> None


def _rate(value: Any) -> float | None:
    """'30000/1001' -> 29.97; '0/0' or garbage -> None."""
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate > 0 else None


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        if isinstance(side, dict) and "rotation" in side:
            return round(float(side["rotation"])) % 360
    tag = _int((stream.get("tags") or {}).get("rotate"))
    return tag % 360 if tag is not None else 0


def first_error_line(stderr: str) -> str | None:
    """The last meaningful ffprobe error line, without its `[demuxer @ 0x..]` prefix."""
    lines = [_LOG_PREFIX.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else None


def parse_probe(stdout: str, stderr: str = "", *, exit_code: int = 0) -> ProbeResult:
    """Build a ProbeResult from ffprobe's JSON output and its stderr."""
    error = first_error_line(stderr)
    try:
        data = json.loads(stdout) if stdout.strip() else {}
    except json.JSONDecodeError:
        data = {}
    fmt = data.get("format") if isinstance(data, dict) else None
    if exit_code != 0 or not isinstance(fmt, dict):
        partial = _PARTIAL.search(stderr)
        return ProbeResult(
            readable=False,
            error=partial.group(0) if partial else error or "ffprobe could not read the file",
            partial=partial is not None,
        )
    video: VideoStreamInfo | None = None
    audio: AudioStreamInfo | None = None
    others: list[str] = []
    for stream in data.get("streams") or []:
        if not isinstance(stream, dict):
            continue
        kind = str(stream.get("codec_type", ""))
        attached = bool((stream.get("disposition") or {}).get("attached_pic"))
        if kind == "video" and not attached and video is None:
            video = VideoStreamInfo(
                codec=str(stream.get("codec_name", "unknown")),
                profile=stream.get("profile"),
                width=_int(stream.get("width")) or 0,
                height=_int(stream.get("height")) or 0,
                rotation_deg=_rotation(stream),
                fps=_rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")),
                nb_frames=_int(stream.get("nb_frames")),
                nb_read_packets=_int(stream.get("nb_read_packets")),
                pix_fmt=stream.get("pix_fmt"),
                bit_rate_bps=_int(stream.get("bit_rate")),
            )
        elif kind == "audio" and audio is None:
            audio = AudioStreamInfo(
                codec=str(stream.get("codec_name", "unknown")),
                channels=_int(stream.get("channels")),
                sample_rate_hz=_int(stream.get("sample_rate")),
            )
        else:
            others.append("cover-art" if attached else kind or "unknown")
    return ProbeResult(
        readable=True,
        error=error,
        format_names=tuple(n for n in str(fmt.get("format_name", "")).split(",") if n),
        duration_s=_float(fmt.get("duration")),
        size_bytes=_int(fmt.get("size")),
        video=video,
        audio=audio,
        other_stream_types=tuple(others),
        partial=_PARTIAL.search(stderr) is not None,
    )


def rejection_reason(probe: ProbeResult, limits: SourceLimits) -> str | None:
    """Why this source cannot be a video here, in words a user understands; None
    when it is acceptable."""
    if not probe.readable and probe.partial:
        return f"the file is truncated or corrupt ({probe.error})"
    if not probe.readable:
        return f"not a readable video file ({probe.error or 'unknown format'})"
    if not SUPPORTED_CONTAINERS.intersection(probe.format_names):
        shown = ",".join(probe.format_names) or "unknown"
        return f"unsupported file format {shown!r}; upload an MP4, MOV, MKV or WebM video"
    video = probe.video
    if video is None:
        if probe.audio is not None:
            return "the file has only audio; a video stream is required"
        return "the file has no video stream"
    if video.codec not in SUPPORTED_VIDEO_CODECS:
        return (
            f"unsupported video codec {video.codec!r}; use one of "
            f"{', '.join(sorted(SUPPORTED_VIDEO_CODECS))}"
        )
    if (
        video.nb_frames
        and video.nb_read_packets is not None
        and (video.nb_read_packets < video.nb_frames)
    ):
        return (
            f"the file is truncated or corrupt: only {video.nb_read_packets} of "
            f"{video.nb_frames} video frames are present"
        )
    if probe.partial or video.nb_read_packets == 0:
        return f"the file is truncated or corrupt ({probe.error or 'no video frames'})"
    duration = probe.duration_s
    if duration is None or duration <= 0:
        return "the video's duration cannot be determined"
    if duration < limits.min_duration_s:
        return f"the video is {duration:.2f} s long; the minimum is {limits.min_duration_s:g} s"
    if duration > limits.max_duration_s:
        return f"the video is {duration:.1f} s long; the limit is {limits.max_duration_s:g} s"
    short, long = sorted((video.display_width, video.display_height))
    if short < limits.min_side_px:
        return (
            f"the picture is {video.display_width}x{video.display_height}; "
            f"its short side must be at least {limits.min_side_px} px"
        )
    if long > limits.max_side_px:
        return (
            f"the picture is {video.display_width}x{video.display_height}; "
            f"its long side must be at most {limits.max_side_px} px"
        )
    if long / short > limits.max_aspect_ratio:
        return (
            f"the picture is {video.display_width}x{video.display_height}; the aspect ratio "
            f"must be at most {limits.max_aspect_ratio:g}:1"
        )
    return None
