"""Cache port: counters, session cache, feed pages, trending windows, pub/sub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Subscription(Protocol):
    """Messages published on one channel after the subscription started."""

    def messages(self) -> AsyncIterator[bytes]: ...


class Cache(Protocol):
    """Key/value with TTLs, atomic counters and pub/sub (Redis semantics)."""

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: list[str]) -> list[bytes | None]: ...

    async def set(
        self, key: str, value: bytes, *, ttl_s: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Store value; with only_if_absent, store only when the key is missing.
        Returns whether it was stored."""

    async def delete(self, *keys: str) -> int:
        """Delete keys; return how many existed."""

    async def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add amount (a missing key counts as 0); return the new value."""

    async def expire(self, key: str, ttl_s: float) -> bool:
        """Set a TTL on an existing key; False when the key does not exist."""

    async def ttl(self, key: str) -> float | None:
        """Seconds left, None when the key has no TTL or does not exist."""

    async def publish(self, channel: str, message: bytes) -> int:
        """Publish to a channel; return the number of receivers."""

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to a channel for as long as the context is open."""

    async def close(self) -> None: ...
