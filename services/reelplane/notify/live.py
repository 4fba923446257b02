"""Live delivery across replicas: each replica subscribes once to the live
channel and hands each message to the WebSockets of that user it holds.

A connection's queue is bounded: when a client reads too slowly for it to
drain, the connection is marked dropped (and closed by its handler) instead of
buffering without limit; the client reconnects and catches up from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from pydantic import BaseModel

from reelplane.notify.core import Notification
from reelplane.ports.pubsub import PubSub

log = logging.getLogger(__name__)

LIVE_CHANNEL = "notify:live"


class LiveMessage(BaseModel):
    user_id: str
    notification: Notification


async def announce(pubsub: PubSub, user_ids: list[str], n: Notification) -> None:
    """Tell every replica that these users have a new notification."""
    for user_id in user_ids:
        message = LiveMessage(user_id=user_id, notification=n)
        await pubsub.publish(LIVE_CHANNEL, message.model_dump_json().encode())


@dataclass(eq=False)
class Connection:
    """One WebSocket's inbox on this replica."""

    user_id: str
    queue: asyncio.Queue[Notification]
    dropped: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, n: Notification) -> None:
        if self.dropped.is_set():
            return
        try:
            self.queue.put_nowait(n)
        except asyncio.QueueFull:
            self.dropped.set()  # too slow: its handler closes it


class Hub:
    """This replica's live connections and its one subscription to the channel."""

    def __init__(self, pubsub: PubSub, queue_size: int) -> None:
        self.pubsub = pubsub
        self.queue_size = queue_size
        self.connections: dict[str, set[Connection]] = {}
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def connect(self, user_id: str) -> Connection:
        conn = Connection(user_id, asyncio.Queue(self.queue_size))
        self.connections.setdefault(user_id, set()).add(conn)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="notify-live-hub")
        return conn

    def disconnect(self, conn: Connection) -> None:
        conns = self.connections.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.connections[conn.user_id]

    def dispatch(self, raw: bytes) -> None:
        try:
            message = LiveMessage.model_validate_json(raw)
        except ValueError:
            log.warning("ignoring a malformed live message")
            return
        for conn in list(self.connections.get(message.user_id, ())):
            conn.offer(message.notification)

    async def _listen(self) -> None:
        lost = False
        while True:
            try:
                async with self.pubsub.subscribe(LIVE_CHANNEL) as sub:
                    self.subscribed.set()
                    if lost:
                        log.warning("live subscription restored")
                        lost = False
                    async for raw in sub.messages():
                        self.dispatch(raw)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Messages published meanwhile are lost here; clients catch up from the
                # log. Readiness says so meanwhile (`ready`).
                self.subscribed.clear()
                lost = True
                log.exception("live subscription lost; resubscribing")
                await asyncio.sleep(1.0)

    async def ready(self) -> None:
        """Readiness: raises while a live subscription that was made is lost."""
        if self._task is not None and not self._task.done() and not self.subscribed.is_set():
            raise RuntimeError("the live subscription is lost; resubscribing")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
