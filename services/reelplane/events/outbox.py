"""Transactional outbox: an event is stored in the same transaction as the change
it reports, so a committed change always gets its event, even if the process
dies right after the commit.

The one way Reelplane publishes reliably: the services' writes and the video
events (`reelplane.videos.announce`) alike. `stage` writes the event inside
the caller's transaction; `flush` (the events in hand) or `flush_staged` (by
event id) publishes it right after the commit and deletes the row;
`relay_once` (run by `run_relay`, and by the upload janitor for video events)
publishes rows a crash left behind, oldest first. An event may then be
published twice; consumers skip an event id they have applied (see
`reelplane.events.runner`), so that changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reelplane.backends import Backends
from reelplane.events.envelope import Event, encode_event, topic_of, utc_now
from reelplane.events.publisher import EventPublisher, publish_encoded
from reelplane.ports.bus import Bus
from reelplane.ports.relational import Database
from reelplane.schema import outbox

log = logging.getLogger(__name__)

#: Rows younger than this are left to the request that wrote them (`flush`).
RELAY_GRACE_S = 10.0
RELAY_INTERVAL_S = 2.0
RELAY_BATCH = 500


async def stage(conn: AsyncConnection, event: Event) -> None:
    """Store `event` in the outbox, inside the caller's transaction."""
    await conn.execute(
        outbox.insert().values(
            event_id=event.id,
            topic=topic_of(event),
            key=event.key,
            event_type=event.type,
            body=encode_event(event),
            created_at=utc_now(),
        )
    )


async def flush(database: Database, bus: Bus, events: list[Event]) -> None:
    """Publish committed events now (in order) and drop them from the outbox.
    A failure leaves them to the relay; the caller's change stands either way."""
    try:
        for event in events:
            await EventPublisher(bus).publish(event)
    except Exception as exc:  # the relay retries; the write already succeeded
        log.warning("event publish failed, left to the outbox relay: %s", exc)
        return
    async with database.transaction() as conn:
        await conn.execute(delete(outbox).where(outbox.c.event_id.in_([e.id for e in events])))


async def flush_staged(database: Database, bus: Bus, event_ids: Sequence[str]) -> int:
    """Publish now those of the staged events `event_ids` still waiting (oldest
    first) and drop them; how many. A bus failure leaves the rest to the relay."""
    async with database.connect() as conn:
        rows = (
            await conn.execute(
                select(outbox)
                .where(outbox.c.event_id.in_(list(event_ids)))
                .order_by(outbox.c.created_at, outbox.c.event_id)
            )
        ).all()
    sent: list[str] = []
    try:
        for row in rows:
            await publish_encoded(bus, row.topic, row.key, row.event_type, row.event_id, row.body)
            sent.append(row.event_id)
    except Exception as exc:  # the relay retries; the write already succeeded
        log.warning("event publish failed, left to the outbox relay: %s", exc)
    if sent:
        async with database.transaction() as conn:
            await conn.execute(delete(outbox).where(outbox.c.event_id.in_(sent)))
    return len(sent)


async def relay_once(
    database: Database,
    bus: Bus,
    *,
    grace_s: float = RELAY_GRACE_S,
    limit: int = RELAY_BATCH,
    topics: Sequence[str] | None = None,
) -> int:
    """Publish outbox rows older than `grace_s` (of `topics` only, when given),
    oldest first; return how many."""
    cutoff = utc_now() - timedelta(seconds=grace_s)
    query = select(outbox).where(outbox.c.created_at <= cutoff)
    if topics is not None:
        query = query.where(outbox.c.topic.in_(list(topics)))
    async with database.connect() as conn:
        rows = (
            await conn.execute(query.order_by(outbox.c.created_at, outbox.c.event_id).limit(limit))
        ).all()
    for row in rows:
        await publish_encoded(bus, row.topic, row.key, row.event_type, row.event_id, row.body)
        async with database.transaction() as conn:
            await conn.execute(delete(outbox).where(outbox.c.event_id == row.event_id))
    return len(rows)


async def run_relay(backends: Backends, stop: asyncio.Event) -> None:
    """Background task: relay left-behind events until `stop` is set."""
    while not stop.is_set():
        try:
            sent = await relay_once(backends.database, backends.bus)
            if sent:
                log.info("outbox relay published %d left-behind events", sent)
        except Exception as exc:  # a broker or database blip: try again next round
            log.warning("outbox relay round failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RELAY_INTERVAL_S)
