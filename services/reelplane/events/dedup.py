"""Idempotency records: which event ids a consumer group has already applied."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select

from reelplane.events.envelope import utc_now
from reelplane.ports.relational import Database
from reelplane.schema import processed_events


class Deduplicator(Protocol):
    async def seen(self, consumer: str, event_id: str) -> bool: ...

    async def mark(self, consumer: str, event_id: str) -> bool:
        """Record the event as applied; False when it already was."""


class RelationalDeduplicator:
    """Records in the relational store (the strongly consistent tier)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def seen(self, consumer: str, event_id: str) -> bool:
        async with self.database.connect() as conn:
            row = await conn.execute(
                select(processed_events.c.event_id).where(
                    processed_events.c.consumer == consumer,
                    processed_events.c.event_id == event_id,
                )
            )
            return row.first() is not None

    async def mark(self, consumer: str, event_id: str) -> bool:
        async with self.database.transaction() as conn:
            return await self.database.insert_if_absent(
                conn,
                processed_events,
                {"consumer": consumer, "event_id": event_id, "processed_at": utc_now()},
            )
