"""The gateway in front of the other services, as the chart deploys it: each
service in its own server, the gateway routing to them over HTTP (feed requests
to the caller's shard), on the embedded backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from reelplane.backends import open_backends
from reelplane.feed.context import FeedContext
from reelplane.feed.settings import FeedSettings
from reelplane.feed.shards import shard_of
from reelplane.http.app import create_app
from reelplane.settings import Settings
from tests.conftest import embedded_settings
from tests.helpers import assert_problem, free_port, serving
from tests.social.conftest import TEST_ENV, Account, Stack, eventually_ok

pytestmark = pytest.mark.embedded

UPSTREAM = ["upload", "engagement", "graph", "notify"]


def shard_app(settings: Settings, backends: object, index: int, count: int) -> FastAPI:
    """A FeedShard's feed: `reelplane serve feed` with its shard settings."""
    app = create_app(settings, ["feed"], backends=backends)  # type: ignore[arg-type]
    ctx = FeedContext.load()
    app.state.feed_context = FeedContext(
        FeedSettings(feed_shard_index=index, feed_shard_count=count), ctx.graph, ctx.engagement
    )
    return app


@pytest.fixture
async def deployed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Stack, list[str]]]:
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    settings = embedded_settings(tmp_path)
    backends = await open_backends(settings)
    async with AsyncExitStack() as stack:
        # Behind the gateway the services leave the rate limits to it, as in the chart.
        monkeypatch.setenv("REELPLANE_RATE_LIMITS_ENABLED", "false")
        services = await stack.enter_async_context(
            serving(create_app(settings, UPSTREAM, backends=backends))
        )
        shards = [
            await stack.enter_async_context(serving(shard_app(settings, backends, i, 2)))
            for i in range(2)
        ]
        monkeypatch.setenv("REELPLANE_RATE_LIMITS_ENABLED", "true")
        monkeypatch.setenv("REELPLANE_SERVICE_URLS", json.dumps(dict.fromkeys(UPSTREAM, services)))
        monkeypatch.setenv("REELPLANE_FEED_SHARD_URLS", json.dumps(shards))
        gateway = create_app(settings, ["gateway"], backends=backends)
        base = await stack.enter_async_context(serving(gateway))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=base))
        try:
            yield Stack("embedded", settings, backends, gateway, client), shards
        finally:
            await stack.aclose()
            await backends.close()


async def test_the_gateway_routes_each_request_to_its_service_and_shard(
    deployed: tuple[Stack, list[str]],
) -> None:
    stack, shards = deployed
    creator = await stack.sign_up("creator")  # the gateway's own route
    fan = await stack.sign_up("fan")
    r = await stack.client.put(
        "/v1/users/creator/follow", headers={**fan.auth, "x-request-id": "req-7"}
    )
    assert r.status_code == 200, r.text  # graph, over HTTP
    assert r.headers["x-request-id"] == "req-7"
    video = await stack.ready_video(creator.user_id, caption="hi")
    assert (await stack.client.put(f"/v1/videos/{video}/like", headers=fan.auth)).status_code == 200

    async def in_following(who: Account) -> bool:
        r = await stack.client.get("/v1/feed/following", headers=who.auth)
        assert r.status_code == 200, r.text
        return [i["video_id"] for i in r.json()["items"]] == [video]

    await eventually_ok(lambda: in_following(fan))
    # The fan's shard served that; the other shard refuses the fan with 421.
    other = shards[1 - shard_of(fan.user_id, 2)]
    async with httpx.AsyncClient(base_url=other) as direct:
        refused = await direct.get("/v1/feed/following", headers=fan.auth)
    body = assert_problem(refused, 421)
    assert f"shard {shard_of(fan.user_id, 2)}" in str(body["detail"])
    # Errors from a service come back as they are, problem and all.
    assert_problem(await stack.client.put("/v1/videos/nope/like", headers=fan.auth), 404)
    assert_problem(await stack.client.put("/v1/users/creator/follow"), 401)


async def test_a_tus_upload_streams_through_the_gateway(
    deployed: tuple[Stack, list[str]],
) -> None:
    stack, _ = deployed
    owner = await stack.sign_up("maker")
    tus = {**owner.auth, "Tus-Resumable": "1.0.0"}
    created = await stack.client.post("/v1/uploads", headers={**tus, "Upload-Length": "11"})
    assert created.status_code == 201, created.text
    # Relative, or built from the client's Host: either way it leads to the gateway.
    location = str(stack.client.base_url.join(created.headers["location"]))
    assert location.startswith(str(stack.client.base_url).rstrip("/") + "/v1/uploads/")
    patch = {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    r = await stack.client.patch(location, content=b"hello", headers=patch)
    assert r.status_code == 204 and r.headers["upload-offset"] == "5"
    head = await stack.client.head(location, headers=tus)
    assert head.headers["upload-offset"] == "5" and head.headers["upload-length"] == "11"
    stale = await stack.client.patch(location, content=b"world!", headers=patch)
    assert_problem(stale, 409)


async def test_the_live_socket_goes_through_the_gateway_both_ways_with_its_close_codes(
    deployed: tuple[Stack, list[str]],
) -> None:
    stack, _ = deployed
    ada = await stack.sign_up("ada")
    bob = await stack.sign_up("bob")
    live = str(stack.client.base_url).replace("http://", "ws://") + "/v1/notifications/live"
    offer = ["reelplane.notify.v1", f"bearer.{ada.token}"]
    async with connect(live, subprotocols=offer) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "reelplane.notify.v1"  # the service's choice, relayed
        await ws.send(json.dumps({"type": "hello"}))  # client -> service
        assert json.loads(await asyncio.wait_for(ws.recv(), 15)) == {
            "type": "ready",
            "user_id": ada.user_id,
        }
        assert (await stack.client.put("/v1/users/ada/follow", headers=bob.auth)).status_code == 200
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 15)))[
            "type"
        ] != "notification":
            pass
        assert frame["notification"]["kind"] == "follow"
        assert frame["notification"]["actor_id"] == bob.user_id
    # The service's close code comes back as it is (4401: bad token).
    async with connect(live) as ws:
        await ws.send(json.dumps({"type": "hello", "token": "nope"}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    # A path no service has is refused at the handshake.
    with pytest.raises(InvalidStatus):
        await connect(live.replace("/live", "/nowhere"))


async def test_a_service_that_does_not_answer_is_a_502(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(
        "REELPLANE_SERVICE_URLS", json.dumps({"graph": f"http://127.0.0.1:{free_port()}"})
    )
    settings = embedded_settings(tmp_path)
    backends = await open_backends(settings)
    try:
        app = create_app(settings, ["gateway"], backends=backends)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
        ):
            r = await client.post("/v1/accounts", json={"handle": "ada", "password": "pw-long-1!"})
            token = r.json()["token"]
            auth = {"authorization": f"Bearer {token}"}
            body = assert_problem(await client.get("/v1/users/ada", headers=auth), 502)
            assert "did not answer" in str(body["detail"])
            # A service with no address at all: 502 too, saying so.
            no_addr = assert_problem(await client.get("/v1/feed/foryou", headers=auth), 502)
            assert "no address" in str(no_addr["detail"])
        # A WebSocket whose service does not answer: 502 problem+json at the handshake.
        async with serving(app) as base:
            live = base.replace("http://", "ws://") + "/v1/notifications/live"
            with pytest.raises(InvalidStatus) as refused:
                await connect(live)
            assert refused.value.response.status_code == 502
            assert b"no address" in (refused.value.response.body or b"")
    finally:
        await backends.close()
