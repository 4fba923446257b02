"""Running ffprobe on a local file (the I/O half of `reelplane.media.probe`)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

from reelplane.errors import ConfigError
from reelplane.media.probe import ProbeResult, parse_probe

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


#: Serializes installs in this process; the lock file below does so across processes.
_install_guard = threading.Lock()

#: One install in flight per event loop and pair of binaries (see `install_ffmpeg`).
_installs: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Future[None]]
] = weakref.WeakKeyDictionary()


#: The file whose lock the one installing process holds.
INSTALL_LOCK = Path(tempfile.gettempdir()) / "reelplane-ffmpeg-install.lock"


def _present(*binaries: str) -> bool:
    return all(shutil.which(b) for b in binaries)


def ensure_ffmpeg(ffmpeg: str = "ffmpeg", ffprobe: str = "ffprobe") -> None:
    """ffmpeg and ffprobe on PATH, installed with apt-get when missing
    (idempotent: a no-op when both are there). Blocking: run it in a thread.

    One installer at a time, in this process and across processes (a lock file):
    a second caller waits for the first and finds the binaries installed, instead
    of racing it for apt's lock. ConfigError when the install fails."""
    if _present(ffmpeg, ffprobe):
        return
    try:  # the installer is the local harness's: a runtime image has ffmpeg or no way
        from reelplane.infra.harness import HarnessError, apt_install
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("reelplane.infra"):
            raise
        raise ConfigError("REELPLANE_FFMPEG_PATH", "ffmpeg is missing; install it") from None
    with _install_guard, _locked(INSTALL_LOCK):
        if _present(ffmpeg, ffprobe):  # installed by another thread or process meanwhile
            return
        try:
            apt_install("ffmpeg", ["ffmpeg"], binaries=[ffmpeg, ffprobe])
        except HarnessError as exc:
            raise ConfigError(
                "REELPLANE_FFMPEG_PATH", f"ffmpeg is missing and could not be installed: {exc}"
            ) from None
    missing = [b for b in (ffmpeg, ffprobe) if not shutil.which(b)]
    if missing:
        raise ConfigError(
            "REELPLANE_FFMPEG_PATH",
            f"{', '.join(missing)} not found after installing ffmpeg (set the binary's path)",
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if need be) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def install_ffmpeg(ffmpeg: str = "ffmpeg", ffprobe: str = "ffprobe") -> None:
    """`ensure_ffmpeg` off the event loop, shared: every task of this loop that
    asks while an install runs awaits that one install (and its error). A
    cancelled caller leaves the install running for the others."""
    if _present(ffmpeg, ffprobe):
        return
    loop = asyncio.get_running_loop()
    pending = _installs.setdefault(loop, {})
    key = (ffmpeg, ffprobe)
    install = pending.get(key)
    if install is None:
        install = asyncio.ensure_future(asyncio.to_thread(ensure_ffmpeg, ffmpeg, ffprobe))
        pending[key] = install
        # Forgotten once done: a failed install is tried again by the next caller.
        install.add_done_callback(lambda _: pending.pop(key, None))
    await asyncio.shield(install)
