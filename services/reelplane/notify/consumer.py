"""The notify consumer: `engagement`, `graph` and `videos` events become rows in
their audience's logs, then a live message for each recipient.

Idempotent: a row is keyed by its event's id, so a replay rewrites it (the
runner's dedup records skip most replays before they get here anyway). The live
message goes out after the row is durable, so a client that misses it (not
connected, or dropped) finds the row when it catches up.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from reelplane.backends import Backends
from reelplane.events.envelope import Event
from reelplane.events.runner import Handler
from reelplane.notify.core import Audience, Notice, notice_of, recipients
from reelplane.notify.live import announce
from reelplane.notify.log import TABLES, NotificationLog
from reelplane.notify.settings import NotifySettings
from reelplane.schema import follows, videos
from reelplane.settings import load_section

NOTIFY_GROUP = "notify"
NOTIFY_TOPICS = ["engagement", "graph", "videos"]


async def audience_of(backends: Backends, notice: Notice, fanout_max: int) -> list[str]:
    """The user ids a notice is addressed to (before the actor is left out)."""
    if notice.audience is Audience.USER:
        return [notice.subject]
    async with backends.database.connect() as conn:
        if notice.audience is Audience.VIDEO_OWNER:
            owner = await conn.scalar(
                select(videos.c.owner_id).where(videos.c.id == notice.subject)
            )
            return [] if owner is None else [str(owner)]
        rows = await conn.execute(
            select(follows.c.follower_id)
            .where(follows.c.followee_id == notice.subject)
            .limit(fanout_max)
        )
        return [str(r.follower_id) for r in rows]


def notify_handler(backends: Backends, settings: NotifySettings) -> Handler:
    log = NotificationLog(backends.widerow, settings)

    async def handle(event: Event) -> None:
        notice = notice_of(event)
        if notice is None:
            return
        audience = await audience_of(backends, notice, settings.notify_fanout_max)
        users = recipients(notice.notification, audience)
        if not users:
            return
        await log.append(users, notice.notification)
        await announce(backends.cache, users, notice.notification)

    return handle


async def run_notifier(backends: Backends, stop: asyncio.Event) -> None:
    """The notify consumer-group member, until `stop` is set."""
    from reelplane.events.consumer import run_consumer

    settings = load_section(NotifySettings)
    await backends.widerow.ensure_tables(TABLES)
    await run_consumer(
        backends,
        stop,
        topics=NOTIFY_TOPICS,
        group=NOTIFY_GROUP,
        handler=notify_handler(backends, settings),
    )
