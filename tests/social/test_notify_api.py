"""The notify service end to end: two replicas (A serves the WebSockets and
handles no events, B runs the consumer), on the embedded backends and on the
real servers (Kafka, Redis, MariaDB, Cassandra). Uvicorn serves both, so the
WebSockets are real ones."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from reelplane.backends import Backends, open_backends
from reelplane.events.envelope import VideoLiked, VideoLikePayload
from reelplane.events.publisher import EventPublisher
from reelplane.http.app import create_app
from reelplane.notify.consumer import notify_handler
from reelplane.notify.core import Kind, Notification
from reelplane.notify.live import LIVE_CHANNEL, Hub, LiveMessage
from reelplane.notify.settings import NotifySettings
from tests.conftest import BACKENDS
from tests.helpers import assert_problem, serving
from tests.social.conftest import (
    Account,
    NamespacedBus,
    NamespacedCache,
    NamespacedGate,
    Stack,
    eventually_ok,
    open_stack_backends,
)

SERVICES = ["gateway", "upload", "graph", "engagement", "notify"]
WAIT_S = 15.0
LIVE_QUEUE = 8


@pytest.fixture(autouse=True)
def live_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short live queue and quick heartbeats, so both show within a test."""
    monkeypatch.setenv("REELPLANE_NOTIFY_LIVE_QUEUE", str(LIVE_QUEUE))
    monkeypatch.setenv("REELPLANE_NOTIFY_HEARTBEAT_S", "0.5")


@dataclass
class Replicas:
    stack: Stack  # its client talks to replica B (which runs the consumer)
    app_a: FastAPI
    url_a: str  # replica A: WebSockets, no background tasks
    url_b: str

    def ws_url(self, base: str) -> str:
        return base.replace("http://", "ws://") + "/v1/notifications/live"


async def second_backends(stack: Stack, ns: str) -> Backends:
    """Replica B's own connections to the same servers (the same namespace)."""
    if stack.kind == "embedded":
        return stack.backends  # one process: the in-process bus and cache are shared
    b = await open_backends(stack.settings, migrate=False)
    b.bus = NamespacedBus(b.bus, f"{ns}.")
    b.cache = NamespacedCache(b.cache, f"{ns}:")
    b.gate = NamespacedGate(b.gate, f"{ns}:")
    return b


@pytest.fixture(params=BACKENDS)
async def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, ns: str, social_env: dict[str, str]
) -> AsyncIterator[Replicas]:
    settings, backends = await open_stack_backends(request.param, tmp_path, request, ns)
    stack = Stack(request.param, settings, backends, None, None)  # type: ignore[arg-type]
    b = await second_backends(stack, ns)
    try:
        async with AsyncExitStack() as es:
            app_a = create_app(settings, SERVICES, backends=backends, run_background=False)
            app_b = create_app(settings, SERVICES, backends=b)
            url_a = await es.enter_async_context(serving(app_a))
            url_b = await es.enter_async_context(serving(app_b))
            stack.app = app_b
            stack.client = await es.enter_async_context(httpx.AsyncClient(base_url=url_b))
            yield Replicas(stack, app_a, url_a, url_b)
    finally:
        if b is not backends:
            await b.close()
        await backends.close()


async def open_live(r: Replicas, who: Account, cursor: str | None = None) -> ClientConnection:
    """Ada's socket on replica A, authenticated by subprotocol (no token in the URL)."""
    ws = await connect(
        r.ws_url(r.url_a),
        subprotocols=["reelplane.notify.v1", f"bearer.{who.token}"],  # type: ignore[list-item]
    )
    assert ws.subprotocol == "reelplane.notify.v1"
    await ws.send(json.dumps({"type": "hello", **({"cursor": cursor} if cursor else {})}))
    ready = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
    assert ready == {"type": "ready", "user_id": who.user_id}
    return ws


async def next_notifications(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < n:
        frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        if frame["type"] == "notification":
            got.append(frame)
    return got


async def quiet(ws: ClientConnection, seconds: float = 1.0) -> list[dict[str, Any]]:
    """Notifications that arrive within `seconds` (expected: none)."""
    got: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):  # one deadline: heartbeats keep coming
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "notification":
                    got.append(frame)
    except TimeoutError:
        return got


async def like(r: Replicas, who: Account, video_id: str) -> None:
    resp = await r.stack.client.put(f"/v1/videos/{video_id}/like", headers=who.auth)
    assert resp.status_code == 200, resp.text


async def comment(r: Replicas, who: Account, video_id: str, text: str) -> None:
    resp = await r.stack.client.post(
        f"/v1/videos/{video_id}/comments", json={"text": text}, headers=who.auth
    )
    assert resp.status_code == 201, resp.text


async def follow(r: Replicas, who: Account, handle: str) -> None:
    resp = await r.stack.client.put(f"/v1/users/{handle}/follow", headers=who.auth)
    assert resp.status_code == 200, resp.text


async def inbox(r: Replicas, who: Account, **params: Any) -> dict[str, Any]:
    resp = await r.stack.client.get("/v1/notifications", params=params, headers=who.auth)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_a_socket_on_one_replica_hears_events_handled_by_the_other_and_catches_up(
    replicas: Replicas,
) -> None:
    r = replicas
    ada = await r.stack.sign_up("ada")
    bob = await r.stack.sign_up("bob")
    carol = await r.stack.sign_up("carol")
    video = await r.stack.ready_video(ada.user_id, caption="hello")
    ws = await open_live(r, ada)
    await like(r, bob, video)
    await comment(r, bob, video, "lovely")
    await follow(r, bob, "ada")
    first = await next_notifications(ws, 3)
    assert sorted(f["notification"]["kind"] for f in first) == ["comment", "follow", "like"]
    assert {f["notification"]["actor_id"] for f in first} == {bob.user_id}
    cursor = first[-1]["cursor"]
    await ws.close()

    await like(r, carol, video)  # while ada is away
    await comment(r, carol, video, "wow")
    await follow(r, carol, "ada")
    await eventually_ok(lambda: _count(r, ada, 6), timeout_s=WAIT_S)  # written to her log meanwhile
    ws = await open_live(r, ada, cursor)
    missed = await next_notifications(ws, 3)
    assert {f["notification"]["actor_id"] for f in missed} == {carol.user_id}
    assert sorted(f["notification"]["kind"] for f in missed) == ["comment", "follow", "like"]
    assert await quiet(ws) == []  # exactly those three
    await ws.close()


async def _count(r: Replicas, who: Account, n: int) -> bool:
    resp = await r.stack.client.get("/v1/notifications/unread-count", headers=who.auth)
    return bool(resp.json()["unread"] == n)


async def test_likes_group_and_own_actions_are_not_notified(replicas: Replicas) -> None:
    r = replicas
    ada = await r.stack.sign_up("ada")
    fans = [await r.stack.sign_up(f"fan{i}") for i in range(4)]
    video = await r.stack.ready_video(ada.user_id)
    await like(r, ada, video)  # her own like: nobody is told
    for fan in fans:
        await like(r, fan, video)
    await eventually_ok(lambda: _count(r, ada, 4), timeout_s=WAIT_S)
    page = await inbox(r, ada)
    assert len(page["items"]) == 1
    group = page["items"][0]
    assert group["summary"] == "fan3 and 3 others liked your video"
    assert group["count"] == 4 and group["unread"] and page["unread_count"] == 4


async def test_mark_one_read_then_all_read(replicas: Replicas) -> None:
    r = replicas
    ada = await r.stack.sign_up("ada")
    bob = await r.stack.sign_up("bob")
    v1 = await r.stack.ready_video(ada.user_id)
    v2 = await r.stack.ready_video(ada.user_id)
    await like(r, bob, v1)
    await like(r, bob, v2)
    await eventually_ok(lambda: _count(r, ada, 2), timeout_s=WAIT_S)
    newest = (await inbox(r, ada))["items"][0]["id"]
    resp = await r.stack.client.post(f"/v1/notifications/{newest}/read", headers=ada.auth)
    assert resp.status_code == 204
    assert await _count(r, ada, 1)
    items = (await inbox(r, ada))["items"]
    assert [i["unread"] for i in items] == [False, True]
    resp = await r.stack.client.post("/v1/notifications/read-all", headers=ada.auth)
    assert resp.status_code == 204
    assert await _count(r, ada, 0)
    # Someone else's notification id is not found in the caller's log.
    resp = await r.stack.client.post(f"/v1/notifications/{newest}/read", headers=bob.auth)
    assert_problem(resp, 404)


async def test_pages_follow_the_cursor_and_bad_cursors_are_422(replicas: Replicas) -> None:
    r = replicas
    ada = await r.stack.sign_up("ada")
    fans = [await r.stack.sign_up(f"fol{i}") for i in range(5)]
    for fan in fans:
        await follow(r, fan, "ada")
        await like(r, fan, await r.stack.ready_video(ada.user_id))
    await eventually_ok(lambda: _count(r, ada, 10), timeout_s=WAIT_S)
    seen: list[str] = []
    cursor = None
    while True:
        page = await inbox(r, ada, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [i for g in page["items"] for i in g["ids"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 10
    resp = await r.stack.client.get(
        "/v1/notifications", params={"cursor": "not-a-cursor"}, headers=ada.auth
    )
    assert_problem(resp, 422)
    assert_problem(await r.stack.client.get("/v1/notifications"), 401)


async def test_replayed_events_change_nothing(replicas: Replicas) -> None:
    r = replicas
    ada = await r.stack.sign_up("ada")
    bob = await r.stack.sign_up("bob")
    video = await r.stack.ready_video(ada.user_id)
    event = VideoLiked(
        key=bob.user_id, payload=VideoLikePayload(user_id=bob.user_id, video_id=video)
    )
    publisher = EventPublisher(r.stack.backends.bus)
    await publisher.publish(event)
    await eventually_ok(lambda: _count(r, ada, 1), timeout_s=WAIT_S)
    before = await inbox(r, ada)
    await publisher.publish(event)  # the same event id again, through the bus
    await notify_handler(r.stack.backends, NotifySettings())(event)  # and past the dedup
    await asyncio.sleep(1.0)
    assert await inbox(r, ada) == before
    assert before["items"][0]["count"] == 1


async def test_the_socket_refuses_a_bad_token_and_a_missing_hello(replicas: Replicas) -> None:
    r = replicas
    async with connect(r.ws_url(r.url_a)) as ws:
        await ws.send(json.dumps({"type": "hello", "token": "nope"}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with connect(r.ws_url(r.url_a)) as ws:
        await ws.send("not json")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_the_first_message_can_carry_the_token(replicas: Replicas) -> None:
    r = replicas
    ada = await r.stack.sign_up("ada")
    bob = await r.stack.sign_up("bob")
    async with connect(r.ws_url(r.url_a)) as ws:
        await ws.send(json.dumps({"type": "hello", "token": ada.token}))
        assert json.loads(await ws.recv())["type"] == "ready"
        await follow(r, bob, "ada")
        (got,) = await next_notifications(ws, 1)
        assert got["notification"]["kind"] == "follow"


async def test_heartbeats_keep_an_idle_socket_talking(replicas: Replicas) -> None:
    ada = await replicas.stack.sign_up("ada")
    ws = await open_live(replicas, ada)
    frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
    assert frame["type"] == "heartbeat"
    await ws.close()


async def test_a_client_that_reads_nothing_is_dropped_not_buffered(replicas: Replicas) -> None:
    r = replicas
    ada = await r.stack.sign_up("ada")
    # A client that stops reading: its library holds one frame, then TCP backs up.
    # No permessage-deflate: alike frames would shrink to a few bytes each and
    # fit the kernel's socket buffers whole, so the server would never wait.
    ws = await connect(
        r.ws_url(r.url_a),
        subprotocols=["reelplane.notify.v1", f"bearer.{ada.token}"],  # type: ignore[list-item]
        max_queue=1,
        compression=None,
    )
    await ws.send(json.dumps({"type": "hello"}))
    hub: Hub = await _hub_of(r.app_a)
    assert ada.user_id in hub.connections
    padding = "x" * 140
    sent = 0
    # Far more than the socket buffers and the queue hold together (~10 MB).
    while ada.user_id in hub.connections and sent < 40_000:
        batch = [
            LiveMessage(
                user_id=ada.user_id,
                notification=Notification(
                    id=f"n{sent + i}",
                    kind=Kind.COMMENT,
                    actor_id="bob",
                    text=padding,
                    at_ms=1,
                ),
            )
            for i in range(200)
        ]
        for m in batch:
            await r.stack.backends.cache.publish(LIVE_CHANNEL, m.model_dump_json().encode())
        sent += len(batch)
        await asyncio.sleep(0.01)
    await eventually_ok(lambda: _gone(hub, ada.user_id), timeout_s=WAIT_S)
    await ws.close()


async def test_a_hub_whose_subscription_is_cut_says_so_and_resubscribes(
    replicas: Replicas, caplog: pytest.LogCaptureFixture
) -> None:
    r = replicas
    if r.stack.kind == "embedded":
        pytest.skip("the in-process pub/sub has no connection to cut")
    redis = aioredis.Redis.from_url(r.stack.settings.cache_url)
    before = {c["id"] for c in await redis.client_list(_type="pubsub")}
    ada = await r.stack.sign_up("ada")
    bob = await r.stack.sign_up("bob")
    ws = await open_live(r, ada)  # replica A's hub subscribes
    mine = _own_ports()
    (hub_client,) = [
        c
        for c in await redis.client_list(_type="pubsub")
        if c["id"] not in before and int(c["addr"].rsplit(":", 1)[1]) in mine
    ]
    await redis.client_kill_filter(_id=hub_client["id"])  # as Redis does at its buffer limit
    await redis.aclose()

    def said(text: str) -> bool:
        return any(text in rec.getMessage() for rec in caplog.records)

    await eventually_ok(lambda: _true(said("live subscription lost")), timeout_s=WAIT_S)
    await eventually_ok(lambda: _true(said("live subscription restored")), timeout_s=WAIT_S)
    async with httpx.AsyncClient(base_url=r.url_a) as a:
        ready = (await a.get("/readyz")).json()
    assert ready["checks"]["notify_live"]["status"] == "ok"
    await follow(r, bob, "ada")  # published after the cut: heard on the new subscription
    (got,) = await next_notifications(ws, 1)
    assert got["notification"]["actor_id"] == bob.user_id
    await ws.close()


async def _true(value: bool) -> bool:
    return value


def _own_ports() -> set[int]:
    """Local TCP ports of this process's sockets (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def _hub_of(app: FastAPI) -> Hub:
    async def present() -> bool:
        return getattr(app.state, "notify_hub", None) is not None

    await eventually_ok(present, timeout_s=WAIT_S)
    hub: Hub = app.state.notify_hub
    await eventually_ok(lambda: _has_any(hub), timeout_s=WAIT_S)
    return hub


async def _has_any(hub: Hub) -> bool:
    return bool(hub.connections)


async def _gone(hub: Hub, user_id: str) -> bool:
    return user_id not in hub.connections
