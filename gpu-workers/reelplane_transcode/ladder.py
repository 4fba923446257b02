"""Ladder planning (pure): which renditions to encode from a probe result.

Rules: every rung whose short side fits in the source's (never upscaling),
plus the source's own size as the top rung when it falls between rungs (a
480p upload gets 360p and 480p, not 360p alone); each rung in every codec.
Sizes keep the source's display aspect ratio (9:16 portrait included) and are
even, as 4:2:0 chroma needs.

A TranscodePool's ladder may give a rung in one codec only (360p H.264 while
720p and 1080p come in both): each codec then follows the rules over its own
rungs, and a source smaller than every rung gets its own size in the codecs of
the lowest rung (so every upload has at least one rendition).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelplane.media.probe import ProbeResult

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
CODECS: tuple[Codec, ...] = ("h264", "hevc")


@dataclass(frozen=True)
class CodecRung:
    """A ladder step in one codec: short side in pixels, target bit rate in kbit/s."""

    codec: Codec
    short_side: int
    kbps: int


class LadderSpec(BaseModel):
    """What the worker encodes every upload into (before fitting it to a source):
    the rungs, each in its own codec, and the HLS segment length in seconds."""

    model_config = ConfigDict(frozen=True)

    rungs: tuple[CodecRung, ...]
    segment_s: float

    @property
    def codecs(self) -> tuple[Codec, ...]:
        """The codecs of the ladder, H.264 first."""
        return tuple(c for c in CODECS if any(r.codec == c for r in self.rungs))


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


def expand_rungs(rungs: Iterable[Rung], codecs: Iterable[str]) -> tuple[CodecRung, ...]:
    """Every rung in every codec (the `REELPLANE_TRANSCODE_RUNGS`/`_CODECS` form of
    a ladder). ValueError on a codec other than h264 and hevc."""
    rungs = tuple(rungs)
    out: list[CodecRung] = []
    for codec in codecs:
        if codec not in CODECS:
            raise ValueError(f"unsupported codec {codec!r}")
        c: Codec = "h264" if codec == "h264" else "hevc"
        out += [CodecRung(c, r.short_side, r.kbps(c)) for r in rungs]
    return tuple(out)


class _PoolRendition(BaseModel):
    """One rendition of a TranscodePool's ladder.json (camelCase, as the operator
    writes it). `height` is the short side: "720p" is 1280x720 or 720x1280."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = ""
    height: int = Field(ge=2, le=8640)
    codec: Codec
    video_bitrate_kbps: int = Field(alias="videoBitrateKbps", gt=0)


class _PoolLadderDocument(BaseModel):
    """A TranscodePool's ladder.json: `{"segmentSeconds": 4, "renditions": [...]}`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    segment_seconds: float = Field(alias="segmentSeconds", gt=0.5, le=10)
    renditions: list[_PoolRendition] = Field(min_length=1)


def parse_ladder_document(text: str) -> LadderSpec:
    """A TranscodePool's ladder.json -> the ladder: each rendition is a rung in
    its own codec (an odd height is rounded down to even, as 4:2:0 needs).
    ValueError, one line, when the text is not such a document or two
    renditions are the same size in the same codec."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        doc = _PoolLadderDocument.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise ValueError(f"{where}: {first['msg']}") from None
    rungs: dict[tuple[Codec, int], CodecRung] = {}
    for r in doc.renditions:
        rung = CodecRung(r.codec, even_floor(r.height), r.video_bitrate_kbps)
        key = (rung.codec, rung.short_side)
        if key in rungs:
            raise ValueError(f"two renditions are {rung.short_side}p {rung.codec}")
        rungs[key] = rung
    ordered = sorted(rungs.values(), key=lambda r: (CODECS.index(r.codec), r.short_side))
    return LadderSpec(rungs=tuple(ordered), segment_s=doc.segment_seconds)


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


def _interpolated_kbps(rungs: list[CodecRung], short_side: int) -> int:
    """Bit rate for a size between one codec's rungs (sorted by size), linear in
    pixel count between neighbours."""
    below = [r for r in rungs if r.short_side <= short_side]
    above = [r for r in rungs if r.short_side > short_side]
    if below and above:
        lo, hi = below[-1], above[0]
        t = (short_side**2 - lo.short_side**2) / (hi.short_side**2 - lo.short_side**2)
        return round(lo.kbps + t * (hi.kbps - lo.kbps))
    anchor = below[-1] if below else above[0]
    return max(100, round(anchor.kbps * (short_side / anchor.short_side) ** 2))


def _codec_sides(rungs: list[CodecRung], src_short: int, native: bool) -> list[int]:
    """The short sides one codec is encoded at: its rungs that fit, plus the
    source's own size when it falls between them (or when `native`: the source
    is smaller than the whole ladder and this codec has its lowest rung)."""
    sides = [r.short_side for r in rungs if r.short_side <= src_short]
    between = bool(sides) and sides[-1] * NATIVE_RUNG_MIN_GAIN <= src_short < rungs[-1].short_side
    if between or (not sides and native):
        sides.append(src_short)
    return sides


def plan_ladder(
    probe: ProbeResult,
    *,
    rungs: tuple[Rung, ...] = DEFAULT_RUNGS,
    codecs: tuple[str, ...] = CODECS,
    codec_rungs: tuple[CodecRung, ...] | None = None,
    segment_s: float = 2.0,
    max_fps: float = 60.0,
    audio_kbps: int = 128,
) -> Ladder:
    """The renditions for a probed source (its display size: rotation applied).
    `codec_rungs`, when given, is the ladder (each rung in its own codec, e.g. a
    TranscodePool's) and `rungs`/`codecs` are not used."""
    video = probe.video
    if video is None or video.width <= 0 or video.height <= 0:
        raise ValueError("cannot plan a ladder without a video stream and its size")
    ladder = expand_rungs(rungs, codecs) if codec_rungs is None else codec_rungs
    if not ladder:
        raise ValueError("the ladder needs at least one rung")
    width, height = video.display_width, video.display_height
    src_short = min(even_floor(width), even_floor(height))
    lowest = min(r.short_side for r in ladder)
    below_ladder = src_short < lowest
    renditions: list[Rendition] = []
    for c in dict.fromkeys(r.codec for r in ladder):  # codecs in the ladder's order
        own = sorted((r for r in ladder if r.codec == c), key=lambda r: r.short_side)
        native = below_ladder and own[0].short_side == lowest
        for side in _codec_sides(own, src_short, native):
            w, h = scaled_size(width, height, side)
            exact = next((r for r in own if r.short_side == side), None)
            kbps = exact.kbps if exact else _interpolated_kbps(own, side)
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
