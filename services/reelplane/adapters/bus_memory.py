"""In-process bus with Kafka's semantics: partitions, consumer groups sharing
partitions, committed offsets and redelivery of what was not committed.

Durable across restarts when given a file (`reelplane dev` keeps it at
`<data_dir>/bus.sqlite3`): every published record and every committed offset
is written to SQLite before `publish`/`commit` return, and a restarted bus
resumes from them, so an event no consumer group committed is delivered again
after a crash (SIGKILL included). Records older than the retention are dropped
when the bus opens (Kafka's default: 7 days). One process owns the file at a
time; a second process on the same data folder gets a bus of its own in
memory only, and a warning.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fcntl
import itertools
import json
import logging
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import aiosqlite

from reelplane.ports.bus import Delivery, Record

log = logging.getLogger(__name__)

#: Kafka's default log.retention.hours (168): records older than this are dropped on open.
DEFAULT_RETENTION_S = 7 * 24 * 3600.0


def partition_for(key: str, partitions: int) -> int:
    """Stable partition of a key (the same key always lands on the same partition)."""
    return zlib.crc32(key.encode()) % partitions


@dataclass
class _Partition:
    """One partition's log, in offset order (the oldest may have expired)."""

    records: list[Record] = field(default_factory=list)
    #: The offset the next record gets (Kafka's log-end offset).
    end: int = 0

    @property
    def start(self) -> int:
        """The oldest offset still kept (the end when nothing is)."""
        return self.records[0].offset if self.records else self.end

    def append(self, record: Record) -> None:
        self.records.append(record)
        self.end = record.offset + 1

    def read(self, position: int, limit: int) -> list[Record]:
        """Up to `limit` records from offset `position` on (from the oldest kept
        when it expired). Offsets may have gaps: a write that failed is skipped."""
        i = bisect.bisect_left(self.records, position, key=lambda r: r.offset)
        return self.records[i : i + limit]


@dataclass
class _Group:
    members: list[MemoryConsumer] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY, partitions INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS records (topic TEXT NOT NULL, part INTEGER NOT NULL, "
    "offset INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, headers TEXT NOT NULL, "
    "created_at REAL NOT NULL, PRIMARY KEY (topic, part, offset))",
    "CREATE TABLE IF NOT EXISTS committed (grp TEXT NOT NULL, topic TEXT NOT NULL, "
    "part INTEGER NOT NULL, offset INTEGER NOT NULL, PRIMARY KEY (grp, topic, part))",
)


class _BusFile:
    """The SQLite file behind a durable MemoryBus (one writer thread, in order)."""

    def __init__(self, path: Path, lock: IO[str], db: aiosqlite.Connection) -> None:
        self.path = path
        self._lock = lock
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> _BusFile | None:
        """Open (creating) the file; None when another process owns it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = (path.parent / f"{path.name}.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
        db = await aiosqlite.connect(path)
        # WAL + NORMAL: a commit survives the process being killed (not power loss).
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            await db.execute(statement)
        await db.commit()
        return cls(path, lock, db)

    async def load(
        self, retention_s: float
    ) -> tuple[dict[str, int], list[Record], dict[tuple[str, str, int], int]]:
        """Drop expired records (each partition's last one is kept: it holds the
        log-end offset), then read the topics, the records and the committed offsets."""
        await self._db.execute(
            "DELETE FROM records WHERE created_at < ? AND offset < "
            "(SELECT MAX(r.offset) FROM records r "
            "WHERE r.topic = records.topic AND r.part = records.part)",
            (time.time() - retention_s,),
        )
        await self._db.commit()
        async with self._db.execute("SELECT topic, partitions FROM topics") as cursor:
            topics = {str(t): int(n) async for t, n in cursor}
        records: list[Record] = []
        async with self._db.execute(
            "SELECT topic, part, offset, key, value, headers FROM records "
            "ORDER BY topic, part, offset"
        ) as cursor:
            async for topic, part, offset, key, value, headers in cursor:
                decoded = tuple((k, bytes.fromhex(v)) for k, v in json.loads(headers))
                records.append(Record(topic, part, offset, key, bytes(value), decoded))
        async with self._db.execute("SELECT grp, topic, part, offset FROM committed") as cursor:
            committed = {(str(g), str(t), int(p)): int(o) async for g, t, p, o in cursor}
        return topics, records, committed

    async def add_topic(self, topic: str, partitions: int) -> None:
        await self._db.execute(
            "INSERT OR IGNORE INTO topics (topic, partitions) VALUES (?, ?)", (topic, partitions)
        )
        await self._db.commit()

    async def append(self, record: Record) -> None:
        headers = json.dumps([[k, v.hex()] for k, v in record.headers])
        await self._db.execute(
            "INSERT INTO records (topic, part, offset, key, value, headers, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.topic,
                record.partition,
                record.offset,
                record.key,
                record.value,
                headers,
                time.time(),
            ),
        )
        await self._db.commit()

    async def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        await self._db.executemany(
            "INSERT INTO committed (grp, topic, part, offset) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (grp, topic, part) DO UPDATE SET offset = MAX(offset, excluded.offset)",
            [(group, t, p, o) for (t, p), o in offsets.items()],
        )
        await self._db.commit()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._db.close()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


class MemoryBus:
    """The embedded bus. With `path`, its log and committed offsets live in that
    SQLite file too and survive a restart; without, they live as long as the bus."""

    def __init__(
        self,
        default_partitions: int = 6,
        *,
        offset_reset: Literal["earliest", "latest"] = "earliest",
        path: Path | None = None,
        retention_s: float = DEFAULT_RETENTION_S,
    ) -> None:
        self._default_partitions = default_partitions
        self._offset_reset = offset_reset
        self._logs: dict[str, list[_Partition]] = {}
        self._groups: dict[str, _Group] = {}
        self._changed = asyncio.Condition()
        self._ids = itertools.count()
        self._path = path
        self._retention_s = retention_s
        self._file: _BusFile | None = None
        self._opened = path is None
        self._opening = asyncio.Lock()

    @property
    def durable(self) -> bool:
        """True once the bus keeps its log in its file (False before first use)."""
        return self._file is not None

    async def _open(self) -> None:
        """Load the file on first use (the log, the topics, the committed offsets)."""
        if self._opened:
            return
        async with self._opening:
            if self._opened or self._path is None:
                return
            self._file = await _BusFile.open(self._path)
            if self._file is None:
                log.warning(
                    "%s is in use by another process: this process's in-process bus "
                    "keeps its events in memory only (give it its own REELPLANE_DATA_DIR, "
                    "or use kafka://)",
                    self._path,
                )
            else:
                topics, records, committed = await self._file.load(self._retention_s)
                for topic, count in topics.items():
                    self._logs[topic] = [_Partition() for _ in range(count)]
                for record in records:
                    parts = self._logs.setdefault(record.topic, [])
                    while len(parts) <= record.partition:  # a topic row lost: rebuild it
                        parts.append(_Partition())
                    parts[record.partition].append(record)
                for (group, topic, p), offset in committed.items():
                    self._groups.setdefault(group, _Group()).committed[(topic, p)] = offset
            self._opened = True

    async def ping(self) -> None:
        await self._open()

    async def ensure_topics(self, topics: list[str], partitions: int) -> None:
        await self._open()
        for topic in topics:
            if topic not in self._logs:
                await self._add_topic(topic, partitions)

    async def _add_topic(self, topic: str, partitions: int) -> None:
        self._logs[topic] = [_Partition() for _ in range(partitions)]
        self._rebalance_all()
        if self._file is not None:
            await self._file.add_topic(topic, partitions)

    async def partition_count(self, topic: str) -> int:
        await self.ensure_topics([topic], self._default_partitions)
        return len(self._logs[topic])

    async def publish(
        self, topic: str, key: str, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()
    ) -> Delivery:
        await self.ensure_topics([topic], self._default_partitions)
        partitions = self._logs[topic]
        p = partition_for(key, len(partitions))
        record = Record(topic, p, partitions[p].end, key, bytes(value), tuple(headers))
        partitions[p].append(record)
        if self._file is not None:
            # In offset order (one writer), before the publisher hears it is done.
            await self._file.append(record)
        async with self._changed:
            self._changed.notify_all()
        return Delivery(topic, p, record.offset)

    def consumer(self, topics: list[str], group: str) -> MemoryConsumer:
        return MemoryConsumer(self, list(topics), group, next(self._ids))

    # -- group coordination ---------------------------------------------------
    async def _join(self, member: MemoryConsumer) -> None:
        await self._open()
        for topic in member.topics:
            if topic not in self._logs:
                await self._add_topic(topic, self._default_partitions)
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
        partition = self._logs[tp[0]][tp[1]]
        if tp in group.committed:
            return max(group.committed[tp], partition.start)
        return partition.end if self._offset_reset == "latest" else partition.start

    async def _commit(self, member: MemoryConsumer, offsets: dict[tuple[str, int], int]) -> None:
        group = self._groups[member.group]
        # A partition lost in a rebalance is not ours to commit.
        mine = {tp: o for tp, o in offsets.items() if tp in member.positions}
        for tp, offset in mine.items():
            group.committed[tp] = max(group.committed.get(tp, 0), offset)
        if self._file is not None and mine:
            await self._file.commit(member.group, mine)

    def committed(self, group: str, topic: str, partition: int) -> int:
        """The group's committed offset of one partition (for lag and tests)."""
        g = self._groups.get(group)
        return g.committed.get((topic, partition), 0) if g else 0

    async def close(self) -> None:
        if self._file is not None:
            await self._file.close()
            self._file = None

    def end_offsets(self, topic: str) -> list[int]:
        return [p.end for p in self._logs.get(topic, [])]


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
            await self.bus._join(self)

    def _available(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for (topic, p), pos in sorted(self.positions.items()):
            take = self.bus._logs[topic][p].read(pos, max_records - len(out))
            if take:
                out.extend(take)
                self.positions[(topic, p)] = take[-1].offset + 1
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
        return any(self.bus._logs[t][p].end > pos for (t, p), pos in self.positions.items())

    async def commit(self, records: list[Record]) -> None:
        offsets: dict[tuple[str, int], int] = {}
        for r in records:
            tp = (r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        await self.bus._commit(self, offsets)

    def assignment(self) -> set[tuple[str, int]]:
        return set(self.positions)

    async def stop(self) -> None:
        if self._started:
            self._started = False
            self.bus._leave(self)
            self.positions = {}
            async with self.bus._changed:
                self.bus._changed.notify_all()
