"""Wide-row port: watch history, timelines, notification logs (Cassandra's model).

Every wide-row table has one shape: a partition (e.g. a user id) holding rows
ordered by a clustering key `(ts, item)`, newest first, each with an opaque value.
That single shape covers every use in ARCHITECTURE.md and keeps both adapters
small; the meaning of `ts` (milliseconds since the epoch) and `item` (a video or
notification id) belongs to the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


@dataclass(frozen=True)
class WideTable:
    """A wide-row table; `default_ttl_s` expires rows (0 keeps them)."""

    name: str
    default_ttl_s: int = 0

    def __post_init__(self) -> None:
        if not _TABLE_NAME.match(self.name):
            raise ValueError(f"invalid wide-row table name {self.name!r}")


@dataclass(frozen=True, order=True)
class Clustering:
    """A row's position inside its partition; rows sort by (ts, item)."""

    ts: int  # milliseconds since the epoch, or any monotonic integer
    item: str


@dataclass(frozen=True)
class WideRow:
    partition: str
    ts: int
    item: str
    value: bytes

    @property
    def clustering(self) -> Clustering:
        return Clustering(self.ts, self.item)


class WideRowStore(Protocol):
    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    async def ensure_tables(self, tables: list[WideTable]) -> None:
        """Create the tables if missing (idempotent; safe from many processes)."""

    async def put(self, table: WideTable, rows: list[WideRow], *, ttl_s: int | None = None) -> None:
        """Upsert rows (same partition+clustering overwrites)."""

    async def range(
        self,
        table: WideTable,
        partition: str,
        *,
        before: Clustering | None = None,
        after: Clustering | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> list[WideRow]:
        """Rows of one partition in clustering order, strictly between the
        optional bounds (cursor pagination), at most `limit`."""

    async def delete(
        self, table: WideTable, partition: str, clustering: Clustering | None = None
    ) -> None:
        """Delete one row, or the whole partition when clustering is None."""

    async def trim(self, table: WideTable, partition: str, keep: int) -> None:
        """Cap a partition: delete the rows older (smaller ts) than its `keep`-th
        newest row. Rows sharing that row's ts stay, so a partition may keep a
        few more than `keep`; nothing happens when it has `keep` rows or fewer."""

    async def close(self) -> None: ...
