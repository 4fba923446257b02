"""Redis adapter of the cache port (redis-py asyncio)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

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
        self, url: str, *, connect_timeout_s: float = 5.0, max_connections: int = 64
    ) -> None:
        # A bounded pool that makes bursts wait for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=connect_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            health_check_interval=30,
        )
        self._client: aioredis.Redis = aioredis.Redis(connection_pool=pool)

    async def ping(self) -> None:
        await self._client.ping()

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(key)
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
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await self._client.aclose()
