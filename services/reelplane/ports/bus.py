"""Bus port: the event log (Kafka semantics).

Topics are split into partitions; a record's key picks its partition, so
records with one key keep their order. Consumers join a group; the group's
partitions are shared among its members, and each partition's committed offset
is where a new owner resumes (so anything not committed is delivered again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Record:
    """One record as a consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default=())


@dataclass(frozen=True)
class Delivery:
    """Where an acknowledged record landed."""

    topic: str
    partition: int
    offset: int


class Consumer(Protocol):
    """One member of a consumer group."""

    async def start(self) -> None:
        """Join the group."""

    async def poll(self, *, max_records: int = 100, timeout_s: float = 1.0) -> list[Record]:
        """Records from the assigned partitions in offset order (empty on timeout)."""

    async def commit(self, records: list[Record]) -> None:
        """Mark these records (and all before them in their partitions) done."""

    def assignment(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this member owns now."""

    async def stop(self) -> None:
        """Leave the group without committing anything further."""


class Bus(Protocol):
    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    async def ensure_topics(self, topics: list[str], partitions: int) -> None:
        """Create topics that do not exist yet (idempotent)."""

    async def partition_count(self, topic: str) -> int: ...

    async def publish(
        self, topic: str, key: str, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()
    ) -> Delivery:
        """Append a record and wait until the log has it durably."""

    def consumer(self, topics: list[str], group: str) -> Consumer: ...

    async def close(self) -> None: ...
