"""The README's walkthroughs, pasted as a newcomer pastes them: into bash, against
a fresh `reelplane dev`, in either order and more than once. Only the port is
changed (the README says 8080; the test takes a free one)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.helpers import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parents[1]


def walkthrough(name: str) -> str:
    """The bash block after `<!-- walkthrough: NAME ... -->` in the README."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- walkthrough: {name}\b.*?-->\n```bash\n(.*?)```\n", readme, re.S)
    assert found, f"README has no walkthrough {name!r}"
    return found.group(1)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A fresh `reelplane dev` (every service and the transcode worker) on a free
    port, in a folder of its own; yields its base URL and that folder."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(VENV / "bin" / "reelplane"), "dev", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        # Ready: backends up and every background task running (ffmpeg installed).
        deadline = time.monotonic() + 600
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"dev not ready:\n{log.read_text()}"
            time.sleep(0.5)
        yield base, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def paste(script: str, base: str, cwd: Path) -> str:
    """Run a walkthrough in bash from `cwd` (it holds the checkout's .venv, as the
    checkout does); its output, stderr included. Fails on a non-zero exit."""
    script = script.replace("http://127.0.0.1:8080", base)
    run = subprocess.run(
        ["bash"],
        input=script,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Traceback" not in output and "error" not in output.lower(), output
    return output


def test_walkthroughs_run_in_any_order_and_again(dev: tuple[str, Path]) -> None:
    base, folder = dev
    work = folder / "checkout"
    work.mkdir()
    (work / ".venv").symlink_to(VENV)
    social, upload = walkthrough("social"), walkthrough("upload")

    # Social first: its own accounts, no video yet; the like step says so.
    out = paste(social, base, work)
    assert "no ready video yet" in out
    assert '"status":401' in out  # the last step: /me after log-out

    # Upload: signs up, makes a clip, uploads it and waits until it is ready.
    out = paste(upload, base, work)
    video = json.loads(out.strip().splitlines()[-1])
    assert video["state"] == "ready"
    assert video["playback"]["master_playlist_url"]

    # Social again: logs its accounts in, likes the first For You video.
    out = paste(social, base, work)
    assert "no ready video yet" not in out
    liked = re.search(r'\{"video_id":"(\w+)","likes":\d+', out)
    assert liked, out
    # Counters follow the like through the bus (eventually consistent: seconds).
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/v1/videos/{liked.group(1)}/counters").json()["likes"] < 1:
        assert time.monotonic() < deadline, "the like was never counted"
        time.sleep(0.5)

    # Upload again: logs ada in; the same clip (deduplicated) becomes ready again.
    out = paste(upload, base, work)
    again = json.loads(out.strip().splitlines()[-1])
    assert again["state"] == "ready" and again["id"] != video["id"]
