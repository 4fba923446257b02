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
