"""SQLite adapter of the wide-row port (one SQLite table per wide-row table)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from reelplane.ports.widerow import Clustering, WideRow, WideTable


class SqliteWideRowStore:
    """Rows keyed by (partition, ts, item) with an expiry column for TTLs.

    One connection guarded by a lock, used from a worker thread so the event
    loop never blocks on disk.
    """

    def __init__(self, path: Path | None) -> None:
        target = ":memory:" if path is None else str(path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = asyncio.Lock()
        self._known: set[str] = set()

    async def _run(self, fn: object, *args: object) -> object:
        async with self._lock:
            return await asyncio.to_thread(fn, *args)  # type: ignore[arg-type]

    async def ping(self) -> None:
        await self._run(self._db.execute, "SELECT 1")

    async def ensure_tables(self, tables: list[WideTable]) -> None:
        def _create() -> None:
            for t in tables:
                self._db.execute(
                    f"CREATE TABLE IF NOT EXISTS wr_{t.name} ("
                    "partition TEXT NOT NULL, ts INTEGER NOT NULL, item TEXT NOT NULL, "
                    "value BLOB NOT NULL, expires_at REAL, PRIMARY KEY (partition, ts, item)"
                    ") WITHOUT ROWID"
                )
                self._known.add(t.name)

        await self._run(_create)

    async def put(self, table: WideTable, rows: list[WideRow], *, ttl_s: int | None = None) -> None:
        ttl = table.default_ttl_s if ttl_s is None else ttl_s
        expires = time.time() + ttl if ttl else None

        def _put() -> None:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    f"INSERT OR REPLACE INTO wr_{table.name} "  # noqa: S608
                    "(partition, ts, item, value, expires_at) VALUES (?, ?, ?, ?, ?)",
                    [(r.partition, r.ts, r.item, r.value, expires) for r in rows],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

        await self._run(_put)

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
        where = ["partition = ?", "(expires_at IS NULL OR expires_at > ?)"]
        args: list[object] = [partition, time.time()]
        if before is not None:
            where.append("(ts, item) < (?, ?)")
            args += [before.ts, before.item]
        if after is not None:
            where.append("(ts, item) > (?, ?)")
            args += [after.ts, after.item]
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT partition, ts, item, value FROM wr_{table.name} "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY ts {order}, item {order} LIMIT ?"
        )
        args.append(max(0, limit))

        def _query() -> list[WideRow]:
            return [
                WideRow(p, ts, item, bytes(v)) for p, ts, item, v in self._db.execute(sql, args)
            ]

        result = await self._run(_query)
        assert isinstance(result, list)
        return result

    async def delete(
        self, table: WideTable, partition: str, clustering: Clustering | None = None
    ) -> None:
        if clustering is None:
            sql = f"DELETE FROM wr_{table.name} WHERE partition = ?"  # noqa: S608
            args: tuple[object, ...] = (partition,)
        else:
            sql = f"DELETE FROM wr_{table.name} WHERE partition = ? AND ts = ? AND item = ?"  # noqa: S608
            args = (partition, clustering.ts, clustering.item)
        await self._run(self._db.execute, sql, args)

    async def trim(self, table: WideTable, partition: str, keep: int) -> None:
        if keep <= 0:
            await self.delete(table, partition)
            return
        boundary_sql = (
            f"SELECT ts FROM wr_{table.name} WHERE partition = ? "  # noqa: S608
            "ORDER BY ts DESC, item DESC LIMIT 1 OFFSET ?"
        )
        delete_sql = f"DELETE FROM wr_{table.name} WHERE partition = ? AND ts < ?"  # noqa: S608

        def _trim() -> None:
            row = self._db.execute(boundary_sql, (partition, keep - 1)).fetchone()
            if row is not None:
                self._db.execute(delete_sql, (partition, row[0]))

        await self._run(_trim)

    async def close(self) -> None:
        async with self._lock:
            self._db.close()
