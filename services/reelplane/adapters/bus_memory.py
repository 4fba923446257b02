"""In-process bus with Kafka's semantics: partitions, consumer groups sharing
partitions, committed offsets and redelivery of what was not committed."""

from __future__ import annotations

import asyncio
import itertools
import zlib
from dataclasses import dataclass, field
from typing import Literal

from reelplane.ports.bus import Delivery, Record


def partition_for(key: str, partitions: int) -> int:
    """Stable partition of a key (the same key always lands on the same partition)."""
    return zlib.crc32(key.encode()) % partitions


@dataclass
class _Group:
    members: list[MemoryConsumer] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)


class MemoryBus:
    def __init__(
        self,
        default_partitions: int = 6,
        *,
        offset_reset: Literal["earliest", "latest"] = "earliest",
    ) -> None:
        self._default_partitions = default_partitions
        self._offset_reset = offset_reset
        self._logs: dict[str, list[list[Record]]] = {}
        self._groups: dict[str, _Group] = {}
        self._changed = asyncio.Condition()
        self._ids = itertools.count()

    async def ping(self) -> None:
        return None

    async def ensure_topics(self, topics: list[str], partitions: int) -> None:
        for topic in topics:
            if topic not in self._logs:
                self._logs[topic] = [[] for _ in range(partitions)]
                self._rebalance_all()

    async def partition_count(self, topic: str) -> int:
        await self.ensure_topics([topic], self._default_partitions)
        return len(self._logs[topic])

    async def publish(
        self, topic: str, key: str, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()
    ) -> Delivery:
        await self.ensure_topics([topic], self._default_partitions)
        partitions = self._logs[topic]
        p = partition_for(key, len(partitions))
        record = Record(topic, p, len(partitions[p]), key, bytes(value), tuple(headers))
        partitions[p].append(record)
        async with self._changed:
            self._changed.notify_all()
        return Delivery(topic, p, record.offset)

    def consumer(self, topics: list[str], group: str) -> MemoryConsumer:
        return MemoryConsumer(self, list(topics), group, next(self._ids))

    # -- group coordination ---------------------------------------------------
    def _join(self, member: MemoryConsumer) -> None:
        for topic in member.topics:
            self._logs.setdefault(topic, [[] for _ in range(self._default_partitions)])
        self._groups.setdefault(member.group, _Group()).members.append(member)
        self._rebalance(member.group)

    def _leave(self, member: MemoryConsumer) -> None:
        group = self._groups.get(member.group)
        if group and member in group.members:
            group.members.remove(member)
            self._rebalance(member.group)

    def _rebalance_all(self) -> None:
        for name in self._groups:
            self._rebalance(name)

    def _rebalance(self, name: str) -> None:
        """Round-robin each topic's partitions over the members subscribed to it;
        a member resumes a newly owned partition at the group's committed offset
        (without one: the start, or with offset_reset "latest" the end, as
        Kafka's auto.offset.reset)."""
        group = self._groups[name]
        owned: dict[int, set[tuple[str, int]]] = {m.member_id: set() for m in group.members}
        for topic, partitions in self._logs.items():
            subscribers = [m for m in group.members if topic in m.topics]
            for p in range(len(partitions)):
                if subscribers:
                    owned[subscribers[p % len(subscribers)].member_id].add((topic, p))
        for m in group.members:
            new = owned[m.member_id]
            m.positions = {
                tp: (m.positions[tp] if tp in m.positions else self._start(group, tp)) for tp in new
            }

    def _start(self, group: _Group, tp: tuple[str, int]) -> int:
        if tp in group.committed:
            return group.committed[tp]
        return len(self._logs[tp[0]][tp[1]]) if self._offset_reset == "latest" else 0

    def _commit(self, member: MemoryConsumer, offsets: dict[tuple[str, int], int]) -> None:
        group = self._groups[member.group]
        for tp, offset in offsets.items():
            if tp in member.positions:  # a partition lost in a rebalance is not ours to commit
                group.committed[tp] = max(group.committed.get(tp, 0), offset)

    def committed(self, group: str, topic: str, partition: int) -> int:
        """The group's committed offset of one partition (for lag and tests)."""
        g = self._groups.get(group)
        return g.committed.get((topic, partition), 0) if g else 0

    async def close(self) -> None:
        return None

    def end_offsets(self, topic: str) -> list[int]:
        return [len(p) for p in self._logs.get(topic, [])]


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, topics: list[str], group: str, member_id: int) -> None:
        self.bus = bus
        self.topics = topics
        self.group = group
        self.member_id = member_id
        self.positions: dict[tuple[str, int], int] = {}
        self._started = False

    async def start(self) -> None:
        if not self._started:
            self._started = True
            self.bus._join(self)

    def _available(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for (topic, p), pos in sorted(self.positions.items()):
            log = self.bus._logs[topic][p]
            take = log[pos : pos + max_records - len(out)]
            if take:
                out.extend(take)
                self.positions[(topic, p)] = pos + len(take)
            if len(out) >= max_records:
                break
        return out

    async def poll(self, *, max_records: int = 100, timeout_s: float = 1.0) -> list[Record]:
        if not self._started:
            raise RuntimeError("consumer not started")
        records = self._available(max_records)
        if records:
            return records
        cond = self.bus._changed
        try:
            async with cond:
                await asyncio.wait_for(
                    cond.wait_for(lambda: self._has_data() or not self._started), timeout_s
                )
        except TimeoutError:
            return []
        return self._available(max_records)

    def _has_data(self) -> bool:
        return any(len(self.bus._logs[t][p]) > pos for (t, p), pos in self.positions.items())

    async def commit(self, records: list[Record]) -> None:
        offsets: dict[tuple[str, int], int] = {}
        for r in records:
            tp = (r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        self.bus._commit(self, offsets)

    def assignment(self) -> set[tuple[str, int]]:
        return set(self.positions)

    async def stop(self) -> None:
        if self._started:
            self._started = False
            self.bus._leave(self)
            self.positions = {}
            async with self.bus._changed:
                self.bus._changed.notify_all()
