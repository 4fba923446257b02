"""One fixture per port, parametrized over its embedded and real adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from reelplane.infra.harness import Harness
from reelplane.ports.bus import Bus
from reelplane.ports.cache import Cache
from reelplane.ports.gate import Gate
from reelplane.ports.objects import ObjectStore
from reelplane.ports.relational import Database
from reelplane.ports.search import SearchIndex
from reelplane.ports.widerow import WideRowStore
from reelplane.schema import metadata
from tests.conftest import BACKENDS, real_url


@pytest.fixture(params=BACKENDS)
async def cache(request: pytest.FixtureRequest, harness: Harness) -> AsyncIterator[Cache]:
    if request.param == "embedded":
        from reelplane.adapters.cache_memory import MemoryCache

        store: Cache = MemoryCache()
    else:
        from reelplane.adapters.cache_redis import RedisCache

        store = RedisCache(real_url(harness, "redis"))
    yield store
    await store.close()


class GateAndCache(NamedTuple):
    """A gate and the cache adapter over the same store."""

    gate: Gate
    cache: Cache


@pytest.fixture(params=BACKENDS)
async def both(request: pytest.FixtureRequest, harness: Harness) -> AsyncIterator[GateAndCache]:
    if request.param == "embedded":
        from reelplane.adapters.cache_memory import MemoryCache
        from reelplane.adapters.gate_memory import MemoryGate

        memory = MemoryCache()
        pair = GateAndCache(MemoryGate(memory), memory)
    else:
        from reelplane.adapters.cache_redis import RedisCache
        from reelplane.adapters.gate_redis import RedisGate

        url = real_url(harness, "redis")
        pair = GateAndCache(RedisGate(url), RedisCache(url))
    yield pair
    await pair.gate.close()
    await pair.cache.close()


@pytest.fixture(params=BACKENDS)
async def objects(
    request: pytest.FixtureRequest, harness: Harness, tmp_path: Path
) -> AsyncIterator[ObjectStore]:
    if request.param == "embedded":
        from reelplane.adapters.objects_file import FileObjectStore

        store: ObjectStore = FileObjectStore(tmp_path / "objects")
    else:
        from reelplane.adapters.objects_s3 import S3ObjectStore

        store = S3ObjectStore(real_url(harness, "s3"))
    yield store
    await store.close()


@pytest.fixture(params=BACKENDS)
async def widerow(
    request: pytest.FixtureRequest, harness: Harness, tmp_path: Path
) -> AsyncIterator[WideRowStore]:
    if request.param == "embedded":
        from reelplane.adapters.widerow_sqlite import SqliteWideRowStore

        store: WideRowStore = SqliteWideRowStore(tmp_path / "widerow.sqlite")
    else:
        from reelplane.adapters.widerow_cassandra import CassandraWideRowStore

        url = real_url(harness, "cassandra").rsplit("/", 1)[0] + "/reelplane_test"
        store = CassandraWideRowStore(url)
    yield store
    await store.close()


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "embedded":
        from reelplane.ports.relational import SqliteDatabase

        db: Database = SqliteDatabase(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    else:
        from reelplane.ports.relational import MySQLDatabase

        db = MySQLDatabase(request.getfixturevalue("mariadb_test_url"))
    await db.migrate()
    # One database per session: empty the tables so each test starts clean.
    async with db.transaction() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())
    yield db
    await db.close()


@pytest.fixture(params=BACKENDS)
async def bus(
    request: pytest.FixtureRequest, harness: Harness, tmp_path: Path
) -> AsyncIterator[Bus]:
    if request.param == "embedded":
        from reelplane.adapters.bus_memory import MemoryBus

        # Durable, as `reelplane dev` runs it (its log in a file).
        b: Bus = MemoryBus(default_partitions=4, path=tmp_path / "bus.sqlite3")
    else:
        from reelplane.adapters.bus_kafka import KafkaBus

        b = KafkaBus(real_url(harness, "kafka"), default_partitions=4)
    yield b
    await b.close()


@pytest.fixture(params=BACKENDS)
async def bus_opener(
    request: pytest.FixtureRequest, harness: Harness, tmp_path: Path
) -> AsyncIterator[Callable[[], Bus]]:
    """Opens a new bus client on the same log each call (a restarted process)."""
    opened: list[Bus] = []

    def open_bus() -> Bus:
        if request.param == "embedded":
            from reelplane.adapters.bus_memory import MemoryBus

            b: Bus = MemoryBus(default_partitions=4, path=tmp_path / "bus.sqlite3")
        else:
            from reelplane.adapters.bus_kafka import KafkaBus

            b = KafkaBus(real_url(harness, "kafka"), default_partitions=4)
        opened.append(b)
        return b

    yield open_bus
    for b in opened:
        await b.close()


@pytest.fixture(params=BACKENDS)
async def latest_bus(request: pytest.FixtureRequest, harness: Harness) -> AsyncIterator[Bus]:
    """A bus whose new consumer groups start at the end (offset reset "latest")."""
    if request.param == "embedded":
        from reelplane.adapters.bus_memory import MemoryBus

        b: Bus = MemoryBus(default_partitions=4, offset_reset="latest")
    else:
        from reelplane.adapters.bus_kafka import KafkaBus

        b = KafkaBus(real_url(harness, "kafka"), default_partitions=4, offset_reset="latest")
    yield b
    await b.close()


@pytest.fixture(params=BACKENDS)
async def search(
    request: pytest.FixtureRequest, harness: Harness, tmp_path: Path, ns: str
) -> AsyncIterator[SearchIndex]:
    """A fresh, empty index: an FTS5 file, or OpenSearch indices named after the test."""
    if request.param == "embedded":
        from reelplane.adapters.search_sqlite import SqliteSearchIndex

        index: SearchIndex = SqliteSearchIndex(tmp_path / "search.sqlite")
        await index.ensure_indices()
        yield index
        await index.close()
        return
    from reelplane.adapters.search_opensearch import OpenSearchIndex

    real = OpenSearchIndex(f"{real_url(harness, 'search')}/{ns}")
    await real.ensure_indices()
    yield real
    await real.drop_indices()
    await real.close()
