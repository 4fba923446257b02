"""Relational port: users, sessions, video metadata, follows, comments.

SQLAlchemy 2 (async) is the query language on both adapters; what differs per
backend (engine options, the insert-if-absent statement, migration locking)
lives in the two small subclasses below, so services write one query for both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

import reelplane.migrations

MIGRATIONS_DIR = Path(reelplane.migrations.__file__).parent


def _alembic_upgrade(connection: Connection, revision: str = "head") -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


class Database:
    """The relational store. Use `transaction()` for writes (commit on success,
    rollback on error) and `connect()` for reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def insert_if_absent(
        self, conn: AsyncConnection, table: Table, values: Mapping[str, Any]
    ) -> bool:
        """Insert one row unless its key exists; True when inserted. Never raises
        on a duplicate key, so concurrent writers of the same row are safe."""
        raise NotImplementedError

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision` (idempotent)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_alembic_upgrade, revision)

    async def close(self) -> None:
        await self.engine.dispose()


class SqliteDatabase(Database):
    """Embedded default. WAL and a busy timeout let readers and one writer overlap."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # SQLAlchemy's default pool (AsyncAdaptedQueuePool for a file): a fresh
        # connection per use (NullPool) costs a thread and the pragmas below,
        # ~1.5 CPU-ms, more than the query (the recommender's followees lookup).
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        super().__init__(engine)

    async def insert_if_absent(
        self, conn: AsyncConnection, table: Table, values: Mapping[str, Any]
    ) -> bool:
        from sqlalchemy.dialects.sqlite import insert

        result = await conn.execute(insert(table).values(**values).on_conflict_do_nothing())
        return bool(result.rowcount)


class _DuplicateKeyWarnings(logging.Filter):
    """Drops asyncmy's log line for MySQL warning 1062 ("Duplicate entry"): it is
    the expected outcome of `insert_if_absent`'s INSERT IGNORE, not a problem.
    Every other server warning is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Duplicate entry" not in record.getMessage()


_ASYNCMY_LOG = logging.getLogger("asyncmy")
if not any(isinstance(f, _DuplicateKeyWarnings) for f in _ASYNCMY_LOG.filters):
    _ASYNCMY_LOG.addFilter(_DuplicateKeyWarnings())


class MySQLDatabase(Database):
    """MySQL protocol (MariaDB here, Vitess at scale) through asyncmy."""

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        engine = create_async_engine(
            url,
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_size=10,
            max_overflow=20,
            isolation_level="READ COMMITTED",
            connect_args={"connect_timeout": int(connect_timeout_s)},
        )
        super().__init__(engine)

    async def insert_if_absent(
        self, conn: AsyncConnection, table: Table, values: Mapping[str, Any]
    ) -> bool:
        from sqlalchemy.dialects.mysql import insert

        result = await conn.execute(insert(table).values(**values).prefix_with("IGNORE"))
        return bool(result.rowcount)

    async def migrate(self, revision: str = "head") -> None:
        # Several replicas may start at once; one migrates, the others wait.
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT GET_LOCK('reelplane_migrate', 120)"))
            try:
                await conn.run_sync(_alembic_upgrade, revision)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT RELEASE_LOCK('reelplane_migrate')"))
