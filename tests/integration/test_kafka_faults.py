"""Kafka fault test: the broker stops and restarts while events are produced.

What the producer acknowledged must survive and be applied exactly once; what
failed while the broker was away may or may not be there (never twice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reelplane.adapters.bus_kafka import KafkaBus
from reelplane.events.dedup import RelationalDeduplicator
from reelplane.events.envelope import Event, VideoViewed, VideoViewedPayload, encode_event
from reelplane.events.runner import ConsumerRunner, RetryPolicy
from reelplane.infra.harness import Harness, default_root
from reelplane.infra.servers.kafka import Kafka
from reelplane.ports.bus import Bus, Delivery
from reelplane.ports.relational import SqliteDatabase
from tests.helpers import eventually

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

TOTAL = 400
STOP_AT = 150  # events produced before the broker goes away
RESERVED = 100  # events kept for after the restart
KEYS = [f"user-{i}" for i in range(8)]


class FaultKafka(Kafka):
    """A broker of this test's own (other ports, other data), so stopping it never
    disturbs other tests or a broker some other checkout started; the fetched
    jars are shared with the main broker."""

    name = "kafka-faults"
    port = 29092
    controller_port = 29093

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.cache_dir = root / "cache" / "kafka"


@pytest.fixture
def fault_harness() -> Iterator[Harness]:
    root = default_root()
    harness = Harness([FaultKafka(root)], root)
    harness.up()
    yield harness
    harness.down()


class TopicPublisher:
    """EventPublisher's publish, on a fresh test topic instead of the event's own."""

    def __init__(self, bus: Bus, topic: str) -> None:
        self.bus, self.topic = bus, topic

    async def publish(self, event: Event) -> Delivery:
        return await self.bus.publish(
            self.topic,
            event.key,
            encode_event(event),
            headers=(("type", event.type.encode()), ("id", event.id.encode())),
        )


async def test_acknowledged_events_survive_a_broker_restart_exactly_once(
    fault_harness: Harness, ns: str, tmp_path: Path
) -> None:
    harness = fault_harness
    started = time.monotonic()
    url = harness.servers["kafka-faults"].url
    topic, group = f"{ns}-views", f"{ns}-counter"
    events = [
        VideoViewed(key=k, payload=VideoViewedPayload(user_id=k, video_id=f"video-{i}"))
        for i in range(TOTAL)
        for k in [KEYS[i % len(KEYS)]]
    ]
    bus = KafkaBus(url, default_partitions=4, connect_timeout_s=5, request_timeout_s=10)
    db = SqliteDatabase(f"sqlite+aiosqlite:///{tmp_path / 'dedup.sqlite'}")
    await db.migrate()
    sent: list[str] = []  # ids whose publish returned a Delivery
    failed_while_down = 0
    try:
        await bus.ensure_topics([topic], 4)
        publisher = TopicPublisher(bus, topic)
        pending = list(reversed(events))  # pop() gives them in order

        async def produce(count: int, timeout_s: float) -> None:
            for _ in range(count):
                ev = pending.pop()
                assert isinstance(
                    await asyncio.wait_for(publisher.publish(ev), timeout_s), Delivery
                )
                sent.append(ev.id)

        async def produce_until(done: Callable[[], bool], timeout_s: float) -> int:
            """Produce one event at a time until `done()`; return how many failed."""
            failures = 0
            while not done() and len(pending) > RESERVED:
                ev = pending.pop()
                try:
                    await asyncio.wait_for(publisher.publish(ev), timeout_s)
                except Exception:  # broker going/gone: not acknowledged, not counted as sent
                    failures += 1
                else:
                    sent.append(ev.id)
                await asyncio.sleep(0.02)
            return failures

        # 1. Healthy broker.
        await produce(STOP_AT, timeout_s=15)

        # 2. Graceful stop while producing, then a few seconds of producing into the void.
        stopping = asyncio.create_task(asyncio.to_thread(harness.stop, "kafka-faults"))
        failed_while_down += await produce_until(stopping.done, timeout_s=1.0)
        assert await stopping is True, "kafka was not ours to stop"
        down_until = time.monotonic() + 3
        failed_while_down += await produce_until(lambda: time.monotonic() > down_until, 0.5)
        assert failed_while_down > 0, "publishing never failed while the broker was down"

        # 3. Restart and produce the rest with the same bus (its producer must recover).
        await asyncio.to_thread(harness.start, "kafka-faults")
        await produce(len(pending), timeout_s=30)
        produced_at = time.monotonic()

        # 4. Consume everything; the handler's effect is one count per event id.
        effects: Counter[str] = Counter()

        async def handler(event: Event) -> None:
            effects[event.id] += 1

        runner = ConsumerRunner(
            bus,
            topics=[topic],
            group=group,
            handler=handler,
            dedup=RelationalDeduplicator(db),
            retry=RetryPolicy(max_attempts=3, first_backoff_s=0.01),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:

            async def missing() -> set[str]:
                if task.done():
                    task.result()
                    raise AssertionError("runner stopped early")
                return set(sent) - set(effects)

            await eventually(missing, until=lambda m: not m, timeout_s=45, interval_s=0.2)
            await asyncio.sleep(1.0)  # let any straggling duplicate arrive
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

        log.warning(
            "kafka fault test: %d sent, %d failed while down, %d applied "
            "(%d unacknowledged but landed), %d duplicate records skipped; "
            "produce %.1f s, consume %.1f s",
            len(sent),
            failed_while_down,
            len(effects),
            len(set(effects) - set(sent)),
            runner.stats.duplicates,
            produced_at - started,
            time.monotonic() - produced_at,
        )
        assert set(sent) <= set(effects), "acknowledged events were lost"
        assert set(effects) <= {ev.id for ev in events}
        twice = {i: n for i, n in effects.items() if n != 1}
        assert not twice, f"applied more than once: {twice}"
        assert runner.stats.dead_lettered == 0
        assert len(sent) >= TOTAL - failed_while_down
    finally:
        await bus.close()
        await db.close()
        await asyncio.to_thread(harness.up)  # so the fixture's down finds it healthy
