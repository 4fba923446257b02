"""The stuck-video drill, as a user meets it: `reelplane dev` is killed (SIGKILL)
between the upload's last PATCH and the transcode, then started again; the
video must become ready. Embedded backends and the real servers.

In the first run the transcode worker is down, as on a first start whose
ffmpeg install failed (apt-get cannot reach its mirror), so the upload is
certainly finished and announced while nothing transcodes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelplane.backends import MEMORY_BUS_FILE
from reelplane.settings import Settings
from tests.helpers import free_port
from tests.ingest.conftest import Media

REELPLANE = str(Path(sys.executable).parent / "reelplane")

FAILING_APT = """#!/bin/sh
echo "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease \
Could not connect to 127.0.0.1:9 - connect (111: Connection refused)" >&2
exit 100
"""


def dev_env(settings: Settings, backend_kind: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    env.update(
        REELPLANE_DATA_DIR=str(settings.data_dir),
        REELPLANE_DATABASE_URL=settings.database_url,
        REELPLANE_BUS_URL=settings.bus_url,
        REELPLANE_CACHE_URL=settings.cache_url,
        REELPLANE_WIDEROW_URL=settings.widerow_url,
        REELPLANE_OBJECTS_URL=settings.objects_url,
        REELPLANE_TRANSCODE_H264_PRESET="ultrafast",
        REELPLANE_TRANSCODE_HEVC_PRESET="ultrafast",
        REELPLANE_TRANSCODE_RUNGS="360:800:500",
    )
    if backend_kind == "real":
        # A group of its own (from the start of `uploads`): no other test's
        # worker commits this video's event in a shared group.
        env["REELPLANE_TRANSCODE_GROUP"] = f"drill-{uuid.uuid4().hex[:8]}"
    env.update(extra)
    return env


@contextmanager
def dev(env: dict[str, str], cwd: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`reelplane dev` on a free port; yields its base URL once /healthz answers.
    Leaves it running if the block killed it itself; terminates it otherwise."""
    port = free_port()
    with log.open("a") as out:
        proc = subprocess.Popen(
            [REELPLANE, "dev", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def wait_for(probe: Any, until: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if until(value):
            return value
        assert time.monotonic() < deadline, f"not met within {timeout_s} s; last: {value!r}"
        time.sleep(0.5)


def upload(base: str, path: Path) -> tuple[str, str]:
    """Sign up and upload `path` with plain tus requests; returns (token, video id)."""
    handle = f"d{uuid.uuid4().hex[:10]}"
    account = httpx.post(
        f"{base}/v1/accounts", json={"handle": handle, "password": "correct horse battery"}
    )
    assert account.status_code == 201, account.text
    token = account.json()["token"]
    auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    data = path.read_bytes()
    created = httpx.post(f"{base}/v1/uploads", headers={**auth, "Upload-Length": str(len(data))})
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    last = httpx.patch(
        base + location,
        content=data,
        headers={
            **auth,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
        timeout=120,
    )
    assert last.status_code == 204, last.text
    return token, location.rsplit("/", 1)[-1]


def video_state(base: str, token: str, video_id: str) -> dict[str, Any]:
    try:
        r = httpx.get(f"{base}/v1/videos/{video_id}", headers={"Authorization": f"Bearer {token}"})
    except httpx.TransportError as exc:
        return {"state": f"unreachable: {exc}"}
    body: dict[str, Any] = r.json()
    return body


def kill_between_patch_and_transcode(
    settings: Settings, backend_kind: str, media: Media, tmp_path: Path, **second_run: str
) -> tuple[str, str, Path]:
    """Run 1 with the worker down, upload, SIGKILL. Returns (token, video id, log)."""
    fake_bin = tmp_path / "fake-apt"
    fake_bin.mkdir()
    (fake_bin / "apt-get").write_text(FAILING_APT)
    (fake_bin / "apt-get").chmod(0o755)
    log = tmp_path / "dev.log"
    first = dev_env(
        settings,
        backend_kind,
        PATH=f"{fake_bin}:{os.environ.get('PATH', '')}",
        REELPLANE_FFMPEG_PATH=str(tmp_path / "no-ffmpeg" / "ffmpeg"),
        **second_run,
    )
    with dev(first, tmp_path, log) as (base, proc):
        ready = wait_for(
            lambda: httpx.get(f"{base}/readyz", timeout=5).json()["checks"]["task:transcode"],
            until=lambda c: c["status"] == "error",
            timeout_s=60,
        )
        assert "could not be installed" in ready["detail"]
        token, video_id = upload(base, media.small)
        assert video_state(base, token, video_id)["state"] == "uploaded"
        proc.send_signal(signal.SIGKILL)  # no shutdown code runs
        proc.wait(timeout=10)
    return token, video_id, log


def test_a_video_uploaded_before_a_sigkill_is_ready_after_the_restart(
    platform_settings: Settings, backend_kind: str, media: Media, tmp_path: Path
) -> None:
    # No re-announcement within the test: the event itself must have survived.
    no_rescue = {"REELPLANE_UPLOAD_REANNOUNCE_AFTER_S": "3600"}
    token, video_id, log = kill_between_patch_and_transcode(
        platform_settings, backend_kind, media, tmp_path, **no_rescue
    )
    with dev(dev_env(platform_settings, backend_kind, **no_rescue), tmp_path, log) as (base, _):
        started = time.monotonic()
        done = wait_for(
            lambda: video_state(base, token, video_id),
            until=lambda v: v["state"] in ("ready", "failed"),
            timeout_s=240,
        )
        print(f"[{backend_kind}] ready {time.monotonic() - started:.1f} s after the restart")
        assert done["state"] == "ready", done
        assert done["playback"]["master_playlist_url"]
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "backend_kind", [pytest.param("embedded", marks=pytest.mark.embedded)], indirect=True
)
def test_a_video_whose_event_was_lost_with_the_bus_is_ready_after_the_restart(
    platform_settings: Settings, backend_kind: str, media: Media, tmp_path: Path
) -> None:
    """The bus's file is gone too (the old in-process bus, or a wiped data
    folder): the janitor announces the video again after the bound."""
    fast = {
        "REELPLANE_UPLOAD_REANNOUNCE_AFTER_S": "3",
        "REELPLANE_UPLOAD_JANITOR_INTERVAL_S": "1",
    }
    token, video_id, log = kill_between_patch_and_transcode(
        platform_settings, backend_kind, media, tmp_path, **fast
    )
    bus_file = platform_settings.data_dir / MEMORY_BUS_FILE
    for leftover in bus_file.parent.glob(MEMORY_BUS_FILE + "*"):
        leftover.unlink()
    with dev(dev_env(platform_settings, backend_kind, **fast), tmp_path, log) as (base, _):
        started = time.monotonic()
        done = wait_for(
            lambda: video_state(base, token, video_id),
            until=lambda v: v["state"] in ("ready", "failed"),
            timeout_s=240,
        )
        print(f"[lost event] ready {time.monotonic() - started:.1f} s after the restart")
        assert done["state"] == "ready", done
    assert "upload janitor" in log.read_text()
