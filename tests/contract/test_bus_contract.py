"""The bus contract (Kafka semantics), run on the in-process bus and on real Kafka."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from reelplane.ports.bus import Bus, Consumer, Delivery, Record
from tests.helpers import eventually

PARTITIONS = 4
KEYS = [f"user-{i}" for i in range(8)]


async def poll_until(consumer: Consumer, count: int, *, timeout_s: float = 30.0) -> list[Record]:
    """Poll until at least `count` records came (fails on timeout)."""
    out: list[Record] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(out) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"got {len(out)} of {count} records within {timeout_s} s")
        out.extend(await consumer.poll(max_records=50, timeout_s=0.5))
    return out


async def drain(consumer: Consumer, *, quiet_s: float = 1.0) -> list[Record]:
    """Everything a consumer still gets within `quiet_s`."""
    out: list[Record] = []
    deadline = asyncio.get_running_loop().time() + quiet_s
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        out.extend(await consumer.poll(max_records=50, timeout_s=min(0.3, left)))
    return out


async def publish_many(bus: Bus, topic: str, count: int, *, tag: str = "") -> list[Record]:
    """Publish `count` records round-robin over KEYS; return them as a consumer should
    see them (from the deliveries)."""
    sent: list[Record] = []
    for i in range(count):
        key = KEYS[i % len(KEYS)]
        value = f"{tag}{key}:{i}".encode()
        d = await bus.publish(topic, key, value)
        assert isinstance(d, Delivery)
        sent.append(Record(d.topic, d.partition, d.offset, key, value))
    return sent


def ident(records: list[Record]) -> list[tuple[str, int, int, str, bytes]]:
    return sorted((r.topic, r.partition, r.offset, r.key, r.value) for r in records)


async def wait_for_assignment(
    consumers: list[Consumer], topic: str, collected: list[Record] | None = None
) -> None:
    """Wait until the group's members own disjoint, non-empty sets of the topic's
    partitions that together cover all of them (a Kafka rebalance takes a moment)."""
    want = {(topic, p) for p in range(PARTITIONS)}

    async def probe() -> list[set[tuple[str, int]]]:
        for c in consumers:  # polling keeps the members' group membership moving
            got = await c.poll(max_records=50, timeout_s=0.1)
            if collected is not None:
                collected.extend(got)
        return [c.assignment() for c in consumers]

    def settled(owned: list[set[tuple[str, int]]]) -> bool:
        union: set[tuple[str, int]] = set().union(*owned)
        return (
            all(owned) and union == want and sum(len(o) for o in owned) == len(union)  # disjoint
        )

    await eventually(probe, until=settled, timeout_s=45)


async def test_publish_keeps_per_key_order_in_one_partition(bus: Bus, ns: str) -> None:
    topic = f"{ns}-order"
    await bus.ensure_topics([topic], PARTITIONS)
    assert await bus.partition_count(topic) == PARTITIONS

    deliveries: dict[str, list[Delivery]] = defaultdict(list)
    for i in range(10):
        for key in KEYS:  # interleaved keys
            d = await bus.publish(topic, key, f"{key}:{i}".encode(), headers=(("n", b"%d" % i),))
            assert isinstance(d, Delivery)
            assert d.topic == topic
            assert 0 <= d.partition < PARTITIONS
            deliveries[key].append(d)
    for key, ds in deliveries.items():
        assert len({d.partition for d in ds}) == 1, f"{key} spread over partitions"
        offsets = [d.offset for d in ds]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert len({ds[0].partition for ds in deliveries.values()}) > 1  # keys do spread

    consumer = bus.consumer([topic], f"{ns}-g")
    await consumer.start()
    try:
        records = await poll_until(consumer, 10 * len(KEYS))
        records += await drain(consumer, quiet_s=0.5)
    finally:
        await consumer.stop()

    assert len(records) == 10 * len(KEYS)
    by_key: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_key[r.key].append(r)
    for key in KEYS:
        got = by_key[key]
        assert [r.value for r in got] == [f"{key}:{i}".encode() for i in range(10)]
        assert [(r.partition, r.offset) for r in got] == [
            (d.partition, d.offset) for d in deliveries[key]
        ]
        assert [r.headers for r in got] == [(("n", b"%d" % i),) for i in range(10)]
        assert all(r.topic == topic for r in got)


async def test_one_group_shares_partitions_and_consumes_each_record_once(bus: Bus, ns: str) -> None:
    topic = f"{ns}-shared"
    await bus.ensure_topics([topic], PARTITIONS)
    group = f"{ns}-g"
    a, b = bus.consumer([topic], group), bus.consumer([topic], group)
    await a.start()
    await b.start()
    try:
        early: list[Record] = []
        await wait_for_assignment([a, b], topic, early)
        assert early == []  # nothing was published yet

        sent = await publish_many(bus, topic, 80)
        got: dict[int, list[Record]] = {0: [], 1: []}
        deadline = asyncio.get_running_loop().time() + 30
        while len(got[0]) + len(got[1]) < len(sent):
            assert asyncio.get_running_loop().time() < deadline, "records missing"
            ra, rb = await asyncio.gather(
                a.poll(max_records=50, timeout_s=0.3), b.poll(max_records=50, timeout_s=0.3)
            )
            got[0] += ra
            got[1] += rb
        got[0] += await drain(a, quiet_s=0.5)
        got[1] += await drain(b, quiet_s=0.5)
        owned_a, owned_b = a.assignment(), b.assignment()
    finally:
        await a.stop()
        await b.stop()

    assert owned_a and owned_b and not owned_a & owned_b
    assert owned_a | owned_b == {(topic, p) for p in range(PARTITIONS)}
    assert all((r.topic, r.partition) in owned_a for r in got[0])
    assert all((r.topic, r.partition) in owned_b for r in got[1])
    assert got[0] and got[1]  # both members did work
    assert ident(got[0] + got[1]) == ident(sent)  # every record exactly once


async def test_every_group_gets_every_record(bus: Bus, ns: str) -> None:
    topic = f"{ns}-fanout"
    await bus.ensure_topics([topic], PARTITIONS)
    sent = await publish_many(bus, topic, 30)
    for group in (f"{ns}-search", f"{ns}-feed"):
        consumer = bus.consumer([topic], group)
        await consumer.start()
        try:
            got = await poll_until(consumer, len(sent))
            got += await drain(consumer, quiet_s=0.5)
        finally:
            await consumer.stop()
        assert ident(got) == ident(sent), group


async def test_uncommitted_records_are_redelivered_to_the_next_owner(bus: Bus, ns: str) -> None:
    topic = f"{ns}-redeliver"
    await bus.ensure_topics([topic], PARTITIONS)
    group = f"{ns}-g"
    sent = await publish_many(bus, topic, 24)

    a = bus.consumer([topic], group)
    await a.start()
    try:
        seen_by_a = await poll_until(a, len(sent))
    finally:
        await a.stop()  # dies before committing anything
    assert ident(seen_by_a) == ident(sent)

    b = bus.consumer([topic], group)
    await b.start()
    try:
        seen_by_b = await poll_until(b, len(sent))
        seen_by_b += await drain(b, quiet_s=0.5)
        await b.commit(seen_by_b)
    finally:
        await b.stop()
    assert ident(seen_by_b) == ident(seen_by_a)

    c = bus.consumer([topic], group)
    await c.start()
    try:
        old: list[Record] = []
        await wait_for_assignment([c], topic, old)
        old += await drain(c, quiet_s=1.5)
    finally:
        await c.stop()
    assert old == []


async def test_new_member_resumes_after_the_committed_offset(bus: Bus, ns: str) -> None:
    topic = f"{ns}-resume"
    await bus.ensure_topics([topic], PARTITIONS)
    group = f"{ns}-g"
    sent = await publish_many(bus, topic, 24, tag="old-")

    a = bus.consumer([topic], group)
    await a.start()
    try:
        got = await poll_until(a, len(sent))
        by_partition: dict[int, list[Record]] = defaultdict(list)
        for r in got:
            by_partition[r.partition].append(r)
        # Commit one record per partition in the middle: it and all before it are done.
        marks = {p: rs[(len(rs) - 1) // 2] for p, rs in by_partition.items()}
        await a.commit(list(marks.values()))
    finally:
        await a.stop()

    uncommitted = [r for r in sent if r.offset > marks[r.partition].offset]
    assert uncommitted and len(uncommitted) < len(sent)
    newer = await publish_many(bus, topic, 16, tag="new-")

    b = bus.consumer([topic], group)
    await b.start()
    try:
        resumed = await poll_until(b, len(uncommitted) + len(newer))
        resumed += await drain(b, quiet_s=1.0)
    finally:
        await b.stop()
    assert ident(resumed) == ident(uncommitted + newer)
    first_offsets = {}
    for r in sorted(resumed, key=lambda r: r.offset, reverse=True):
        first_offsets[r.partition] = r.offset
    for p, mark in marks.items():
        if p in first_offsets:
            assert first_offsets[p] == mark.offset + 1


async def test_a_new_group_with_offset_reset_latest_skips_the_backlog(
    latest_bus: Bus, ns: str
) -> None:
    topic = f"{ns}-latest"
    await latest_bus.ensure_topics([topic], PARTITIONS)
    backlog = await publish_many(latest_bus, topic, 12, tag="old-")
    consumer = latest_bus.consumer([topic], f"{ns}-g")
    await consumer.start()
    try:
        seen: list[Record] = []
        await wait_for_assignment([consumer], topic, seen)
        seen += await drain(consumer, quiet_s=1.0)  # positions settle at the end
        assert seen == []
        newer = await publish_many(latest_bus, topic, 8, tag="new-")
        got = await poll_until(consumer, len(newer))
        got += await drain(consumer, quiet_s=0.5)
    finally:
        await consumer.stop()
    assert backlog and ident(got) == ident(newer)


async def test_a_restarted_bus_keeps_its_log_and_the_committed_offsets(
    bus_opener: Callable[[], Bus], ns: str
) -> None:
    """What a group did not commit before a restart is delivered after it, and
    what it committed is not; offsets go on where they were (never reused)."""
    topic = f"{ns}-restart"
    group = f"{ns}-g"
    before = bus_opener()
    await before.ensure_topics([topic], PARTITIONS)
    sent = await publish_many(before, topic, 24, tag="old-")
    a = before.consumer([topic], group)
    await a.start()
    try:
        got = await poll_until(a, len(sent))
        by_partition: dict[int, list[Record]] = defaultdict(list)
        for r in got:
            by_partition[r.partition].append(r)
        marks = {p: rs[(len(rs) - 1) // 2] for p, rs in by_partition.items()}
        await a.commit(list(marks.values()))
    finally:
        await a.stop()
    await before.close()  # the process goes away

    after = bus_opener()
    assert await after.partition_count(topic) == PARTITIONS
    newer = await publish_many(after, topic, 8, tag="new-")
    for record in newer:  # the log goes on after the old records
        older = [r.offset for r in sent if r.partition == record.partition]
        assert record.offset > max(older, default=-1)
    b = after.consumer([topic], group)
    await b.start()
    try:
        uncommitted = [r for r in sent if r.offset > marks[r.partition].offset]
        resumed = await poll_until(b, len(uncommitted) + len(newer))
        resumed += await drain(b, quiet_s=1.0)
    finally:
        await b.stop()
    assert uncommitted and ident(resumed) == ident(uncommitted + newer)
