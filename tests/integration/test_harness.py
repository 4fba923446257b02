"""The harness's own rules, checked with a tiny real server (python -m http.server)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from reelplane.infra.harness import Harness, HarnessError, Server

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TinyHttp(Server):
    name = "tiny"
    start_timeout_s = 15.0

    def __init__(self, root: Path, port: int, *, broken: bool = False) -> None:
        super().__init__(root)
        self.port = port
        self.broken = broken
        self.installs = 0

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    def install(self) -> None:
        self.installs += 1

    def prepare(self) -> None:
        (self.data_dir / "index.html").write_text("hello")

    def command(self) -> tuple[list[str], dict[str, str]]:
        if self.broken:
            return [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"], {}
        return [sys.executable, "-m", "http.server", str(self.port), "--bind", self.host], {}

    def ready(self) -> bool:
        with urllib.request.urlopen(self.url, timeout=1) as resp:  # noqa: S310 - loopback
            return bool(resp.status == 200)


def test_up_is_idempotent_and_down_stops_it(tmp_path: Path) -> None:
    server = TinyHttp(tmp_path, free_port())
    harness = Harness([server], tmp_path)
    first = harness.up()
    assert first[0].state == "ready"
    assert first[0].pid is not None
    second = harness.up()
    assert second[0].pid == first[0].pid  # reused, not restarted
    assert server.installs == 1
    assert harness.down() == ["tiny"]
    assert harness.status()[0].state == "stopped"
    assert harness.down() == []


def test_a_server_started_by_someone_else_is_reused_and_never_stopped(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "ext").mkdir()
    external = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path / "ext",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server = TinyHttp(tmp_path, port)
        deadline = time.monotonic() + 10
        while not _ready(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        harness = Harness([server], tmp_path)
        assert harness.up()[0].state == "external"
        assert harness.down() == []
        assert external.poll() is None  # still running
    finally:
        external.terminate()
        external.wait()


def test_crash_and_restart(tmp_path: Path) -> None:
    harness = Harness([TinyHttp(tmp_path, free_port())], tmp_path)
    harness.up()
    assert harness.stop("tiny", hard=True)
    assert harness.status()[0].state == "stopped"
    harness.start("tiny")
    assert harness.status()[0].state == "ready"
    harness.down()


def test_a_server_that_exits_at_start_reports_its_log(tmp_path: Path) -> None:
    harness = Harness([TinyHttp(tmp_path, free_port(), broken=True)], tmp_path)
    with pytest.raises(HarnessError, match="exited during start") as err:
        harness.up()
    assert "bad config" in str(err.value)


def test_unknown_server_name(tmp_path: Path) -> None:
    harness = Harness([TinyHttp(tmp_path, free_port())], tmp_path)
    with pytest.raises(HarnessError, match="unknown server 'nope'"):
        harness.up(["nope"])


def _ready(server: Server) -> bool:
    try:
        return server.ready()
    except OSError:
        return False
