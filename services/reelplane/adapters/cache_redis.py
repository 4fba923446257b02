"""Redis adapter of the cache port (redis-py asyncio)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ResponseError

from reelplane.errors import InvalidInput


@dataclass
class _RedisSubscription:
    pubsub: PubSub

    async def messages(self) -> AsyncIterator[bytes]:
        async for message in self.pubsub.listen():
            if message.get("type") == "message":
                data = message["data"]
                yield data if isinstance(data, bytes) else str(data).encode()


class RedisCache:
    """Cache port over one Redis server (or a Redis-protocol proxy)."""

    def __init__(
        self, url: str, *, connect_timeout_s: float = 5.0, max_connections: int = 1024
    ) -> None:
        # redis-py's plain pool: taking a connection from it costs a fraction of
        # what its BlockingConnectionPool costs (a Condition and a timeout per
        # command: ~40 us of CPU, a fifth of a cached feed read). Its bound is
        # only a safety net (one connection per concurrent command; Redis itself
        # takes 10,000 clients).
        pool = aioredis.ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            socket_connect_timeout=connect_timeout_s,
            health_check_interval=30,
        )
        self._client: aioredis.Redis = aioredis.Redis(connection_pool=pool)

    async def ping(self) -> None:
        await self._client.ping()

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(key)
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a string: {exc}") from None
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = await self._client.mget(keys)
        return [v if v is None or isinstance(v, bytes) else str(v).encode() for v in values]

    async def set(
        self, key: str, value: bytes, *, ttl_s: float | None = None, only_if_absent: bool = False
    ) -> bool:
        px = max(1, int(ttl_s * 1000)) if ttl_s is not None else None
        stored = await self._client.set(key, value, px=px, nx=only_if_absent)
        return bool(stored)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._client.delete(*keys))

    async def incr(self, key: str, amount: int = 1) -> int:
        try:
            return int(await self._client.incrby(key, amount))
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold an integer: {exc}") from None

    async def expire(self, key: str, ttl_s: float) -> bool:
        return bool(await self._client.pexpire(key, max(1, int(ttl_s * 1000))))

    async def ttl(self, key: str) -> float | None:
        ms = int(await self._client.pttl(key))
        return ms / 1000 if ms >= 0 else None

    async def zincrby(
        self, key: str, member: str, amount: float = 1.0, *, ttl_s: float | None = None
    ) -> float:
        try:
            if ttl_s is None:
                return float(await self._client.zincrby(key, amount, member) or 0.0)
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zincrby(key, amount, member)
                pipe.pexpire(key, max(1, int(ttl_s * 1000)))
                score, _ = await pipe.execute()
            return float(score)
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a sorted set: {exc}") from None

    async def ztop(self, keys: list[str], limit: int) -> list[tuple[str, float]]:
        if not keys or limit <= 0:
            return []
        try:
            pairs = cast(
                "list[tuple[bytes, float]]", await self._client.zunion(keys, withscores=True)
            )
        except ResponseError as exc:
            raise InvalidInput(f"a key of {keys[:3]!r}... is not a sorted set: {exc}") from None
        totals = [
            (m.decode() if isinstance(m, bytes) else str(m), float(score)) for m, score in pairs
        ]
        return sorted(totals, key=lambda ms: (-ms[1], ms[0]))[:limit]

    async def zscores(self, key: str, members: list[str]) -> list[float | None]:
        if not members:
            return []
        try:
            scores = await self._client.zmscore(key, members)
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a sorted set: {exc}") from None
        return [None if s is None else float(s) for s in scores]

    async def set_bits(self, key: str, offsets: list[int], *, ttl_s: float | None = None) -> None:
        if any(o < 0 for o in offsets):
            raise ValueError("bit offsets must be >= 0")
        if not offsets and ttl_s is None:
            return
        # One BITFIELD sets them all; with a TTL, in one MULTI with the PEXPIRE.
        args: list[str | int] = []
        for offset in offsets:
            args += ["SET", "u1", offset, 1]
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                if args:
                    pipe.execute_command("BITFIELD", key, *args)
                if ttl_s is not None:
                    pipe.pexpire(key, max(1, int(ttl_s * 1000)))
                await pipe.execute()
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a string: {exc}") from None

    async def push_capped(
        self, key: str, values: list[bytes], *, cap: int, ttl_s: float | None = None
    ) -> None:
        if cap < 1:
            raise ValueError("cap must be >= 1")
        if not values:
            return
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.lpush(key, *values)
                pipe.ltrim(key, 0, cap - 1)
                if ttl_s is not None:
                    pipe.pexpire(key, max(1, int(ttl_s * 1000)))
                await pipe.execute()
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a list: {exc}") from None

    async def list_range(self, key: str, limit: int) -> list[bytes]:
        if limit <= 0:
            return []
        try:
            items = await self._client.lrange(key, 0, limit - 1)
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a list: {exc}") from None
        return [i if isinstance(i, bytes) else str(i).encode() for i in items]

    async def publish(self, channel: str, message: bytes) -> int:
        return int(await self._client.publish(channel, message))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[_RedisSubscription]:
        pubsub = self._client.pubsub()
        await pubsub.subscribe(channel)
        try:
            yield _RedisSubscription(pubsub)
        finally:
            await pubsub.unsubscribe(channel)
            await pubsub.aclose()

    async def close(self) -> None:
        await self._client.aclose()
