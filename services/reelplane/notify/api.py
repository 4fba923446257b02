"""Notify HTTP API: the caller's notifications (grouped, cursor-paged), the
unread count, marking read, and live push over a WebSocket.

The log is written by the consumer (`reelplane.notify.consumer`), this
service's background task. Live push: `/v1/notifications/live`, see `live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Response, WebSocket
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect, WebSocketState

from reelplane.auth import CurrentUser, SessionStore
from reelplane.backends import Backends
from reelplane.errors import NotFound
from reelplane.http.cursors import decode_cursor, encode_cursor
from reelplane.http.deps import BackendsDep, section
from reelplane.http.services import Service
from reelplane.http.tables import tables_ready
from reelplane.notify.consumer import run_notifier
from reelplane.notify.core import Group, Kind, Notification, group_rows, summary
from reelplane.notify.live import Connection, Hub
from reelplane.notify.log import TABLES, NotificationLog
from reelplane.notify.settings import NotifySettings
from reelplane.ports.widerow import Clustering
from reelplane.schema import users
from reelplane.settings import Settings

router = APIRouter(prefix="/v1", tags=["notify"], dependencies=[Depends(tables_ready(TABLES))])
live_router = APIRouter(prefix="/v1", tags=["notify"])

NotifySettingsDep = Annotated[NotifySettings, Depends(section(NotifySettings))]

#: Actors named in a group's line ("ada, bob and 11 others").
NAMED_ACTORS = 3
#: Close codes of the live socket (4000-4999: the application's own).
CLOSE_UNAUTHORIZED = 4401
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_TOO_SLOW = 4429
CLOSE_BAD_MESSAGE = 4400
#: The subprotocol a client may offer (with `bearer.<token>`) to authenticate in the handshake.
SUBPROTOCOL = "reelplane.notify.v1"
BEARER_PREFIX = "bearer."


class LogCursor(BaseModel):
    """A position in a user's log: (event time in ms, event id)."""

    t: int
    i: str


def cursor_of(n: Notification) -> str:
    return encode_cursor(LogCursor(t=n.at_ms, i=n.id))


def clustering_of(cursor: str) -> Clustering:
    c = decode_cursor(LogCursor, cursor)
    return Clustering(c.t, c.i)


class Actor(BaseModel):
    user_id: str
    handle: str | None = Field(description="null when the account is gone")


class NotificationGroup(BaseModel):
    id: str = Field(description="The newest notification's id")
    kind: Kind
    summary: str = Field(examples=["ada and 12 others liked your video"])
    actors: list[Actor] = Field(description=f"Up to {NAMED_ACTORS} most recent actors")
    actor_count: int = Field(description="Distinct actors in the group")
    count: int = Field(description="Notifications in the group")
    video_id: str | None
    text: str = Field(description="The newest comment's excerpt (comments only)")
    at: datetime = Field(description="When the newest one happened")
    unread: bool
    ids: list[str] = Field(description="Every notification in the group, newest first")


class NotificationPage(BaseModel):
    items: list[NotificationGroup]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )
    unread_count: int


class UnreadCount(BaseModel):
    unread: int = Field(description="Unread notifications (at most the log's cap)")


def _log(request_backends: Backends, settings: NotifySettings) -> NotificationLog:
    return NotificationLog(request_backends.widerow, settings)


async def _handles(backends: Backends, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    async with backends.database.connect() as conn:
        rows = await conn.execute(select(users.c.id, users.c.handle).where(users.c.id.in_(ids)))
        return {str(r.id): str(r.handle) for r in rows}


def _view(group: Group, handles: dict[str, str]) -> NotificationGroup:
    actors = group.actors()
    named = [Actor(user_id=a, handle=handles.get(a)) for a in actors[:NAMED_ACTORS]]
    newest = group.newest
    return NotificationGroup(
        id=newest.id,
        kind=newest.kind,
        summary=summary(newest.kind, [a.handle or "someone" for a in named], len(actors)),
        actors=named,
        actor_count=len(actors),
        count=len(group.members),
        video_id=newest.video_id,
        text=newest.text,
        at=datetime.fromtimestamp(newest.at_ms / 1000, UTC),
        unread=group.unread,
        ids=[m.id for m in group.members],
    )


@router.get(
    "/notifications",
    response_model=NotificationPage,
    summary="The caller's notifications, grouped, newest first",
    responses={401: {"description": "No valid token"}, 422: {"description": "Bad cursor"}},
)
async def list_notifications(
    user: CurrentUser,
    backends: BackendsDep,
    settings: NotifySettingsDep,
    limit: Annotated[
        int, Query(ge=1, le=50, description="Groups per page (1-50). Default 20")
    ] = 20,
    cursor: Annotated[
        str | None, Query(max_length=2048, description="next_cursor of the previous page")
    ] = None,
) -> NotificationPage:
    """Likes and comments group per video and day, follows per day ("ada and
    12 others liked your video"); a page holds every notification newer than
    its cursor up to the group that would exceed `limit`."""
    log = _log(backends, settings)
    before = clustering_of(cursor) if cursor is not None else None
    fetch = min(settings.notify_log_cap, limit * 10)
    rows = await log.page(user.user_id, before, fetch)
    unread = await log.unread_ids(user.user_id)
    page = group_rows(rows, limit, unread)
    handles = await _handles(backends, {a for g in page.groups for a in g.actors()[:NAMED_ACTORS]})
    more = page.consumed < len(rows) or len(rows) == fetch
    last = rows[page.consumed - 1] if page.consumed else None
    return NotificationPage(
        items=[_view(g, handles) for g in page.groups],
        next_cursor=cursor_of(last) if more and last is not None else None,
        unread_count=len(unread),
    )


@router.get(
    "/notifications/unread-count", response_model=UnreadCount, summary="Unread notifications"
)
async def unread_count(
    user: CurrentUser, backends: BackendsDep, settings: NotifySettingsDep
) -> UnreadCount:
    return UnreadCount(unread=len(await _log(backends, settings).unread_ids(user.user_id)))


@router.post(
    "/notifications/read-all",
    status_code=204,
    summary="Mark every notification read",
    response_class=Response,
)
async def mark_all_read(
    user: CurrentUser, backends: BackendsDep, settings: NotifySettingsDep
) -> Response:
    await _log(backends, settings).mark_all_read(user.user_id)
    return Response(status_code=204)


@router.post(
    "/notifications/{notification_id}/read",
    status_code=204,
    summary="Mark one notification read",
    response_class=Response,
    responses={404: {"description": "No such notification in the caller's log (problem+json)"}},
)
async def mark_read(
    user: CurrentUser,
    backends: BackendsDep,
    settings: NotifySettingsDep,
    notification_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> Response:
    log = _log(backends, settings)
    found = await log.find(user.user_id, notification_id)
    if found is None:
        raise NotFound("no such notification in your log")
    await log.mark_read(user.user_id, found)
    return Response(status_code=204)


# -- live ---------------------------------------------------------------------------
def _hub(app: Any) -> Hub:
    hub: Hub | None = getattr(app.state, "notify_hub", None)
    if hub is None:
        settings: NotifySettings = app.state.notify_settings
        backends: Backends = app.state.backends
        hub = app.state.notify_hub = Hub(backends.cache, settings.notify_live_queue)
    return hub


def _offered_token(ws: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to accept) from `Sec-WebSocket-Protocol`."""
    offered: list[str] = list(ws.scope.get("subprotocols") or [])
    token = next((p[len(BEARER_PREFIX) :] for p in offered if p.startswith(BEARER_PREFIX)), None)
    return token, SUBPROTOCOL if SUBPROTOCOL in offered else None


def _frame(n: Notification) -> str:
    return json.dumps(
        {"type": "notification", "notification": n.model_dump(mode="json"), "cursor": cursor_of(n)}
    )


@live_router.websocket("/notifications/live")
async def live(ws: WebSocket) -> None:
    """Live notifications. Authenticate without the token in the URL: offer the
    subprotocols `reelplane.notify.v1` and `bearer.<token>`, or send
    `{"type": "hello", "token": "<token>"}` first. The first message is always a
    hello, optionally with `"cursor"` (the last one received): the notifications
    after it come first, then live ones, each `{"type": "notification",
    "notification": {...}, "cursor": "..."}`; `{"type": "heartbeat"}` every
    `REELPLANE_NOTIFY_HEARTBEAT_S`. Close codes: 4401 bad token, 4408 no hello
    in time, 4400 bad message, 4429 too slow (reconnect with your cursor)."""
    app = ws.app
    settings: NotifySettings = app.state.notify_settings
    backends: Backends = app.state.backends
    token, subprotocol = _offered_token(ws)
    await ws.accept(subprotocol=subprotocol)
    try:
        raw = await asyncio.wait_for(ws.receive_text(), settings.notify_auth_timeout_s)
        hello = json.loads(raw)
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            raise ValueError("expected a hello")
        token = hello.get("token") or token
        after = clustering_of(hello["cursor"]) if hello.get("cursor") else None
    except TimeoutError:
        await ws.close(CLOSE_AUTH_TIMEOUT, "no hello in time")
        return
    except WebSocketDisconnect:
        return
    except Exception:
        await ws.close(CLOSE_BAD_MESSAGE, "the first message must be a hello")
        return
    principal = await SessionStore(backends).resolve(token) if isinstance(token, str) else None
    if principal is None:
        await ws.close(CLOSE_UNAUTHORIZED, "the token is invalid, expired or revoked")
        return
    await backends.widerow.ensure_tables(TABLES)
    hub = _hub(app)
    conn = hub.connect(principal.user_id)
    try:
        await _serve(ws, conn, hub, NotificationLog(backends.widerow, settings), after, settings)
    finally:
        hub.disconnect(conn)


async def _serve(
    ws: WebSocket,
    conn: Connection,
    hub: Hub,
    log: NotificationLog,
    after: Clustering | None,
    settings: NotifySettings,
) -> None:
    # Subscribed before reading the log: nothing falls between catch-up and live.
    await asyncio.wait_for(hub.subscribed.wait(), 10)
    await ws.send_text(json.dumps({"type": "ready", "user_id": conn.user_id}))
    sent: set[str] = set()
    if after is not None:
        for n in await log.since(conn.user_id, after, log.cap):
            await ws.send_text(_frame(n))
            sent.add(n.id)

    async def push() -> None:
        beat = settings.notify_heartbeat_s
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
        # that races with the queue's answer, and this task would never end.
        while not conn.dropped.is_set():
            try:
                async with asyncio.timeout(beat):
                    n = await conn.queue.get()
            except TimeoutError:
                await ws.send_text(
                    json.dumps({"type": "heartbeat", "at_ms": int(time.time() * 1000)})
                )
                continue
            if n.id not in sent:
                await ws.send_text(_frame(n))

    async def drain() -> None:  # reads (and ignores) what the client sends, until it leaves
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_text()

    tasks = [
        asyncio.create_task(push()),
        asyncio.create_task(drain()),
        asyncio.create_task(conn.dropped.wait()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if conn.dropped.is_set() and ws.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await ws.close(CLOSE_TOO_SLOW, "too slow: reconnect with your cursor")


def configure(app: FastAPI, settings: Settings) -> None:
    """The app's notify settings and live hub (closed at shutdown)."""
    from reelplane.settings import load_section

    app.state.notify_settings = load_section(NotifySettings)

    async def close_hub() -> None:
        hub: Hub | None = getattr(app.state, "notify_hub", None)
        if hub is not None:
            await hub.close()

    app.state.closers.append(close_hub)

    async def live_ready() -> None:
        hub: Hub | None = getattr(app.state, "notify_hub", None)
        if hub is not None:
            await hub.ready()

    probes = getattr(app.state, "readiness_probes", None)
    if probes is None:
        probes = app.state.readiness_probes = {}
    probes["notify_live"] = live_ready


SERVICE = Service(
    "notify", routers=[router, live_router], background=[run_notifier], configure=[configure]
)
