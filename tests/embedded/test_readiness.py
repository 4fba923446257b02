"""Liveness and readiness: /healthz answers while the process lives; /readyz
says whether every backend answers and every background task runs, and why not.

A background task that fails is logged when it fails, restarted with backoff,
and reported by /readyz until it runs again.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelplane.adapters.cache_redis import RedisCache
from reelplane.backends import Backends, open_backends
from reelplane.http import supervisor as supervisor_module
from reelplane.http.app import create_app
from reelplane.http.services import WORKERS
from tests.conftest import embedded_settings
from tests.helpers import eventually, free_port, serving

pytestmark = pytest.mark.embedded

REELPLANE = str(Path(sys.executable).parent / "reelplane")

#: How many times `flaky_worker` fails before it runs (set by each test).
FLAKY = {"fail_times": 0, "calls": 0}


async def flaky_worker(backends: Backends, stop: asyncio.Event) -> None:
    """A worker that fails its first FLAKY["fail_times"] starts, then runs until stopped."""
    FLAKY["calls"] += 1
    if FLAKY["calls"] <= FLAKY["fail_times"]:
        raise RuntimeError(f"could not get the apt lock (start {FLAKY['calls']})")
    await stop.wait()


class RecordingLog:
    """Stands in for the supervisor's structlog logger: keeps each call."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any], float]] = []

    def _record(self, level: str, event: str, **kw: Any) -> None:
        self.events.append((level, event, kw, time.monotonic()))

    def error(self, event: str, **kw: Any) -> None:
        self._record("error", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._record("warning", event, **kw)


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[Backends]:
    opened = await open_backends(
        embedded_settings(tmp_path, task_restart_backoff_s="0.2", task_restart_max_backoff_s="0.4")
    )
    yield opened
    await opened.close()


async def test_a_failing_task_is_logged_at_once_restarted_and_not_ready_until_it_runs(
    backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(WORKERS, "flaky", f"{__name__}:flaky_worker")
    monkeypatch.setitem(FLAKY, "fail_times", 3)
    monkeypatch.setitem(FLAKY, "calls", 0)
    recorded = RecordingLog()
    monkeypatch.setattr(supervisor_module, "log", recorded)
    # The flaky worker runs beside notify's own tasks.
    app = create_app(backends.settings, ["notify"], workers=["flaky"], backends=backends)
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        started = time.monotonic()
        failing = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200
        assert failing.status_code == 503, failing.text
        body = failing.json()
        assert body["status"] == "unavailable"
        check = body["checks"]["task:flaky"]
        assert check["status"] == "error" and check["phase"] == "restarting"
        assert "RuntimeError: could not get the apt lock" in check["detail"]
        assert body["checks"]["database"]["status"] == "ok"

        async def ready() -> httpx.Response:
            return await client.get("/readyz")

        recovered = await eventually(ready, until=lambda r: r.status_code == 200, timeout_s=20)
        check = recovered.json()["checks"]["task:flaky"]
        assert check == {
            **check,
            "status": "ok",
            "phase": "running",
            "restarts": 3,
            "detail": None,
        }
        assert check["last_error"] == "RuntimeError: could not get the apt lock (start 3)"
        assert FLAKY["calls"] == 4
    failures = [e for e in recorded.events if e[1] == "background task failed; restarting"]
    assert [e[2]["task"] for e in failures] == ["flaky"] * 3
    assert [e[2]["retry_in_s"] for e in failures] == [0.2, 0.4, 0.4]
    assert all(isinstance(e[2]["exc_info"], RuntimeError) for e in failures)
    # Logged when it failed, not at shutdown.
    assert failures[0][3] - started < 5


async def test_a_task_that_returns_before_shutdown_is_restarted(
    backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0

    async def quits(backends: Backends, stop: asyncio.Event) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            return
        await stop.wait()

    monkeypatch.setattr(sys.modules[__name__], "quitting_worker", quits, raising=False)
    monkeypatch.setitem(WORKERS, "quits", f"{__name__}:quitting_worker")
    app = create_app(backends.settings, ["notify"], workers=["quits"], backends=backends)
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:

        async def ready() -> httpx.Response:
            return await client.get("/readyz")

        recovered = await eventually(ready, until=lambda r: r.status_code == 200, timeout_s=20)
        check = recovered.json()["checks"]["task:quits"]
        assert check["restarts"] == 1
        assert check["last_error"] == "returned before the app stopped"


async def test_healthz_stays_up_while_a_backend_is_down_and_readyz_names_it(
    backends: Backends,
) -> None:
    # A real Redis client pointed at a port nothing listens on.
    down = RedisCache(f"redis://127.0.0.1:{free_port()}/0", connect_timeout_s=0.5)
    embedded_cache, backends.cache = backends.cache, down
    try:
        app = create_app(backends.settings, ["notify"], backends=backends)
        async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
            live = await client.get("/healthz")
            assert live.status_code == 200
            assert live.json()["status"] == "ok"
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.headers["content-type"] == "application/json"
            body = ready.json()
            assert body["status"] == "unavailable"
            assert body["checks"]["cache"]["status"] == "error"
            assert body["checks"]["cache"]["detail"]
            statuses = {k: v["status"] for k, v in body["checks"].items()}
            # Every other backend is checked and fine; notify's own checks
            # (its consumer task, its live hub) are beside them, also fine.
            assert {"database", "bus", "widerow", "objects"} <= statuses.keys()
            assert {k for k, v in statuses.items() if v != "ok"} == {"cache"}
    finally:
        backends.cache = embedded_cache
        await down.close()


FAILING_APT = """#!/bin/sh
echo "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease \
Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)" >&2
exit 100
"""


def test_dev_reports_the_transcode_worker_down_when_ffmpeg_cannot_be_installed(
    tmp_path: Path,
) -> None:
    """The drill of a first start where apt cannot reach its mirror: /readyz names
    the transcode worker and why within seconds; /healthz stays 200."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "apt-get").write_text(FAILING_APT)
    (fake_bin / "apt-get").chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    env["PATH"] = f"{fake_bin}:{env.get('PATH', '')}"
    env["REELPLANE_FFMPEG_PATH"] = str(tmp_path / "no-ffmpeg-here" / "ffmpeg")
    proc = subprocess.Popen(
        [REELPLANE, "dev", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                if ready.json()["checks"]["task:transcode"]["status"] == "error":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None, "dev did not start"
        assert ready.status_code == 503, ready.text
        worker = ready.json()["checks"]["task:transcode"]
        assert worker["phase"] == "restarting"
        assert "REELPLANE_FFMPEG_PATH" in worker["detail"]
        assert "could not be installed" in worker["detail"]
        assert "Connection refused" in worker["last_error"]
        # The services themselves are fine: only the worker is down.
        others = {
            k: v["status"] for k, v in ready.json()["checks"].items() if k != "task:transcode"
        }
        assert set(others.values()) == {"ok"}, others
        assert "task:upload.run_janitor" in others
        live = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert live.status_code == 200 and live.json()["status"] == "ok"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    # The failure was logged when it happened, with the exception.
    before_shutdown = out.split("Shutting down")[0]
    assert "background task failed; restarting" in before_shutdown, out[-3000:]
    assert "transcode" in before_shutdown
