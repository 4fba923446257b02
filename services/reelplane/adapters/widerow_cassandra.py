"""Cassandra adapter of the wide-row port (DataStax cassandra-driver).

Table names are checked by `WideTable` (lowercase identifiers), so building CQL
with them is safe; every value is a bound parameter.
"""
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlsplit

from cassandra.cluster import Cluster, ResponseFuture, Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from reelplane.errors import InvalidInput
from reelplane.ports.widerow import Clustering, WideRow, WideTable
from reelplane.urls import query_params

_KEYSPACE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


def _await(future: ResponseFuture) -> asyncio.Future[Any]:
    """Bridge the driver's callback future onto the running event loop."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Any] = loop.create_future()

    def _set_result(rows: Any) -> None:
        if not result.done():
            result.set_result(rows)

    def _set_exception(exc: BaseException) -> None:
        if not result.done():
            result.set_exception(exc)

    def _ok(rows: Any) -> None:
        loop.call_soon_threadsafe(_set_result, rows)

    def _err(exc: BaseException) -> None:
        loop.call_soon_threadsafe(_set_exception, exc)

    future.add_callbacks(_ok, _err)
    return result


class CassandraWideRowStore:
    """URL: cassandra://host[:port][,host2[:port]]/keyspace?replication_factor=1."""

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        self.keyspace = parts.path.strip("/") or "reelplane"
        if not _KEYSPACE.match(self.keyspace):
            raise InvalidInput(f"invalid keyspace {self.keyspace!r}")
        hosts: list[str] = []
        port = 9042
        for hostport in parts.netloc.split(","):
            host, _, p = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
            hosts.append(host or "127.0.0.1")
            if p:
                port = int(p)
        self._rf = int(query_params(url).get("replication_factor", "1"))
        self._cluster = Cluster(
            hosts,
            port=port,
            connect_timeout=connect_timeout_s,
            control_connection_timeout=connect_timeout_s,
            protocol_version=5,
        )
        self._session: Session | None = None
        self._prepared: dict[str, PreparedStatement] = {}

    async def _connect(self) -> Session:
        if self._session is None:
            session: Session = await asyncio.to_thread(self._cluster.connect)
            await _await(
                session.execute_async(
                    f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} WITH replication = "
                    f"{{'class': 'SimpleStrategy', 'replication_factor': {self._rf}}}"
                )
            )
            session.set_keyspace(self.keyspace)
            self._session = session
        return self._session

    async def _prepare(self, cql: str) -> PreparedStatement:
        stmt = self._prepared.get(cql)
        if stmt is None:
            session = await self._connect()
            stmt = await asyncio.to_thread(session.prepare, cql)
            self._prepared[cql] = stmt
        return stmt

    async def ping(self) -> None:
        session = await self._connect()
        await _await(session.execute_async("SELECT release_version FROM system.local"))

    async def ensure_tables(self, tables: list[WideTable]) -> None:
        session = await self._connect()
        for t in tables:
            await _await(
                session.execute_async(
                    f"CREATE TABLE IF NOT EXISTS {t.name} ("
                    "partition text, ts bigint, item text, value blob, "
                    "PRIMARY KEY ((partition), ts, item)) "
                    "WITH CLUSTERING ORDER BY (ts DESC, item DESC) "
                    f"AND default_time_to_live = {int(t.default_ttl_s)}",
                    timeout=60,
                )
            )

    async def put(self, table: WideTable, rows: list[WideRow], *, ttl_s: int | None = None) -> None:
        if not rows:
            return
        ttl = table.default_ttl_s if ttl_s is None else ttl_s
        stmt = await self._prepare(
            f"INSERT INTO {table.name} (partition, ts, item, value) VALUES (?, ?, ?, ?) USING TTL ?"
        )
        session = await self._connect()
        # Rows of one partition go in one unlogged batch (a single mutation);
        # different partitions are written concurrently.
        by_partition: dict[str, list[WideRow]] = {}
        for r in rows:
            by_partition.setdefault(r.partition, []).append(r)
        futures = []
        for part_rows in by_partition.values():
            for i in range(0, len(part_rows), 100):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for r in part_rows[i : i + 100]:
                    batch.add(stmt, (r.partition, r.ts, r.item, r.value, int(ttl)))
                futures.append(_await(session.execute_async(batch)))
        await asyncio.gather(*futures)

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
        if limit <= 0:
            return []
        where = ["partition = ?"]
        args: list[Any] = [partition]
        if before is not None:
            where.append("(ts, item) < (?, ?)")
            args += [before.ts, before.item]
        if after is not None:
            where.append("(ts, item) > (?, ?)")
            args += [after.ts, after.item]
        order = "DESC" if newest_first else "ASC"
        stmt = await self._prepare(
            f"SELECT partition, ts, item, value FROM {table.name} WHERE {' AND '.join(where)} "
            f"ORDER BY ts {order}, item {order} LIMIT ?"
        )
        session = await self._connect()
        bound = stmt.bind([*args, limit])
        bound.fetch_size = limit
        rows = await _await(session.execute_async(bound))
        return [WideRow(r.partition, r.ts, r.item, bytes(r.value)) for r in rows]

    async def delete(
        self, table: WideTable, partition: str, clustering: Clustering | None = None
    ) -> None:
        session = await self._connect()
        if clustering is None:
            stmt = await self._prepare(f"DELETE FROM {table.name} WHERE partition = ?")
            await _await(session.execute_async(stmt, (partition,)))
        else:
            stmt = await self._prepare(
                f"DELETE FROM {table.name} WHERE partition = ? AND ts = ? AND item = ?"
            )
            await _await(session.execute_async(stmt, (partition, clustering.ts, clustering.item)))

    async def trim(self, table: WideTable, partition: str, keep: int) -> None:
        if keep <= 0:
            await self.delete(table, partition)
            return
        newest = await self.range(table, partition, limit=keep)
        if len(newest) < keep:
            return
        # One range tombstone on the clustering prefix, not one per row.
        session = await self._connect()
        stmt = await self._prepare(f"DELETE FROM {table.name} WHERE partition = ? AND ts < ?")
        await _await(session.execute_async(stmt, (partition, newest[-1].ts)))

    async def close(self) -> None:
        await asyncio.to_thread(self._cluster.shutdown)
        self._session = None
