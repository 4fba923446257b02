"""The relational port's contract, run on SQLite and on MariaDB."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from reelplane.ports.relational import Database
from reelplane.schema import metadata, processed_events, users


def a_user(handle: str) -> dict[str, object]:
    return {"id": uuid.uuid4().hex, "handle": handle, "created_at": datetime.now(UTC)}


async def test_migrate_is_idempotent(database: Database) -> None:
    await database.migrate()
    await database.migrate()
    async with database.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(users))).scalar_one() == 0


async def test_crud(database: Database, ns: str) -> None:
    user = a_user(f"{ns}")
    async with database.transaction() as conn:
        await conn.execute(users.insert().values(**user))
    async with database.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.id == user["id"]))).one()
    assert row.handle == ns and row.display_name == ""
    async with database.transaction() as conn:
        await conn.execute(update(users).where(users.c.id == user["id"]).values(display_name="Ada"))
    async with database.connect() as conn:
        name = (await conn.execute(select(users.c.display_name))).scalar_one()
    assert name == "Ada"
    async with database.transaction() as conn:
        await conn.execute(delete(users).where(users.c.id == user["id"]))
    async with database.connect() as conn:
        assert (await conn.execute(select(users))).first() is None


async def test_failed_transaction_leaves_nothing(database: Database, ns: str) -> None:
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            await conn.execute(users.insert().values(**a_user(f"{ns}a")))
            raise RuntimeError("boom")
    async with database.connect() as conn:
        assert (await conn.execute(select(users))).first() is None


async def test_unique_handle_is_enforced(database: Database, ns: str) -> None:
    async with database.transaction() as conn:
        await conn.execute(users.insert().values(**a_user(ns)))
    with pytest.raises(IntegrityError):
        async with database.transaction() as conn:
            await conn.execute(users.insert().values(**a_user(ns)))


async def test_insert_if_absent_wins_once_under_concurrency(database: Database) -> None:
    row = {"consumer": "c", "event_id": "e1", "processed_at": datetime.now(UTC)}

    async def claim() -> bool:
        async with database.transaction() as conn:
            return await database.insert_if_absent(conn, processed_events, row)

    results = await asyncio.gather(*(claim() for _ in range(10)))
    assert results.count(True) == 1
    async with database.connect() as conn:
        count = (
            await conn.execute(select(func.count()).select_from(processed_events))
        ).scalar_one()
    assert count == 1


async def test_committed_data_is_visible_to_a_new_connection(database: Database, ns: str) -> None:
    async with database.transaction() as conn:
        await conn.execute(users.insert().values(**a_user(ns)))
        async with database.connect() as other:
            # Not committed yet: another connection does not see it.
            assert (await other.execute(select(users))).first() is None
    async with database.connect() as other:
        assert (await other.execute(select(users.c.handle))).scalar_one() == ns


async def test_timestamps_come_back_as_aware_utc(database: Database, ns: str) -> None:
    user = a_user(ns)
    async with database.transaction() as conn:
        await conn.execute(users.insert().values(**user))
    async with database.connect() as conn:
        created = (await conn.execute(select(users.c.created_at))).scalar_one()
    assert created.tzinfo is not None
    sent = user["created_at"]
    assert isinstance(sent, datetime)
    assert abs((created - sent).total_seconds()) < 1


def _schema_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_schema(database: Database) -> None:
    async with database.connect() as conn:
        diff = await conn.run_sync(_schema_diff)
    assert diff == []


async def test_a_duplicate_insert_if_absent_logs_no_warning(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    row = {"consumer": "c", "event_id": "dup", "processed_at": datetime.now(UTC)}
    with caplog.at_level(logging.WARNING):
        for expected in (True, False):
            async with database.transaction() as conn:
                assert await database.insert_if_absent(conn, processed_events, row) is expected
    assert not [r for r in caplog.records if "Duplicate entry" in r.getMessage()]


async def test_followees_of_answers_a_batch_of_users_in_one_query(
    database: Database, ns: str
) -> None:
    from reelplane.graph import store as graph_store

    people = [a_user(f"{ns}{i}") for i in range(4)]
    async with database.transaction() as conn:
        await conn.execute(users.insert(), people)
    a, b, c, d = (str(p["id"]) for p in people)
    for follower, followee in ((a, b), (a, c), (b, c)):
        assert await graph_store.follow(database, follower, followee)
    # the same prepared statement serves batches of any size, and no one
    assert await graph_store.followees_of(database, [a, b, d]) == {a: {b, c}, b: {c}}
    assert await graph_store.followees_of(database, [b]) == {b: {c}}
    assert await graph_store.followees_of(database, [d, "no-such-user"]) == {}
    assert await graph_store.followees_of(database, []) == {}
