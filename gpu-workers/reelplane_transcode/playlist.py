"""HLS playlists (pure): codec strings read from the init segments, bit rates
measured from the segments, and the master playlist.

BANDWIDTH is the peak segment bit rate and AVERAGE-BANDWIDTH the mean over the
whole rendition (RFC 8216 4.3.4.2), measured from the files ffmpeg wrote, not
the encoder's target; with an audio group both add the audio rendition's.
CODECS come from the avcC/hvcC/esds boxes of each init segment (RFC 6381,
ISO/IEC 14496-15 annex E), so they state the profile and level actually used.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_VIDEO_ENTRIES = {b"avc1", b"avc3", b"hvc1", b"hev1"}
#: Bytes before the child boxes of a visual / audio sample entry.
_VISUAL_ENTRY_HEADER = 78
_AUDIO_ENTRY_HEADER = 28


@dataclass(frozen=True)
class Segment:
    """One media segment: its URI and duration in seconds."""

    uri: str
    duration_s: float


@dataclass(frozen=True)
class MediaPlaylist:
    init_uri: str | None
    segments: tuple[Segment, ...]

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)


class Variant(BaseModel):
    """One EXT-X-STREAM-INF entry. Bit rates in bits/s, size in pixels."""

    model_config = ConfigDict(frozen=True)

    uri: str
    bandwidth: int
    average_bandwidth: int
    codecs: str
    width: int
    height: int
    frame_rate: float
    audio_group: str | None = None


class AudioMedia(BaseModel):
    """The EXT-X-MEDIA audio rendition all variants share."""

    model_config = ConfigDict(frozen=True)

    uri: str
    group_id: str = "audio"
    name: str = "default"
    channels: int = 2


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Segments and init segment of a VOD media playlist."""
    init: str | None = None
    segments: list[Segment] = []
    duration: float | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MAP:"):
            for attr in line.removeprefix("#EXT-X-MAP:").split(","):
                key, _, value = attr.partition("=")
                if key.strip() == "URI":
                    init = value.strip().strip('"')
        elif line.startswith("#EXTINF:"):
            duration = float(line.removeprefix("#EXTINF:").split(",", 1)[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise ValueError(f"segment {line!r} has no #EXTINF")
            segments.append(Segment(line, duration))
            duration = None
    return MediaPlaylist(init, tuple(segments))


def segment_bitrates(segments: list[tuple[float, int]]) -> tuple[int, int]:
    """(peak, average) bits/s of segments given as (duration s, size bytes)."""
    timed = [(d, n) for d, n in segments if d > 0]
    if not timed:
        return 0, 0
    peak = max(n * 8 / d for d, n in timed)
    average = sum(n for _, n in timed) * 8 / sum(d for d, _ in timed)
    return round(peak), round(average)


# -- MP4 boxes ---------------------------------------------------------------------------
def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in data[start:end]."""
    end = len(data) if end is None else end
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _sample_entries(data: bytes) -> list[tuple[bytes, int, int]]:
    """The sample entries under moov/trak/mdia/minf/stbl/stsd of every track."""
    found: list[tuple[bytes, int, int]] = []

    def walk(start: int, end: int) -> None:
        for kind, s, e in _boxes(data, start, end):
            if kind in _CONTAINERS:
                walk(s, e)
            elif kind == b"stsd":
                found.extend(_boxes(data, s + 8, e))  # version/flags + entry count

    walk(0, len(data))
    return found


def _reverse_bits32(value: int) -> int:
    return int(f"{value:032b}"[::-1], 2)


def _hvc_codec(fourcc: str, record: bytes) -> str:
    """RFC 6381 string of an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 E.3)."""
    b1 = record[1]
    space = "" if (b1 >> 6) == 0 else "ABC"[(b1 >> 6) - 1]
    tier = "H" if (b1 >> 5) & 1 else "L"
    profile = b1 & 0x1F
    compat = _reverse_bits32(struct.unpack_from(">I", record, 2)[0])
    constraints = list(record[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    level = record[12]
    parts = [fourcc, f"{space}{profile}", f"{compat:X}", f"{tier}{level}"]
    parts += [f"{c:X}" for c in constraints]
    return ".".join(parts)


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of an MPEG-4 descriptor at pos."""
    tag = data[pos]
    pos += 1
    length = 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, pos, pos + length


def _mp4a_codec(esds: bytes) -> str:
    """`mp4a.<objectTypeIndication hex>.<audioObjectType>` from an esds payload."""
    tag, pos, _ = _descriptor(esds, 4)  # skip version/flags
    if tag != 0x03:
        raise ValueError("esds without an ES_Descriptor")
    flags = esds[pos + 2]
    pos += 3
    if flags & 0x80:
        pos += 2
    if flags & 0x40:
        pos += 1 + esds[pos]
    if flags & 0x20:
        pos += 2
    tag, pos, _ = _descriptor(esds, pos)
    if tag != 0x04:
        raise ValueError("esds without a DecoderConfigDescriptor")
    object_type = esds[pos]
    tag, info, _ = _descriptor(esds, pos + 13)
    audio_object_type = esds[info] >> 3 if tag == 0x05 else 2
    return f"mp4a.{object_type:x}.{audio_object_type}"


def codec_string(init_segment: bytes) -> str:
    """The RFC 6381 CODECS value of the (first) track of an fMP4 init segment,
    e.g. "avc1.64001f", "hvc1.1.6.L93.B0", "mp4a.40.2"."""
    for kind, start, end in _sample_entries(init_segment):
        fourcc = kind.decode("ascii", errors="replace")
        if kind in _VIDEO_ENTRIES:
            for child, s, e in _boxes(init_segment, start + _VISUAL_ENTRY_HEADER, end):
                if child == b"avcC":
                    profile, compat, level = init_segment[s + 1 : s + 4]
                    return f"{fourcc}.{profile:02x}{compat:02x}{level:02x}"
                if child == b"hvcC":
                    return _hvc_codec(fourcc, init_segment[s:e])
        elif kind == b"mp4a":
            for child, s, e in _boxes(init_segment, start + _AUDIO_ENTRY_HEADER, end):
                if child == b"esds":
                    return _mp4a_codec(init_segment[s:e])
    raise ValueError("no avc1/hvc1/mp4a sample entry with a decoder configuration found")


def render_master_playlist(variants: list[Variant], audio: AudioMedia | None) -> str:
    """The master playlist: H.264 variants first (every player can play them),
    each codec in ascending bandwidth, then the same for HEVC."""

    def order(v: Variant) -> tuple[int, int]:
        return (0 if v.codecs.startswith("avc") else 1, v.bandwidth)

    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{audio.group_id}",NAME="{audio.name}",'
            f'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="{audio.channels}",URI="{audio.uri}"'
        )
    for v in sorted(variants, key=order):
        attrs = [
            f"BANDWIDTH={v.bandwidth}",
            f"AVERAGE-BANDWIDTH={v.average_bandwidth}",
            f'CODECS="{v.codecs}"',
            f"RESOLUTION={v.width}x{v.height}",
            f"FRAME-RATE={v.frame_rate:.3f}",
        ]
        if v.audio_group:
            attrs.append(f'AUDIO="{v.audio_group}"')
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v.uri)
    return "\n".join(lines) + "\n"
