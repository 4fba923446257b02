"""ffmpeg is installed once, however many tasks and processes ask for it at once.

A fake `apt-get` stands in for apt: like the real one it refuses to run while
another apt-get holds its lock, and `install` puts `ffmpeg`/`ffprobe` on PATH.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reelplane.errors import ConfigError
from reelplane.media.ffprobe import ensure_ffmpeg, install_ffmpeg

pytestmark = pytest.mark.embedded

FAKE_APT = """#!/bin/sh
PATH=/usr/bin:/bin
bin="$(dirname "$0")"
echo "$1" >> "$bin/apt.log"
if ! mkdir "$bin/apt.busy" 2>/dev/null; then
  echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by another apt-get" >&2
  exit 100
fi
sleep 0.5
if [ "$1" = "install" ]; then
  if [ -n "$FAIL_INSTALL" ]; then
    rmdir "$bin/apt.busy"; echo "E: Unable to locate package ffmpeg" >&2; exit 100
  fi
  for tool in ffmpeg ffprobe; do
    printf '#!/bin/sh\\nexit 0\\n' > "$bin/$tool"; chmod +x "$bin/$tool"
  done
fi
rmdir "$bin/apt.busy"
"""


@pytest.fixture
def apt_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of only the fake apt-get (no ffmpeg yet)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    apt = folder / "apt-get"
    apt.write_text(FAKE_APT)
    apt.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    return folder


def apt_calls(folder: Path) -> list[str]:
    log = folder / "apt.log"
    return log.read_text().split() if log.exists() else []


async def test_concurrent_tasks_and_threads_share_one_install(apt_bin: Path) -> None:
    thread_errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            ensure_ffmpeg()
        except BaseException as exc:  # pragma: no cover - reported below
            thread_errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    await asyncio.gather(install_ffmpeg(), install_ffmpeg(), install_ffmpeg())
    await asyncio.to_thread(thread.join)
    assert thread_errors == []
    assert apt_calls(apt_bin).count("install") == 1
    assert (apt_bin / "ffmpeg").is_file() and (apt_bin / "ffprobe").is_file()


def test_processes_starting_together_install_once(apt_bin: Path) -> None:
    go = apt_bin.parent / "go"
    # Each process imports first, then waits for the others: the installs start together.
    script = (
        "import pathlib, sys, time\n"
        "from reelplane.media.ffprobe import ensure_ffmpeg\n"
        "while not pathlib.Path(sys.argv[1]).exists(): time.sleep(0.01)\n"
        "ensure_ffmpeg()\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(go)],
            env={**os.environ, "PATH": str(apt_bin)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    time.sleep(2)  # the imports are done by then (a slow start only makes the test weaker)
    go.touch()
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert apt_calls(apt_bin).count("install") == 1


async def test_a_failed_install_is_one_config_error_for_every_waiter_and_is_retried(
    apt_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_INSTALL", "1")
    results = await asyncio.gather(install_ffmpeg(), install_ffmpeg(), return_exceptions=True)
    assert all(isinstance(r, ConfigError) for r in results), results
    assert "REELPLANE_FFMPEG_PATH" in str(results[0])
    assert "Unable to locate package ffmpeg" in str(results[0])
    assert apt_calls(apt_bin).count("install") == 1
    # A failure is not remembered: the next caller tries again (and now succeeds).
    monkeypatch.delenv("FAIL_INSTALL")
    await install_ffmpeg()
    assert apt_calls(apt_bin).count("install") == 2
