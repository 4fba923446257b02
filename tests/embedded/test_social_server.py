"""The social API through a real uvicorn server (HTTP over a socket), and the
`reelplane counters repair` command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from reelplane.backends import open_backends
from reelplane.http.app import create_app
from reelplane.schema import likes, users, videos
from tests.conftest import embedded_settings
from tests.helpers import serving
from tests.social.conftest import SOCIAL_SERVICES, TEST_ENV, Stack, eventually_ok

pytestmark = pytest.mark.embedded

REELPLANE = str(Path(sys.executable).parent / "reelplane")


@pytest.fixture
async def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Stack, str]]:
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    settings = embedded_settings(tmp_path)
    backends = await open_backends(settings)
    app = create_app(settings, SOCIAL_SERVICES, backends=backends)
    try:
        async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
            yield Stack("embedded", settings, backends, app, client), base
    finally:
        await backends.close()


async def test_a_user_journey_through_a_real_server(served: tuple[Stack, str]) -> None:
    stack, _ = served
    creator = await stack.sign_up("creator")
    fan = await stack.sign_up("fan")
    r = await stack.client.put(
        "/v1/users/creator/follow",
        headers={**fan.auth, "origin": "http://localhost:5173", "x-request-id": "req-42"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert r.headers["x-request-id"] == "req-42"
    video = await stack.ready_video(creator.user_id, caption="hello <world>", hashtags=["hi"])

    async def in_following() -> bool:
        body = (await stack.client.get("/v1/feed/following", headers=fan.auth)).json()
        return [i["video_id"] for i in body["items"]] == [video]

    await eventually_ok(in_following, timeout_s=2)
    assert (await stack.client.put(f"/v1/videos/{video}/like", headers=fan.auth)).status_code == 200
    foryou = (await stack.client.get("/v1/feed/foryou", headers=fan.auth)).json()
    assert [i["video_id"] for i in foryou["items"]] == [video]
    assert foryou["items"][0]["viewer_liked"] is True
    assert (await stack.client.delete("/v1/sessions/current", headers=fan.auth)).status_code == 204
    refused = await stack.client.get("/v1/feed/foryou", headers=fan.auth)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"


async def test_counters_repair_command_rewrites_the_cache_from_the_database(
    tmp_path: Path,
) -> None:
    settings = embedded_settings(tmp_path)
    backends = await open_backends(settings)
    now = datetime.now(UTC)
    owner, fans, video = uuid.uuid4().hex, [uuid.uuid4().hex for _ in range(2)], uuid.uuid4().hex
    async with backends.database.transaction() as conn:
        for i, uid in enumerate([owner, *fans]):
            await conn.execute(users.insert().values(id=uid, handle=f"u{i}x", created_at=now))
        await conn.execute(
            videos.insert().values(
                id=video,
                owner_id=owner,
                hashtags=[],
                state="ready",
                created_at=now,
                updated_at=now,
                ready_at=now,
            )
        )
        for uid in fans:
            await conn.execute(likes.insert().values(user_id=uid, video_id=video, created_at=now))
    await backends.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    env.update(
        REELPLANE_DATABASE_URL=settings.database_url,
        REELPLANE_WIDEROW_URL=settings.widerow_url,
        REELPLANE_OBJECTS_URL=settings.objects_url,
    )
    proc = await asyncio.to_thread(
        subprocess.run,
        [REELPLANE, "counters", "repair", "--video", video],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # A fresh process has an empty in-process cache: the likes counter (0) differed from 2.
    assert "counters repaired (1 differed" in proc.stdout


async def _raw_request(base: str, head: str, body: bytes) -> tuple[int, bytes]:
    """Send a request's head and the start of its body over a socket, never the
    rest, and read the answer (status, body): one comes only if the server
    answers without waiting for the whole body."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        lines = raw_head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        return int(lines[0].split()[1]), await reader.readexactly(length)
    finally:
        writer.close()


async def test_a_body_over_the_limit_is_refused_before_the_server_has_all_of_it(
    served: tuple[Stack, str],
) -> None:
    stack, base = served
    fan = await stack.sign_up("fan")
    path = f"/v1/videos/{uuid.uuid4().hex}/comments"
    # A Content-Length over the limit: refused on the head alone.
    status, body = await _raw_request(
        base,
        f"POST {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {fan.token}\n"
        "Content-Type: application/json\nContent-Length: 10485760\n",
        b'{"text": "' + b"x" * 1000,
    )
    assert status == 413
    assert b"body-too-large" in body
    # A chunked body: refused once what arrived passes the limit.
    chunk = b"x" * (40 * 1024)
    status, body = await _raw_request(
        base,
        f"POST {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {fan.token}\n"
        "Content-Type: application/json\nTransfer-Encoding: chunked\n",
        b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)),
    )
    assert status == 413
    assert b"body-too-large" in body
