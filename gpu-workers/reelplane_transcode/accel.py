"""Which hardware the worker transcodes with.

A GPU node may lack NVENC (an H100 has NVDEC but no video encoder) or run an
ffmpeg built without it. The worker probes once at its first job (`ffmpeg
-encoders`, then a tiny test encode per NVENC encoder and a tiny NVDEC decode)
and `choose_accel`, a pure function of that probe, picks the mode and the
reason that is logged:

- `cuda`: NVDEC decode, scale_cuda, h264_nvenc/hevc_nvenc;
- `cuda-decode`: NVDEC decode, frames copied to memory, libx264/libx265;
- `none`: everything on the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reelplane.errors import ReelplaneError

Accel = Literal["none", "cuda", "cuda-decode"]

#: The encoder of each ladder codec, on the GPU and on the CPU.
NVENC_ENCODERS = {"h264": "h264_nvenc", "hevc": "hevc_nvenc"}
CPU_ENCODERS = {"h264": "libx264", "hevc": "libx265"}

#: The test clip: big enough for every NVENC generation's minimum frame size.
_TEST_SOURCE = ["-f", "lavfi", "-i", "testsrc2=size=256x256:rate=25:duration=0.2"]


class EncoderUnavailable(ReelplaneError):
    """No encoder this ffmpeg has can produce a codec of the ladder."""

    status = 503
    slug = "encoder-unavailable"
    title = "Encoder unavailable"


@dataclass(frozen=True)
class Capabilities:
    """What the probe found: the encoders ffmpeg lists, the NVENC encoders a test
    encode succeeded with, and whether a test NVDEC decode succeeded."""

    encoders: frozenset[str]
    working_nvenc: frozenset[str] = frozenset()
    cuda_decode: bool = False


@dataclass(frozen=True)
class AccelChoice:
    """The mode to run ffmpeg in, why, and whether it is a fallback from the
    requested one."""

    accel: Accel
    reason: str
    fallback: bool = False


def parse_encoders(text: str) -> frozenset[str]:
    """Encoder names from `ffmpeg -hide_banner -encoders` (the lines after the
    `------` rule: six flag characters, the name, a description)."""
    names: set[str] = set()
    listing = False
    for line in text.splitlines():
        fields = line.split()
        if not listing:
            listing = bool(fields) and set(fields[0]) == {"-"}
            continue
        if len(fields) >= 2 and len(fields[0]) == 6:
            names.add(fields[1])
    return frozenset(names)


def choose_accel(requested: Accel, codecs: Iterable[str], caps: Capabilities) -> AccelChoice:
    """The mode for a ladder of `codecs` given the probe: what was requested when
    it works, else the next best (NVDEC decode with CPU encoders, then all CPU).
    EncoderUnavailable when no encoder can produce one of the codecs."""
    codecs = tuple(codecs)
    missing_cpu = [CPU_ENCODERS[c] for c in codecs if CPU_ENCODERS[c] not in caps.encoders]
    nvenc = [NVENC_ENCODERS[c] for c in codecs]
    unlisted = [e for e in nvenc if e not in caps.encoders]
    failing = [e for e in nvenc if e in caps.encoders and e not in caps.working_nvenc]
    if requested == "cuda" and not unlisted and not failing:
        if caps.cuda_decode:
            return AccelChoice("cuda", f"NVDEC decode and NVENC encode ({', '.join(nvenc)})")
        why = "the test NVDEC decode failed, and NVENC here takes frames decoded on the GPU"
    elif requested == "cuda":
        if unlisted:
            why = f"this ffmpeg has no {', '.join(unlisted)}"
        else:
            why = f"a test encode with {', '.join(failing)} failed (a GPU without NVENC?)"
    else:
        why = ""
    if missing_cpu:
        raise EncoderUnavailable(
            f"cannot encode {', '.join(codecs)}: this ffmpeg has no {', '.join(missing_cpu)}"
            + (f", and {why}" if why else "")
        )
    cpu = ", ".join(CPU_ENCODERS[c] for c in codecs)
    if requested == "none":
        return AccelChoice("none", f"CPU decode and encode ({cpu}), as configured")
    if caps.cuda_decode:
        if requested == "cuda-decode":
            return AccelChoice("cuda-decode", f"NVDEC decode, CPU encode ({cpu}), as configured")
        return AccelChoice(
            "cuda-decode", f"falling back to CPU encode ({cpu}) with NVDEC decode: {why}", True
        )
    if requested == "cuda-decode":
        why = "the test NVDEC decode failed"
    elif not why.startswith("the test NVDEC"):
        why += "; the test NVDEC decode failed too"
    return AccelChoice("none", f"falling back to CPU decode and encode ({cpu}): {why}", True)


# -- the probe (I/O) ---------------------------------------------------------------------------
def _quiet(ffmpeg: str) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]


def encoders_command(ffmpeg: str) -> list[str]:
    return [ffmpeg, "-hide_banner", "-encoders"]


def encode_check_command(ffmpeg: str, encoder: str) -> list[str]:
    """A fraction of a second of test picture through `encoder`, output dropped."""
    return [
        *_quiet(ffmpeg), *_TEST_SOURCE, "-pix_fmt", "yuv420p", "-c:v", encoder, "-f", "null", "-",
    ]  # fmt: skip


def sample_command(ffmpeg: str, out: Path) -> list[str]:
    """A tiny H.264 file (libx264) for the NVDEC test."""
    return [
        *_quiet(ffmpeg),
        "-y",
        *_TEST_SOURCE,
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        str(out),
    ]


def decode_check_command(ffmpeg: str, sample: Path) -> list[str]:
    """Decode `sample` with NVDEC into GPU frames and copy them back; fails when
    ffmpeg fell back to decoding on the CPU (hwdownload needs GPU frames)."""
    return [
        *_quiet(ffmpeg), "-hwaccel", "cuda", "-hwaccel_output_format", "cuda", "-i", str(sample),
        "-vf", "hwdownload,format=nv12", "-f", "null", "-",
    ]  # fmt: skip


async def _run(args: list[str], timeout_s: float) -> tuple[int, str]:
    """Exit status and stdout of a command (127 when it cannot be started)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
    except OSError:
        return 127, ""
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return 124, ""
    return proc.returncode or 0, out.decode(errors="replace")


async def probe_capabilities(
    ffmpeg: str, codecs: Iterable[str], *, timeout_s: float = 30.0
) -> Capabilities:
    """Ask ffmpeg and the GPU what works (a few seconds; once per worker)."""
    code, text = await _run(encoders_command(ffmpeg), timeout_s)
    encoders = parse_encoders(text) if code == 0 else frozenset()
    working: set[str] = set()
    for codec in codecs:
        encoder = NVENC_ENCODERS[codec]
        if encoder in encoders:
            code, _ = await _run(encode_check_command(ffmpeg, encoder), timeout_s)
            if code == 0:
                working.add(encoder)
    cuda_decode = False
    if "libx264" in encoders:
        with tempfile.TemporaryDirectory(prefix="reelplane-probe-") as folder:
            sample = Path(folder) / "sample.mp4"
            if (await _run(sample_command(ffmpeg, sample), timeout_s))[0] == 0:
                cuda_decode = (await _run(decode_check_command(ffmpeg, sample), timeout_s))[0] == 0
    return Capabilities(encoders, frozenset(working), cuda_decode)
