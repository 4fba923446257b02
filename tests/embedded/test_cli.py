"""The `reelplane` command as a user runs it: one-line errors, a serving `dev`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.embedded

REELPLANE = str(Path(sys.executable).parent / "reelplane")


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    proc = subprocess.run(
        [REELPLANE, *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_unknown_scheme_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    code, _, err = run_cli("dev", env={"REELPLANE_BUS_URL": "amqp://x"}, cwd=tmp_path)
    assert code == 2
    assert err.strip().splitlines() == [
        "reelplane: error: REELPLANE_BUS_URL: unsupported scheme amqp://; "
        "expected one of memory://, kafka:// (got 'amqp://x')"
    ]


def test_settings_lists_every_section_with_secrets_redacted(tmp_path: Path) -> None:
    env = {
        "REELPLANE_DATABASE_URL": "mysql+asyncmy://app:hunter2@db:3306/reelplane",
        "REELPLANE_FEED_SHARD_COUNT": "4",
    }
    code, out, _ = run_cli("settings", env=env, cwd=tmp_path)
    assert code == 0
    sections = [line for line in out.splitlines() if line.startswith("# ")]
    assert sections[0] == "# core" and "# feed" in sections and "# transcode worker" in sections
    assert "REELPLANE_DATABASE_URL=mysql+asyncmy://app:***@db:3306/reelplane" in out
    assert "hunter2" not in out
    assert "REELPLANE_FEED_SHARD_COUNT=4 " in out
    assert "REELPLANE_RATE_LIMIT_USER_BURST=100.0 " in out
    code, _, err = run_cli("settings", env={"REELPLANE_FEED_SHARD_INDEX": "-1"}, cwd=tmp_path)
    assert code == 2
    assert err.strip().startswith("reelplane: error: REELPLANE_FEED_SHARD_INDEX: ")


def test_unreachable_server_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    code, _, err = run_cli(
        "migrate", env={"REELPLANE_CACHE_URL": f"redis://127.0.0.1:{port}/0"}, cwd=tmp_path
    )
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"reelplane: error: REELPLANE_CACHE_URL=redis://127.0.0.1:{port}/0: "
    )
    assert "cannot connect" in lines[0]


def test_password_is_not_printed_in_errors(tmp_path: Path) -> None:
    port = free_port()
    url = f"mysql+asyncmy://app:hunter2@127.0.0.1:{port}/db"
    code, _, err = run_cli(
        "migrate",
        env={"REELPLANE_DATABASE_URL": url, "REELPLANE_CONNECT_TIMEOUT_S": "3"},
        cwd=tmp_path,
    )
    assert code == 1
    assert "hunter2" not in err
    assert "REELPLANE_DATABASE_URL=mysql+asyncmy://app:***@" in err


def test_unknown_service_is_rejected(tmp_path: Path) -> None:
    code, _, err = run_cli("serve", "nope", cwd=tmp_path)
    assert code == 2
    assert "unknown service 'nope'" in err


def test_dev_serves_health_and_docs_on_the_embedded_backends(tmp_path: Path) -> None:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    proc = subprocess.Popen(
        [REELPLANE, "dev", "--port", str(port)],
        cwd=tmp_path,
        env=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, "dev did not start"
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok"
        assert "upload" in body["services"]
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert {"database", "cache", "bus", "widerow", "objects"} < set(checks)
        assert {"task:transcode", "task:upload.run_janitor"} < set(checks)
        assert {c["status"] for c in checks.values()} == {"ok"}
        docs = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5)
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).json()
        assert "/healthz" in spec["paths"] and "/readyz" in spec["paths"]
        missing = httpx.get(f"http://127.0.0.1:{port}/no-such-thing", timeout=5)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["status"] == 404
        # The embedded backends keep their files in the working folder.
        assert (tmp_path / ".reelplane" / "reelplane.db").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def start_dev(port: int, cwd: Path, log: Path) -> subprocess.Popen[str]:
    """`reelplane dev` on `port`, its output in `log`; returns once /healthz answers."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [REELPLANE, "dev", "--port", str(port)],
            cwd=cwd,
            env=base,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise AssertionError(f"dev did not start:\n{log.read_text()}")


def test_dev_banner_lists_only_the_services_that_serve_routes(tmp_path: Path) -> None:
    from reelplane.http.services import SERVICES, load_service

    port = free_port()
    proc = start_dev(port, tmp_path, tmp_path / "dev.log")
    try:
        banner = next(
            line
            for line in (tmp_path / "dev.log").read_text().splitlines()
            if line.startswith("reelplane: serving ")
        )
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    served = [name for name in SERVICES if load_service(name).routers]
    assert banner.startswith(f"reelplane: serving {', '.join(served)} on http://127.0.0.1:{port} ")


def test_dev_on_a_busy_port_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run_cli("dev", "--port", str(port), cwd=tmp_path)
    assert code == 2
    assert "serving" not in out + err
    assert err.strip().splitlines() == [
        f"reelplane: error: REELPLANE_HTTP_PORT={port}: cannot listen on 127.0.0.1:{port}: "
        "already in use (another reelplane dev?); choose another port "
        "(--port or REELPLANE_HTTP_PORT)"
    ]


def test_dev_on_a_foreign_address_is_one_line_naming_the_host_setting(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is never an address of this machine; nothing is sent.
    code, _, err = run_cli("dev", "--host", "192.0.2.1", cwd=tmp_path)
    assert code == 2
    assert err.strip().splitlines() == [
        "reelplane: error: REELPLANE_HTTP_HOST=192.0.2.1: not an address of this machine"
    ]
