"""The social stack (gateway, graph, engagement, feed) on the embedded backends
and on the real servers, with the helpers its tests share.

`stack` is parametrized like the contract fixtures: `[embedded]` carries the
embedded marker, `[real]` the integration marker. On the real servers each test
gets its own Kafka topics and consumer groups and its own Redis key space (a
prefix), so runs beside other tests never see each other's events or keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from reelplane.auth import SessionStore
from reelplane.backends import Backends, open_backends
from reelplane.events.envelope import VideoReady, VideoReadyPayload
from reelplane.events.publisher import EventPublisher
from reelplane.http.app import create_app
from reelplane.infra.harness import Harness
from reelplane.ports.bus import Bus, Consumer, Delivery, Record
from reelplane.ports.cache import Cache, Subscription
from reelplane.ports.gate import Bucket, Expansion, Gate, GateOutcome, TokenDecision
from reelplane.schema import follows, metadata, users, video_assets, videos
from reelplane.settings import Settings
from tests.conftest import BACKENDS, embedded_settings, real_url

SOCIAL_SERVICES = ["gateway", "upload", "graph", "engagement", "feed"]
PASSWORD = "correct horse battery"

#: Settings every social test runs with (cheap password hashing, small tiers).
TEST_ENV = {
    "REELPLANE_PASSWORD_TIME_COST": "1",
    "REELPLANE_PASSWORD_MEMORY_KIB": "1024",
    "REELPLANE_PASSWORD_PARALLELISM": "1",
    "REELPLANE_CELEBRITY_FOLLOWER_THRESHOLD": "3",
    "REELPLANE_RATE_LIMIT_IP_BURST": "100000",
    "REELPLANE_RATE_LIMIT_USER_BURST": "100000",
    "REELPLANE_RATE_LIMIT_AUTH_BURST": "100000",
    "REELPLANE_FEED_RECENT_FOLLOW_PULL_S": "0",
}


# -- namespacing wrappers for the shared real servers ------------------------------
@dataclass
class NamespacedConsumer:
    inner: Consumer
    prefix: str

    async def start(self) -> None:
        await self.inner.start()

    async def poll(self, *, max_records: int = 100, timeout_s: float = 1.0) -> list[Record]:
        records = await self.inner.poll(max_records=max_records, timeout_s=timeout_s)
        return [
            Record(
                r.topic.removeprefix(self.prefix), r.partition, r.offset, r.key, r.value, r.headers
            )
            for r in records
        ]

    async def commit(self, records: list[Record]) -> None:
        await self.inner.commit(
            [
                Record(self.prefix + r.topic, r.partition, r.offset, r.key, r.value, r.headers)
                for r in records
            ]
        )

    def assignment(self) -> set[tuple[str, int]]:
        return {(t.removeprefix(self.prefix), p) for t, p in self.inner.assignment()}

    async def stop(self) -> None:
        await self.inner.stop()


@dataclass
class NamespacedBus:
    """Topics and consumer groups prefixed with a per-test namespace."""

    inner: Bus
    prefix: str

    async def ping(self) -> None:
        await self.inner.ping()

    async def ensure_topics(self, topics: list[str], partitions: int) -> None:
        await self.inner.ensure_topics([self.prefix + t for t in topics], partitions)

    async def partition_count(self, topic: str) -> int:
        return await self.inner.partition_count(self.prefix + topic)

    async def publish(
        self, topic: str, key: str, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()
    ) -> Delivery:
        d = await self.inner.publish(self.prefix + topic, key, value, headers)
        return Delivery(d.topic.removeprefix(self.prefix), d.partition, d.offset)

    def consumer(self, topics: list[str], group: str) -> Consumer:
        inner = self.inner.consumer([self.prefix + t for t in topics], self.prefix + group)
        return NamespacedConsumer(inner, self.prefix)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class NamespacedCache:
    """Every key and channel prefixed with a per-test namespace."""

    inner: Cache
    prefix: str

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def ping(self) -> None:
        await self.inner.ping()

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(self._k(key))

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        return await self.inner.get_many([self._k(k) for k in keys])

    async def set(
        self, key: str, value: bytes, *, ttl_s: float | None = None, only_if_absent: bool = False
    ) -> bool:
        return await self.inner.set(self._k(key), value, ttl_s=ttl_s, only_if_absent=only_if_absent)

    async def delete(self, *keys: str) -> int:
        return await self.inner.delete(*(self._k(k) for k in keys))

    async def incr(self, key: str, amount: int = 1) -> int:
        return await self.inner.incr(self._k(key), amount)

    async def expire(self, key: str, ttl_s: float) -> bool:
        return await self.inner.expire(self._k(key), ttl_s)

    async def ttl(self, key: str) -> float | None:
        return await self.inner.ttl(self._k(key))

    async def zincrby(
        self, key: str, member: str, amount: float = 1.0, *, ttl_s: float | None = None
    ) -> float:
        return await self.inner.zincrby(self._k(key), member, amount, ttl_s=ttl_s)

    async def ztop(self, keys: list[str], limit: int) -> list[tuple[str, float]]:
        return await self.inner.ztop([self._k(k) for k in keys], limit)

    async def zscores(self, key: str, members: list[str]) -> list[float | None]:
        return await self.inner.zscores(self._k(key), members)

    async def set_bits(self, key: str, offsets: list[int], *, ttl_s: float | None = None) -> None:
        await self.inner.set_bits(self._k(key), offsets, ttl_s=ttl_s)

    async def push_capped(
        self, key: str, values: list[bytes], *, cap: int, ttl_s: float | None = None
    ) -> None:
        await self.inner.push_capped(self._k(key), values, cap=cap, ttl_s=ttl_s)

    async def list_range(self, key: str, limit: int) -> list[bytes]:
        return await self.inner.list_range(self._k(key), limit)

    async def publish(self, channel: str, message: bytes) -> int:
        return await self.inner.publish(self._k(channel), message)

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        return self.inner.subscribe(self._k(channel))

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class NamespacedGate:
    """The gate over the namespaced cache's keys: every key prefixed."""

    inner: Gate
    prefix: str

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def ping(self) -> None:
        await self.inner.ping()

    async def take_tokens(
        self, key: str, *, capacity: float, refill_per_s: float, cost: float = 1.0
    ) -> TokenDecision:
        return await self.inner.take_tokens(
            self._k(key), capacity=capacity, refill_per_s=refill_per_s, cost=cost
        )

    async def admit(
        self,
        buckets: list[Bucket],
        *,
        principal_key: str | None = None,
        user_bucket: Bucket | None = None,
        reads: list[str] | None = None,
        expand: Expansion | None = None,
    ) -> GateOutcome:
        def prefixed(b: Bucket) -> Bucket:
            return replace(b, key=self._k(b.key))

        got = await self.inner.admit(
            [prefixed(b) for b in buckets],
            principal_key=self._k(principal_key) if principal_key is not None else None,
            user_bucket=prefixed(user_bucket) if user_bucket is not None else None,
            reads=[self._k(k) for k in reads or []],
            expand=(
                replace(expand, templates=tuple(self._k(t) for t in expand.templates))
                if expand is not None
                else None
            ),
        )
        refused = got.refused.removeprefix(self.prefix) if got.refused is not None else None
        return replace(got, refused=refused)

    async def close(self) -> None:
        await self.inner.close()


# -- the stack -------------------------------------------------------------------------
@dataclass
class Stack:
    """The social services running (consumers included) with a client on them."""

    kind: str
    settings: Settings
    backends: Backends
    app: FastAPI
    client: httpx.AsyncClient
    users: dict[str, str] = field(default_factory=dict)  # handle -> token

    async def sign_up(self, handle: str, password: str = PASSWORD) -> Account:
        r = await self.client.post("/v1/accounts", json={"handle": handle, "password": password})
        assert r.status_code == 201, r.text
        body = r.json()
        return Account(body["user_id"], body["handle"], body["token"])

    async def bulk_users(self, prefix: str, n: int) -> list[Account]:
        """n accounts made straight in the store (no password), each with a session."""
        now = datetime.now(UTC)
        rows = [
            {"id": uuid.uuid4().hex, "handle": f"{prefix}{i}", "created_at": now} for i in range(n)
        ]
        async with self.backends.database.transaction() as conn:
            await conn.execute(users.insert(), rows)
        store = SessionStore(self.backends)
        tokens = await asyncio.gather(*(store.create(str(r["id"])) for r in rows))
        return [
            Account(str(r["id"]), str(r["handle"]), t) for r, t in zip(rows, tokens, strict=True)
        ]

    async def add_followers(self, creator_id: str, follower_ids: list[str]) -> None:
        """Follows made straight in the store (no events), with the counts."""
        now = datetime.now(UTC)
        async with self.backends.database.transaction() as conn:
            await conn.execute(
                follows.insert(),
                [
                    {"follower_id": f, "followee_id": creator_id, "created_at": now}
                    for f in follower_ids
                ],
            )
            await conn.execute(
                update(users)
                .where(users.c.id == creator_id)
                .values(follower_count=users.c.follower_count + len(follower_ids))
            )

    async def ready_video(
        self,
        owner_id: str,
        *,
        caption: str = "",
        hashtags: list[str] | None = None,
        ready_at: datetime | None = None,
        publish: bool = True,
    ) -> str:
        """Insert a ready video (and its asset) and publish `video.ready`, as the
        upload service and the transcode worker do."""
        video_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        ready = ready_at or now
        sha = hashlib.sha256(video_id.encode()).hexdigest()
        async with self.backends.database.transaction() as conn:
            await conn.execute(
                video_assets.insert().values(
                    sha256=sha,
                    state="ready",
                    source_key=f"uploads/{sha}",
                    master_playlist_key=f"renditions/{sha}/master.m3u8",
                    poster_key=f"renditions/{sha}/poster.jpg",
                    renditions=[],
                    duration_ms=15_000,
                    created_at=now,
                    ready_at=ready,
                )
            )
            await conn.execute(
                videos.insert().values(
                    id=video_id,
                    owner_id=owner_id,
                    caption=caption,
                    hashtags=hashtags or [],
                    state="ready",
                    sha256=sha,
                    asset_sha256=sha,
                    duration_ms=15_000,
                    created_at=now,
                    updated_at=now,
                    ready_at=ready,
                    announced_at=now,
                )
            )
        if publish:
            await EventPublisher(self.backends.bus).publish(
                VideoReady(
                    key=owner_id,
                    payload=VideoReadyPayload(
                        video_id=video_id, owner_id=owner_id, duration_ms=15_000
                    ),
                )
            )
        return video_id


@dataclass(frozen=True)
class Account:
    user_id: str
    handle: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@asynccontextmanager
async def running_app(
    settings: Settings, backends: Backends
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings, SOCIAL_SERVICES, backends=backends)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://social") as client:
            yield app, client


async def open_stack_backends(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, ns: str
) -> tuple[Settings, Backends]:
    if kind == "embedded":
        settings = embedded_settings(tmp_path)
        return settings, await open_backends(settings)
    harness: Harness = request.getfixturevalue("harness")
    settings = Settings(
        data_dir=tmp_path,
        database_url=request.getfixturevalue("mariadb_test_url"),
        bus_url=real_url(harness, "kafka"),
        cache_url=real_url(harness, "redis"),
        widerow_url=real_url(harness, "cassandra").rsplit("/", 1)[0] + "/reelplane_test",
        objects_url=f"file://{tmp_path / 'objects'}",
        bus_partitions=3,
    )
    backends = await open_backends(settings)
    # One MariaDB database per test session: empty it so each test starts clean.
    async with backends.database.transaction() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())
    backends.bus = NamespacedBus(backends.bus, f"{ns}.")
    backends.cache = NamespacedCache(backends.cache, f"{ns}:")
    backends.gate = NamespacedGate(backends.gate, f"{ns}:")
    return settings, backends


@pytest.fixture
def social_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    return TEST_ENV


@pytest.fixture(params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path: Path, ns: str, social_env: dict[str, str]
) -> AsyncIterator[Stack]:
    settings, backends = await open_stack_backends(request.param, tmp_path, request, ns)
    try:
        async with running_app(settings, backends) as (app, client):
            yield Stack(request.param, settings, backends, app, client)
    finally:
        await backends.close()


async def eventually_ok(
    probe: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0, interval_s: float = 0.05
) -> float:
    """Wait until probe() is true; return the seconds it took (fail on timeout)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        if await probe():
            return loop.time() - started
        if loop.time() - started > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)
