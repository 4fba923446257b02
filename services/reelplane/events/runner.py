"""The consumer-group runner: at-least-once delivery with idempotent effects.

For each record, in partition order: decode the event, skip it if this group
already applied its id, call the handler (retrying with backoff), record the id,
and only then commit the offset. A record that cannot be decoded, or whose
handler fails `max_attempts` times, goes to `<topic>.dlq` with the error and the
runner moves on, so one bad event never blocks a partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import ValidationError

from reelplane.events.dedup import Deduplicator
from reelplane.events.envelope import DeadLetter, Event, dead_letter_topic, decode_event
from reelplane.ports.bus import Bus, Consumer, Record

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    first_backoff_s: float = 0.05
    max_backoff_s: float = 2.0

    def backoff_s(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based), doubling each time."""
        # Float power, bounded exponent: the int 2**n overflowed float() past n ~ 1024.
        growth = 2.0 ** min(attempt - 1, 1000)
        return float(min(self.max_backoff_s, self.first_backoff_s * growth))


@dataclass
class RunnerStats:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0


class ConsumerRunner:
    def __init__(
        self,
        bus: Bus,
        *,
        topics: list[str],
        group: str,
        handler: Handler,
        dedup: Deduplicator,
        retry: RetryPolicy | None = None,
        batch_size: int = 100,
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.group = group
        self.handler = handler
        self.dedup = dedup
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.stats = RunnerStats()
        self._consumer: Consumer | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; leaves the group on the way out."""
        consumer = self.bus.consumer(self.topics, self.group)
        self._consumer = consumer
        await consumer.start()
        try:
            while not stop.is_set():
                records = await consumer.poll(max_records=self.batch_size, timeout_s=0.5)
                if records:
                    await self.process(records)
                    await consumer.commit(records)
        finally:
            await consumer.stop()

    async def process(self, records: list[Record]) -> None:
        for record in records:
            await self._process_one(record)

    async def _process_one(self, record: Record) -> None:
        try:
            event = decode_event(record.value)
        except ValidationError as exc:
            await self._dead_letter(record, None, 0, f"undecodable event: {exc.errors()[:3]}")
            return
        if await self.dedup.seen(self.group, event.id):
            self.stats.duplicates += 1
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.handler(event)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt >= self.retry.max_attempts:
                    await self._dead_letter(
                        record, event.id, attempt, f"{type(exc).__name__}: {exc}"
                    )
                    return
                self.stats.retries += 1
                log.warning(
                    "handler failed, retrying",
                    extra={"group": self.group, "event_id": event.id, "attempt": attempt},
                )
                await asyncio.sleep(self.retry.backoff_s(attempt))
        if await self.dedup.mark(self.group, event.id):
            self.stats.applied += 1
        else:
            self.stats.duplicates += 1

    async def _dead_letter(
        self, record: Record, event_id: str | None, attempts: int, error: str
    ) -> None:
        letter = DeadLetter(
            group=self.group,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            event_id=event_id,
            attempts=attempts,
            error=error[:2000],
            original=record.value.decode("utf-8", errors="replace"),
        )
        await self.bus.publish(
            dead_letter_topic(record.topic),
            record.key,
            letter.model_dump_json().encode(),
            headers=(("group", self.group.encode()), ("error", error[:200].encode())),
        )
        self.stats.dead_lettered += 1
        log.error(
            "event sent to dead-letter topic",
            extra={"group": self.group, "topic": record.topic, "event_id": event_id},
        )
