"""ffmpeg command lines (pure): the whole ladder in one process that decodes
once, and (for comparison) one process per rendition.

One decode: the decoded picture goes through `split` into one scaler per
rendition plus the poster and stills branches; every encoder and HLS muxer
hangs off the same decoder. Keyframes are forced on the segment grid in every
rendition, so the renditions' segments align and a player can switch at any
segment boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reelplane_transcode.accel import Accel
from reelplane_transcode.ladder import Ladder, Rendition, scaled_size

POSTER_NAME = "poster.jpg"
STILLS_DIR = "stills"
MEDIA_PLAYLIST = "index.m3u8"
INIT_SEGMENT = "init.mp4"
#: Short side of the poster (capped at the source) and of the stills, pixels.
POSTER_SHORT_SIDE = 720
STILL_SHORT_SIDE = 360


@dataclass(frozen=True)
class EncoderOptions:
    """Encoder choice (see `accel`): CPU (libx264/libx265), CUDA (NVDEC + NVENC),
    or NVDEC decode with the CPU encoders; and presets."""

    accel: Accel = "none"
    h264_preset: str = "veryfast"
    hevc_preset: str = "superfast"
    nvenc_preset: str = "p4"
    stills_interval_s: float = 3.0
    ffmpeg: str = "ffmpeg"


def poster_time_s(duration_s: float) -> float:
    """When the poster is taken: 1 s in, or a quarter of a shorter video."""
    return round(min(1.0, max(0.0, duration_s) / 4), 3)


def _scale(width: int, height: int, accel: str) -> str:
    if accel == "cuda":
        return f"scale_cuda={width}:{height}"
    return f"scale={width}:{height}:flags=bicubic,setsar=1,format=yuv420p"


def _image_scale(width: int, height: int, accel: str) -> str:
    download = "hwdownload,format=nv12," if accel == "cuda" else ""
    return f"{download}scale={width}:{height}:flags=bicubic,setsar=1,format=yuvj420p"


def filter_graph(ladder: Ladder, opts: EncoderOptions) -> str:
    """The filter_complex: one split feeding each rendition, the poster and stills."""
    n = len(ladder.renditions)
    head = "[0:v]"
    if ladder.cap_fps:
        head += f"fps={ladder.fps:g},"
    labels = "".join(f"[v{i}]" for i in range(n)) + "[vposter][vstills]"
    chains = [f"{head}split={n + 2}{labels}"]
    for i, r in enumerate(ladder.renditions):
        chains.append(f"[v{i}]{_scale(r.width, r.height, opts.accel)}[o{i}]")
    pw, ph = scaled_size(
        ladder.source_width,
        ladder.source_height,
        min(POSTER_SHORT_SIDE, ladder.source_width, ladder.source_height),
    )
    sw, sh = scaled_size(
        ladder.source_width,
        ladder.source_height,
        min(STILL_SHORT_SIDE, ladder.source_width, ladder.source_height),
    )
    start = poster_time_s(ladder.duration_s)
    chains.append(
        f"[vposter]trim=start={start:g},setpts=PTS-STARTPTS,"
        f"{_image_scale(pw, ph, opts.accel)}[poster]"
    )
    chains.append(
        f"[vstills]fps=1/{opts.stills_interval_s:g},{_image_scale(sw, sh, opts.accel)}[stills]"
    )
    return ";".join(chains)


def _hls(ladder: Ladder, folder: Path) -> list[str]:
    return [
        "-f",
        "hls",
        "-hls_time",
        f"{ladder.segment_s:g}",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        "independent_segments",
        "-hls_fmp4_init_filename",
        INIT_SEGMENT,
        "-hls_segment_filename",
        str(folder / "seg_%05d.m4s"),
        str(folder / MEDIA_PLAYLIST),
    ]


def video_encoder_args(r: Rendition, ladder: Ladder, opts: EncoderOptions) -> list[str]:
    """Encoder options of one rendition: VBV-capped VBR, closed GOPs on the segment grid."""
    gop = str(ladder.gop_frames)
    rate = [
        "-b:v",
        f"{r.bitrate_kbps}k",
        "-maxrate",
        f"{r.maxrate_kbps}k",
        "-bufsize",
        f"{r.bufsize_kbit}k",
    ]
    keyframes = ["-force_key_frames", f"expr:gte(t,n_forced*{ladder.segment_s:g})"]
    if opts.accel == "cuda":
        encoder = "h264_nvenc" if r.codec == "h264" else "hevc_nvenc"
        args = ["-c:v", encoder, "-preset", opts.nvenc_preset, "-rc", "vbr", *rate]
        args += ["-g", gop, "-forced-idr", "1", "-no-scenecut", "1", *keyframes]
        if r.codec == "h264":
            args += ["-profile:v", "high"]
        else:
            args += ["-profile:v", "main", "-tag:v", "hvc1"]
        return args
    if r.codec == "h264":
        return [
            "-c:v",
            "libx264",
            "-preset",
            opts.h264_preset,
            "-profile:v",
            "high",
            *rate,
            "-g",
            gop,
            "-keyint_min",
            gop,
            "-sc_threshold",
            "0",
            *keyframes,
        ]
    return [
        "-c:v",
        "libx265",
        "-preset",
        opts.hevc_preset,
        "-profile:v",
        "main",
        "-tag:v",
        "hvc1",
        *rate,
        "-x265-params",
        f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:log-level=error",
        *keyframes,
    ]


def _input_args(source: Path, opts: EncoderOptions) -> list[str]:
    hw: list[str] = []
    if opts.accel == "cuda":
        hw = ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"]
    elif opts.accel == "cuda-decode":
        # Decoded on the GPU, copied back to memory for the CPU filters and encoders
        # (and decoded on the CPU when NVDEC cannot take this source).
        hw = ["-hwaccel", "cuda"]
    return [*hw, "-i", str(source)]


def _prelude(opts: EncoderOptions) -> list[str]:
    return [opts.ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]


def ladder_command(
    ladder: Ladder, source: Path, out: Path, opts: EncoderOptions, *, progress: bool = True
) -> list[str]:
    """One ffmpeg process: decode once, encode every rendition to HLS (fMP4),
    the audio rendition, the poster and the stills, under `out`."""
    args = _prelude(opts)
    if progress:
        args += ["-progress", "pipe:1", "-nostats"]
    args += [*_input_args(source, opts), "-filter_complex", filter_graph(ladder, opts)]
    for i, r in enumerate(ladder.renditions):
        args += ["-map", f"[o{i}]", "-an", *video_encoder_args(r, ladder, opts)]
        args += _hls(ladder, out / r.name)
    if ladder.audio is not None:
        a = ladder.audio
        args += ["-map", "0:a:0", "-vn", "-c:a", "aac", "-b:a", f"{a.bitrate_kbps}k"]
        args += ["-ac", str(a.channels), "-ar", str(a.sample_rate_hz)]
        args += _hls(ladder, out / a.name)
    args += ["-map", "[poster]", "-frames:v", "1", "-q:v", "3", str(out / POSTER_NAME)]
    args += ["-map", "[stills]", "-q:v", "5", "-f", "image2", str(out / STILLS_DIR / "%04d.jpg")]
    return args


def output_folders(ladder: Ladder, out: Path) -> list[Path]:
    """The folders ffmpeg expects to exist before it starts."""
    names = [r.name for r in ladder.renditions] + (["audio"] if ladder.audio else [])
    return [out / n for n in names] + [out / STILLS_DIR]


def per_rendition_commands(
    ladder: Ladder, source: Path, out: Path, opts: EncoderOptions
) -> list[list[str]]:
    """The same outputs made the naive way: one ffmpeg process (and one decode)
    per rendition, plus one each for audio, poster and stills (benchmark baseline)."""
    commands: list[list[str]] = []
    for r in ladder.renditions:
        head = f"fps={ladder.fps:g}," if ladder.cap_fps else ""
        commands.append(
            [
                *_prelude(opts),
                *_input_args(source, opts),
                "-vf",
                head + _scale(r.width, r.height, opts.accel),
                "-an",
                *video_encoder_args(r, ladder, opts),
                *_hls(ladder, out / r.name),
            ]
        )
    if ladder.audio is not None:
        a = ladder.audio
        commands.append(
            [
                *_prelude(opts),
                "-i",
                str(source),
                "-vn",
                "-c:a",
                "aac",
                "-b:a",
                f"{a.bitrate_kbps}k",
                "-ac",
                str(a.channels),
                "-ar",
                str(a.sample_rate_hz),
                *_hls(ladder, out / a.name),
            ]
        )
    cpu = EncoderOptions(stills_interval_s=opts.stills_interval_s, ffmpeg=opts.ffmpeg)
    graph = filter_graph(ladder, cpu).split(";")
    poster_chain = next(c for c in graph if c.startswith("[vposter]"))
    stills_chain = next(c for c in graph if c.startswith("[vstills]"))
    for chain, tail in (
        (poster_chain, ["-frames:v", "1", "-q:v", "3", str(out / POSTER_NAME)]),
        (stills_chain, ["-q:v", "5", "-f", "image2", str(out / STILLS_DIR / "%04d.jpg")]),
    ):
        label_end = chain.index("]") + 1
        out_label = chain.rindex("[")
        commands.append(
            [
                *_prelude(cpu),
                "-i",
                str(source),
                "-vf",
                chain[label_end:out_label],
                *tail,
            ]
        )
    return commands
