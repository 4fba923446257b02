"""Running ffprobe on a local file (the I/O half of `reelplane.upload.probe`)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from reelplane.upload.probe import ProbeResult, parse_probe

PROBE_ARGS = (
    "-v",
    "error",
    "-count_packets",
    "-show_format",
    "-show_streams",
    "-of",
    "json",
)


async def run_ffprobe(
    path: Path, *, binary: str = "ffprobe", timeout_s: float = 120.0
) -> ProbeResult:
    """Probe `path` (container, streams, packet counts). A file ffprobe cannot
    read gives `readable=False` with its error, never an exception; a missing
    ffprobe binary raises FileNotFoundError."""
    proc = await asyncio.create_subprocess_exec(
        binary,
        *PROBE_ARGS,
        str(path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return ProbeResult(readable=False, error=f"ffprobe took longer than {timeout_s:g} s")
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    text_err = stderr.decode("utf-8", errors="replace").replace(str(path), "<file>")
    return parse_probe(
        stdout.decode("utf-8", errors="replace"), text_err, exit_code=proc.returncode or 0
    )


def ensure_ffmpeg(ffmpeg: str = "ffmpeg", ffprobe: str = "ffprobe") -> None:
    """ffmpeg and ffprobe on PATH, installed with apt-get when missing
    (idempotent: a no-op when both are there). Blocking: run it in a thread."""
    import shutil

    from reelplane.errors import ConfigError
    from reelplane.infra.harness import HarnessError, apt_install

    if shutil.which(ffmpeg) and shutil.which(ffprobe):
        return
    try:
        apt_install("ffmpeg", ["ffmpeg"], binaries=[ffmpeg, ffprobe])
    except HarnessError as exc:
        raise ConfigError(
            "REELPLANE_FFMPEG_PATH", f"ffmpeg is missing and could not be installed: {exc}"
        ) from None
