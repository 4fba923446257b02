"""Cache port: counters, session cache, feed pages, trending windows, pub/sub,
bitsets (seen filters) and capped lists (recent histories)."""

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

    async def zincrby(
        self, key: str, member: str, amount: float = 1.0, *, ttl_s: float | None = None
    ) -> float:
        """Add amount to member's score in the sorted set at key (missing counts as 0);
        with ttl_s, (re)set the key's TTL. Returns the new score."""

    async def ztop(self, keys: list[str], limit: int) -> list[tuple[str, float]]:
        """Members of the union of the sorted sets at keys with their summed
        scores, highest first (ties by member), at most `limit`."""

    async def set_bits(self, key: str, offsets: list[int], *, ttl_s: float | None = None) -> None:
        """Set the bits at `offsets` of the string at key to 1 (Redis SETBIT order:
        offset 0 is the high bit of byte 0), zero-padding a missing or short string;
        with ttl_s, (re)set the key's TTL. Read the bits back with `get`. The seen
        filter is a Bloom filter built on this (Redis 7.0 has no Bloom module)."""

    async def push_capped(
        self, key: str, values: list[bytes], *, cap: int, ttl_s: float | None = None
    ) -> None:
        """Prepend values to the list at key, one by one (the last given ends up
        first: newest first), then keep only the first `cap`; with ttl_s, (re)set
        the key's TTL. One atomic step."""

    async def list_range(self, key: str, limit: int) -> list[bytes]:
        """The first `limit` items of the list at key (newest first); [] when missing."""

    async def zscores(self, key: str, members: list[str]) -> list[float | None]:
        """The scores of `members` in the sorted set at key, in order (None for a
        member, or a key, that is missing): Redis ZMSCORE."""

    async def publish(self, channel: str, message: bytes) -> int:
        """Publish to a channel; return the number of receivers."""

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to a channel for as long as the context is open."""

    async def close(self) -> None: ...
