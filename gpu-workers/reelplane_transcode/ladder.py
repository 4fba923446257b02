"""Ladder planning (pure): which renditions to encode from a probe result.

Rules: every rung whose short side fits in the source's (never upscaling),
plus the source's own size as the top rung when it falls between rungs (a
480p upload gets 360p and 480p, not 360p alone); each rung in every codec.
Sizes keep the source's display aspect ratio (9:16 portrait included) and are
even, as 4:2:0 chroma needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from reelplane.upload.probe import ProbeResult

Codec = Literal["h264", "hevc"]

#: A native top rung is added only when the source is this much larger than the
#: largest standard rung that fits (so 362p does not get both 360p and 362p).
NATIVE_RUNG_MIN_GAIN = 1.15
DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class Rung:
    """A ladder step: short side in pixels and target bit rates in kbit/s."""

    short_side: int
    h264_kbps: int
    hevc_kbps: int

    def kbps(self, codec: Codec) -> int:
        return self.h264_kbps if codec == "h264" else self.hevc_kbps


DEFAULT_RUNGS = (Rung(360, 800, 500), Rung(720, 2800, 1700), Rung(1080, 5000, 3000))


class Rendition(BaseModel):
    """One output: codec, size in pixels, bit rates in kbit/s (VBV max and buffer)."""

    model_config = ConfigDict(frozen=True)

    name: str
    codec: Codec
    width: int
    height: int
    bitrate_kbps: int
    maxrate_kbps: int
    bufsize_kbit: int


class AudioRendition(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = "audio"
    bitrate_kbps: int = 128
    channels: int = 2
    sample_rate_hz: int = 48_000


class Ladder(BaseModel):
    """Everything one ffmpeg run produces. Durations in seconds."""

    model_config = ConfigDict(frozen=True)

    source_width: int
    source_height: int
    duration_s: float
    fps: float
    cap_fps: bool
    gop_frames: int
    segment_s: float
    renditions: tuple[Rendition, ...]
    audio: AudioRendition | None


def parse_rungs(text: str) -> tuple[Rung, ...]:
    """`"360:800:500,720:2800:1700"` (short side : h264 kbps : hevc kbps) -> rungs,
    sorted by size. ValueError when malformed."""
    rungs: list[Rung] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        try:
            side, h264, hevc = (int(v) for v in item.split(":"))
        except ValueError:
            raise ValueError(f"rung {item!r} is not short-side:h264-kbps:hevc-kbps") from None
        if side < 2 or side % 2 or h264 <= 0 or hevc <= 0:
            raise ValueError(f"rung {item!r}: short side must be even and >= 2, bit rates > 0")
        rungs.append(Rung(side, h264, hevc))
    if not rungs:
        raise ValueError("the ladder needs at least one rung")
    return tuple(sorted(rungs, key=lambda r: r.short_side))


def even_floor(value: float) -> int:
    """The largest even integer <= value (at least 2)."""
    return max(2, int(value) // 2 * 2)


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) scaled so the short side is `short_side`, aspect kept,
    both even and never larger than the source."""
    src_short = min(width, height)
    factor = short_side / src_short
    w = min(even_floor(width), max(2, round(width * factor / 2) * 2))
    h = min(even_floor(height), max(2, round(height * factor / 2) * 2))
    return w, h


def _interpolated_kbps(rungs: tuple[Rung, ...], short_side: int, codec: Codec) -> int:
    """Bit rate for a size between rungs, linear in pixel count between neighbours."""
    below = [r for r in rungs if r.short_side <= short_side]
    above = [r for r in rungs if r.short_side > short_side]
    if below and above:
        lo, hi = below[-1], above[0]
        t = (short_side**2 - lo.short_side**2) / (hi.short_side**2 - lo.short_side**2)
        return round(lo.kbps(codec) + t * (hi.kbps(codec) - lo.kbps(codec)))
    anchor = below[-1] if below else above[0]
    return max(100, round(anchor.kbps(codec) * (short_side / anchor.short_side) ** 2))


def plan_ladder(
    probe: ProbeResult,
    *,
    rungs: tuple[Rung, ...] = DEFAULT_RUNGS,
    codecs: tuple[str, ...] = ("h264", "hevc"),
    segment_s: float = 2.0,
    max_fps: float = 60.0,
    audio_kbps: int = 128,
) -> Ladder:
    """The renditions for a probed source (its display size: rotation applied)."""
    video = probe.video
    if video is None or video.width <= 0 or video.height <= 0:
        raise ValueError("cannot plan a ladder without a video stream and its size")
    width, height = video.display_width, video.display_height
    src_short = min(even_floor(width), even_floor(height))
    sides = [r.short_side for r in rungs if r.short_side <= src_short]
    top = max(r.short_side for r in rungs)
    if not sides or (src_short < top and src_short >= sides[-1] * NATIVE_RUNG_MIN_GAIN):
        sides.append(src_short)
    renditions: list[Rendition] = []
    for codec in codecs:
        if codec not in ("h264", "hevc"):
            raise ValueError(f"unsupported codec {codec!r}")
        c: Codec = "h264" if codec == "h264" else "hevc"
        for side in sides:
            w, h = scaled_size(width, height, side)
            exact = next((r for r in rungs if r.short_side == side), None)
            kbps = exact.kbps(c) if exact else _interpolated_kbps(rungs, side, c)
            renditions.append(
                Rendition(
                    name=f"{c}_{min(w, h)}p",
                    codec=c,
                    width=w,
                    height=h,
                    bitrate_kbps=kbps,
                    maxrate_kbps=round(kbps * 1.5),
                    bufsize_kbit=kbps * 2,
                )
            )
    source_fps = video.fps or DEFAULT_FPS
    fps = min(source_fps, max_fps)
    return Ladder(
        source_width=width,
        source_height=height,
        duration_s=probe.duration_s or 0.0,
        fps=fps,
        cap_fps=source_fps > max_fps,
        gop_frames=max(1, round(fps * segment_s)),
        segment_s=segment_s,
        renditions=tuple(renditions),
        audio=AudioRendition(bitrate_kbps=audio_kbps) if probe.audio is not None else None,
    )
