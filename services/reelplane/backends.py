"""Choose and open each port's adapter from its URL setting.

This is the one place that knows which adapter serves which URL scheme.
`open_backends` connects to everything and fails with one `BackendUnavailable`
naming the setting when a server cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from reelplane.errors import BackendUnavailable, ReelplaneError
from reelplane.ports.bus import Bus
from reelplane.ports.cache import Cache
from reelplane.ports.gate import Gate
from reelplane.ports.mail import Mailer
from reelplane.ports.objects import ObjectStore
from reelplane.ports.relational import Database, MySQLDatabase, SqliteDatabase
from reelplane.ports.search import SearchIndex
from reelplane.ports.widerow import WideRowStore
from reelplane.settings import Settings, setting_name
from reelplane.urls import redact

T = TypeVar("T")

#: The in-process bus's log and committed offsets, under REELPLANE_DATA_DIR.
MEMORY_BUS_FILE = "bus.sqlite3"


def _local_path(url: str) -> Path:
    """Path of a file:// URL; `file://rel/dir` is relative to the cwd."""
    parts = urlsplit(url)
    return Path(parts.netloc + parts.path) if parts.netloc else Path(parts.path)


def _sqlite_path(url: str) -> Path | None:
    """Path of a sqlite URL as SQLAlchemy reads it: sqlite:///rel/path is relative to
    the working directory, sqlite:////abs/path absolute; None for sqlite:// or :memory:."""
    rest = url.split("?", 1)[0].removeprefix("sqlite://").removeprefix("/")
    return None if rest in ("", ":memory:") else Path(rest)


def make_database(settings: Settings) -> Database:
    url = settings.database_url
    if url.startswith("mysql+asyncmy://"):
        return MySQLDatabase(url, connect_timeout_s=settings.connect_timeout_s)
    return SqliteDatabase(url)


def make_cache(settings: Settings) -> Cache:
    if settings.cache_url.startswith("redis://"):
        from reelplane.adapters.cache_redis import RedisCache

        return RedisCache(settings.cache_url, connect_timeout_s=settings.connect_timeout_s)
    from reelplane.adapters.cache_memory import MemoryCache

    return MemoryCache()


def make_gate(settings: Settings, cache: Cache) -> Gate:
    """The gate, on the cache's store (the same Redis, or the in-process cache)."""
    if settings.cache_url.startswith("redis://"):
        from reelplane.adapters.gate_redis import RedisGate

        return RedisGate(settings.cache_url, connect_timeout_s=settings.connect_timeout_s)
    from reelplane.adapters.cache_memory import MemoryCache
    from reelplane.adapters.gate_memory import MemoryGate

    if not isinstance(cache, MemoryCache):
        raise TypeError("the in-process gate needs the in-process cache")
    return MemoryGate(cache)


def make_bus(settings: Settings) -> Bus:
    if settings.bus_url.startswith("kafka://"):
        from reelplane.adapters.bus_kafka import KafkaBus

        return KafkaBus(
            settings.bus_url,
            default_partitions=settings.bus_partitions,
            connect_timeout_s=settings.connect_timeout_s,
            max_poll_interval_s=settings.bus_max_poll_interval_s,
            offset_reset=settings.bus_offset_reset,
        )
    from reelplane.adapters.bus_memory import MemoryBus

    return MemoryBus(
        default_partitions=settings.bus_partitions,
        offset_reset=settings.bus_offset_reset,
        path=settings.data_dir / MEMORY_BUS_FILE,  # its log survives a restart
    )


def make_widerow(settings: Settings) -> WideRowStore:
    if settings.widerow_url.startswith("cassandra://"):
        from reelplane.adapters.widerow_cassandra import CassandraWideRowStore

        return CassandraWideRowStore(
            settings.widerow_url, connect_timeout_s=settings.connect_timeout_s
        )
    from reelplane.adapters.widerow_sqlite import SqliteWideRowStore

    return SqliteWideRowStore(_sqlite_path(settings.widerow_url))


def make_objects(settings: Settings) -> ObjectStore:
    if settings.objects_url.startswith("s3://"):
        from reelplane.adapters.objects_s3 import S3ObjectStore

        return S3ObjectStore(settings.objects_url, connect_timeout_s=settings.connect_timeout_s)
    from reelplane.adapters.objects_file import FileObjectStore

    return FileObjectStore(_local_path(settings.objects_url))


def make_search(settings: Settings) -> SearchIndex:
    """The search index (opened by the search service only, not by `open_backends`)."""
    if settings.search_url.startswith("opensearch://"):
        from reelplane.adapters.search_opensearch import OpenSearchIndex

        return OpenSearchIndex(settings.search_url, connect_timeout_s=settings.connect_timeout_s)
    from reelplane.adapters.search_sqlite import SqliteSearchIndex

    return SqliteSearchIndex(_sqlite_path(settings.search_url))


def make_mailer(settings: Settings) -> Mailer:
    """The mail adapter (opened by the digest job only, not by `open_backends`):
    smtp:// and smtps:// connect on the first message; log:// writes to the log."""
    if settings.mail_url.startswith(("smtp://", "smtps://")):
        from reelplane.adapters.mail_smtp import SmtpMailer

        return SmtpMailer(settings.mail_url)
    from reelplane.adapters.mail_log import LogMailer

    return LogMailer()


async def open_search(settings: Settings) -> SearchIndex:
    """Open and check the search index, creating its indices; BackendUnavailable
    naming REELPLANE_SEARCH_URL when it cannot be reached."""
    index = make_search(settings)
    t = settings.connect_timeout_s
    try:
        await _checked("search_url", settings.search_url, index.ping, t)
        await _checked("search_url", settings.search_url, index.ensure_indices, max(t, 30))
    except BaseException:
        await index.close()
        raise
    return index


@dataclass
class Backends:
    """Every port's open adapter, as one object handed to services and workers."""

    settings: Settings
    database: Database
    cache: Cache
    bus: Bus
    widerow: WideRowStore
    objects: ObjectStore
    gate: Gate

    async def close(self) -> None:
        for closer in (
            self.bus.close,
            self.gate.close,
            self.cache.close,
            self.widerow.close,
            self.objects.close,
            self.database.close,
        ):
            with contextlib.suppress(Exception):  # best effort on shutdown
                await closer()


async def _checked(field: str, url: str, probe: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """Run a connection probe; any failure becomes BackendUnavailable naming the setting."""
    try:
        return await asyncio.wait_for(probe(), timeout_s)
    except ReelplaneError:
        raise
    except TimeoutError:
        raise BackendUnavailable(
            setting_name(field), redact(url), f"no answer within {timeout_s:g} s"
        ) from None
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendUnavailable(setting_name(field), redact(url), reason[:200]) from None


async def open_backends(settings: Settings, *, migrate: bool = True) -> Backends:
    """Open and check every backend; migrate the relational schema when asked."""
    t = settings.connect_timeout_s
    database = make_database(settings)
    cache = make_cache(settings)
    gate = make_gate(settings, cache)
    bus = make_bus(settings)
    widerow = make_widerow(settings)
    objects = make_objects(settings)
    backends = Backends(settings, database, cache, bus, widerow, objects, gate)
    try:
        await _checked("database_url", settings.database_url, database.ping, t)
        await _checked("cache_url", settings.cache_url, cache.ping, t)
        await _checked("cache_url", settings.cache_url, gate.ping, t)
        await _checked("bus_url", settings.bus_url, bus.ping, t)
        await _checked("widerow_url", settings.widerow_url, widerow.ping, t)
        await _checked("objects_url", settings.objects_url, objects.ping, t)
        if migrate:
            await _checked("database_url", settings.database_url, database.migrate, 120)
    except BaseException:
        await backends.close()
        raise
    return backends
