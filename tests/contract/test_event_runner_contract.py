"""The consumer runner over both bus adapters: apply, dedup, retry, dead-letter."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from reelplane.events.dedup import RelationalDeduplicator
from reelplane.events.envelope import (
    DeadLetter,
    Event,
    VideoViewed,
    VideoViewedPayload,
    dead_letter_topic,
    decode_event,
    encode_event,
)
from reelplane.events.runner import ConsumerRunner, RetryPolicy
from reelplane.ports.bus import Bus, Delivery, Record
from reelplane.ports.relational import SqliteDatabase
from tests.helpers import eventually

PARTITIONS = 4
RETRY = RetryPolicy(max_attempts=3, first_backoff_s=0.01)


@pytest.fixture
async def dedup(tmp_path: Path) -> AsyncIterator[RelationalDeduplicator]:
    db = SqliteDatabase(f"sqlite+aiosqlite:///{tmp_path / 'dedup.sqlite'}")
    await db.migrate()
    yield RelationalDeduplicator(db)
    await db.close()


def viewed(user: str, video: str) -> VideoViewed:
    return VideoViewed(key=user, payload=VideoViewedPayload(user_id=user, video_id=video))


async def publish_event(bus: Bus, topic: str, event: Event) -> Delivery:
    """What EventPublisher does, on a test topic instead of the event's own topic."""
    return await bus.publish(
        topic,
        event.key,
        encode_event(event),
        headers=(("type", event.type.encode()), ("id", event.id.encode())),
    )


@asynccontextmanager
async def running(runner: ConsumerRunner) -> AsyncIterator[asyncio.Task[None]]:
    """Run the runner as a task; stop it (and surface its failure) on the way out."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def wait_until(
    task: asyncio.Task[None], condition: Callable[[], bool], timeout_s: float = 30
) -> None:
    """Wait for `condition()`; fail at once if the runner died."""

    async def probe() -> bool:
        if task.done():
            task.result()  # raises the runner's error
            raise AssertionError("runner stopped early")
        return bool(condition())

    await eventually(probe, timeout_s=timeout_s, interval_s=0.05)


async def dead_letters(
    bus: Bus, topic: str, group: str, count: int
) -> list[tuple[Record, DeadLetter]]:
    """Read exactly `count` records from `<topic>.dlq` (and check there are no more)."""
    consumer = bus.consumer([dead_letter_topic(topic)], group)
    await consumer.start()
    records: list[Record] = []
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while len(records) < count:
            assert asyncio.get_running_loop().time() < deadline, f"dlq has {records}"
            records += await consumer.poll(timeout_s=0.5)
        records += await consumer.poll(timeout_s=1.0)
    finally:
        await consumer.stop()
    assert len(records) == count, records
    return [(r, DeadLetter.model_validate_json(r.value)) for r in records]


async def test_handler_is_applied_to_published_events_in_key_order(
    bus: Bus, ns: str, dedup: RelationalDeduplicator
) -> None:
    topic, group = f"{ns}-views", f"{ns}-counter"
    await bus.ensure_topics([topic], PARTITIONS)
    handled: list[Event] = []

    async def handler(event: Event) -> None:
        handled.append(event)

    runner = ConsumerRunner(
        bus, topics=[topic], group=group, handler=handler, dedup=dedup, retry=RETRY
    )
    events = [viewed(f"user-{i % 5}", f"video-{i}") for i in range(30)]
    async with running(runner) as task:
        for ev in events:
            await publish_event(bus, topic, ev)
        await wait_until(task, lambda: len(handled) >= len(events))
        await asyncio.sleep(0.5)  # nothing more should come

    assert sorted(e.id for e in handled) == sorted(e.id for e in events)
    assert all(isinstance(e, VideoViewed) for e in handled)
    assert handled[0] == next(e for e in events if e.id == handled[0].id)
    per_key: dict[str, list[str]] = defaultdict(list)
    for e in handled:
        per_key[e.key].append(e.id)
    for key, ids in per_key.items():
        assert ids == [e.id for e in events if e.key == key], key
    assert runner.stats.applied == len(events)
    assert runner.stats.duplicates == runner.stats.dead_lettered == runner.stats.retries == 0
    for ev in events:
        assert await dedup.seen(group, ev.id)
    assert not await dedup.seen(f"{ns}-other-group", events[0].id)


async def test_the_same_event_published_twice_is_applied_once(
    bus: Bus, ns: str, dedup: RelationalDeduplicator
) -> None:
    topic, group = f"{ns}-views", f"{ns}-counter"
    await bus.ensure_topics([topic], PARTITIONS)
    applied: Counter[str] = Counter()

    async def handler(event: Event) -> None:
        applied[event.id] += 1

    runner = ConsumerRunner(
        bus, topics=[topic], group=group, handler=handler, dedup=dedup, retry=RETRY
    )
    twice = viewed("user-1", "video-1")
    after = viewed("user-1", "video-2")  # same key: handled after both copies
    async with running(runner) as task:
        await publish_event(bus, topic, twice)
        await publish_event(bus, topic, twice)
        await publish_event(bus, topic, after)
        await wait_until(task, lambda: applied[after.id] == 1)
        # A copy published much later (e.g. a producer retry) is a no-op as well.
        await publish_event(bus, topic, twice)
        await wait_until(task, lambda: runner.stats.duplicates == 2)

    assert applied == Counter({twice.id: 1, after.id: 1})
    assert runner.stats.applied == 2


async def test_failing_event_goes_to_the_dlq_and_the_partition_moves_on(
    bus: Bus, ns: str, dedup: RelationalDeduplicator
) -> None:
    topic, group = f"{ns}-views", f"{ns}-counter"
    await bus.ensure_topics([topic], PARTITIONS)
    poison = viewed("user-1", "video-poison")
    before, later = viewed("user-1", "video-a"), [viewed("user-1", f"video-{i}") for i in range(3)]
    attempts: Counter[str] = Counter()
    applied: list[str] = []

    async def handler(event: Event) -> None:
        attempts[event.id] += 1
        if event.id == poison.id:
            raise RuntimeError(f"cannot apply {poison.payload.video_id}")
        applied.append(event.id)

    runner = ConsumerRunner(
        bus, topics=[topic], group=group, handler=handler, dedup=dedup, retry=RETRY
    )
    async with running(runner) as task:
        delivered = [await publish_event(bus, topic, ev) for ev in [before, poison, *later]]
        assert len({d.partition for d in delivered}) == 1  # one key, one partition
        await wait_until(task, lambda: len(applied) == 1 + len(later))

    assert applied == [before.id, *(e.id for e in later)]  # later events of the partition ran
    assert attempts[poison.id] == RETRY.max_attempts
    assert runner.stats.dead_lettered == 1
    assert runner.stats.retries == RETRY.max_attempts - 1
    assert not await dedup.seen(group, poison.id)

    [(record, letter)] = await dead_letters(bus, topic, f"{ns}-dlq-reader", 1)
    assert record.topic == dead_letter_topic(topic)
    assert record.key == poison.key
    assert letter.group == group
    assert letter.topic == topic
    assert (letter.partition, letter.offset) == (delivered[1].partition, delivered[1].offset)
    assert letter.event_id == poison.id
    assert letter.attempts == RETRY.max_attempts
    assert "RuntimeError" in letter.error and "cannot apply video-poison" in letter.error
    assert decode_event(letter.original.encode()) == poison
    assert dict(record.headers)["group"] == group.encode()


async def test_undecodable_record_goes_to_the_dlq_without_retries(
    bus: Bus, ns: str, dedup: RelationalDeduplicator
) -> None:
    topic, group = f"{ns}-views", f"{ns}-counter"
    await bus.ensure_topics([topic], PARTITIONS)
    calls: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.id)

    runner = ConsumerRunner(
        bus, topics=[topic], group=group, handler=handler, dedup=dedup, retry=RETRY
    )
    good = viewed("user-7", "video-1")
    async with running(runner) as task:
        garbage = await bus.publish(topic, good.key, b"not json")
        good_delivery = await publish_event(bus, topic, good)
        assert good_delivery.partition == garbage.partition
        assert good_delivery.offset > garbage.offset
        await wait_until(task, lambda: calls == [good.id])
        assert not task.done()  # still running after the bad record

    assert runner.stats.retries == 0
    assert runner.stats.dead_lettered == 1
    assert runner.stats.applied == 1
    [(record, letter)] = await dead_letters(bus, topic, f"{ns}-dlq-reader", 1)
    assert record.key == good.key
    assert letter.event_id is None
    assert letter.attempts == 0
    assert "undecodable" in letter.error
    assert letter.original == "not json"
    assert (letter.partition, letter.offset) == (garbage.partition, garbage.offset)
