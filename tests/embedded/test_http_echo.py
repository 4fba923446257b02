"""What a served API echoes of a hostile request, as `reelplane serve` runs it
(problems cut long input short, log lines escape control characters), and what
a log line carries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reelplane.http.problems import MAX_ECHO_CHARS
from tests.helpers import free_port

pytestmark = pytest.mark.embedded

REELPLANE = str(Path(sys.executable).parent / "reelplane")


def test_a_long_id_is_echoed_cut_short_and_a_nul_is_logged_escaped(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [REELPLANE, "serve", "graph"],
            cwd=tmp_path,
            env={**env, "REELPLANE_HTTP_PORT": str(port), "REELPLANE_LOG_FORMAT": "console"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)

        long_id = "a" * 8000
        r = httpx.get(f"{base}/v1/users/{long_id}", timeout=10)
        assert r.status_code == 404
        body = r.json()
        assert len(body["instance"]) == MAX_ECHO_CHARS
        assert body["instance"].endswith("\u2026")
        assert body["detail"].startswith("no user 'aaa")
        assert len(body["detail"]) <= MAX_ECHO_CHARS + len("no user ")
        assert long_id not in r.text

        hostile = httpx.get(f"{base}/v1/users/ab%00%1b%5b31mred%0Afake", timeout=10)
        assert hostile.status_code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    text = log.read_bytes()
    # One line, with the NUL, the ESC and the newline written as escapes.
    assert b"path=/v1/users/ab\\x00\\x1b[31mred\\nfake " in text
    assert b"\x00" not in text and b"\x1b" not in text


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_standard_library_records_extra_fields_are_in_its_log_line(fmt: str) -> None:
    # The worker and the upload engine log with `extra=`: those fields are the line.
    script = (
        "import logging\n"
        "from reelplane.logs import configure_logging\n"
        f"configure_logging({fmt!r})\n"
        "logging.getLogger('reelplane_transcode.job').info(\n"
        "    'ladder encoded', extra={'video_id': 'v1', 'rungs': 'h264_360p', 'note': 'a\\x00b'}\n"
        ")\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1
    if fmt == "console":
        assert "video_id=v1" in line and "rungs=h264_360p" in line
        assert "note=a\\x00b" in line
    else:
        record = json.loads(line)
        assert (record["event"], record["video_id"], record["rungs"]) == (
            "ladder encoded",
            "v1",
            "h264_360p",
        )
