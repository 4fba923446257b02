"""In-process cache with Redis-like semantics, for `reelplane dev` and unit tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from reelplane.errors import InvalidInput
from reelplane.ports.gate import TokenBucketState


@dataclass
class _Entry:
    value: bytes
    expires_at: float | None  # monotonic seconds
    zset: dict[str, float] | None = None  # set when the key holds a sorted set
    bucket: TokenBucketState | None = None  # set when the key holds a token bucket
    items: list[bytes] | None = None  # set when the key holds a list, newest first

    @property
    def plain(self) -> bool:
        """Whether the key holds a string (Redis' string type)."""
        return self.zset is None and self.bucket is None and self.items is None


@dataclass(eq=False)  # identity hash: kept in a set per channel
class _MemorySubscription:
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)

    async def messages(self) -> AsyncIterator[bytes]:
        while True:
            yield await self.queue.get()


class MemoryCache:
    """A dict with lazy expiry. Every operation runs without awaiting in between,
    so each is atomic on the event loop, as the Redis commands are."""

    def __init__(self) -> None:
        self._data: dict[str, _Entry] = {}
        self._subscribers: dict[str, set[_MemorySubscription]] = {}

    def _live(self, key: str) -> _Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= time.monotonic():
            del self._data[key]
            return None
        return entry

    async def ping(self) -> None:
        return None

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        if entry is not None and not entry.plain:
            raise InvalidInput(f"cache key {key!r} does not hold a string")
        return entry.value if entry else None

    def _plain(self, key: str) -> bytes | None:
        """Like one key of MGET: a key of another type reads as missing."""
        entry = self._live(key)
        return entry.value if entry is not None and entry.plain else None

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        return [self._plain(k) for k in keys]

    # -- what the in-process gate (`reelplane.adapters.gate_memory`) reads and
    # writes in this store: synchronous, so its steps stay atomic.
    def peek(self, key: str) -> bytes | None:
        """One key as MGET reads it: a key of another type reads as missing."""
        return self._plain(key)

    def bucket(self, key: str) -> TokenBucketState | None:
        """The token bucket at key (None when missing); InvalidInput when the
        key holds something else."""
        entry = self._live(key)
        if entry is not None and entry.bucket is None:
            raise InvalidInput(f"cache key {key!r} does not hold a token bucket")
        return entry.bucket if entry is not None else None

    def put_bucket(self, key: str, state: TokenBucketState, *, ttl_s: float) -> None:
        self._data[key] = _Entry(b"", time.monotonic() + ttl_s, bucket=state)

    async def set(
        self, key: str, value: bytes, *, ttl_s: float | None = None, only_if_absent: bool = False
    ) -> bool:
        if only_if_absent and self._live(key) is not None:
            return False
        expires = time.monotonic() + ttl_s if ttl_s is not None else None
        self._data[key] = _Entry(bytes(value), expires)
        return True

    async def delete(self, *keys: str) -> int:
        count = 0
        for key in keys:
            if self._live(key) is not None:
                del self._data[key]
                count += 1
        return count

    async def incr(self, key: str, amount: int = 1) -> int:
        entry = self._live(key)
        if entry is not None and not entry.plain:
            raise InvalidInput(f"cache key {key!r} does not hold an integer")
        try:
            current = int(entry.value) if entry else 0
        except ValueError:
            raise InvalidInput(f"cache key {key!r} does not hold an integer") from None
        new = current + amount
        self._data[key] = _Entry(str(new).encode(), entry.expires_at if entry else None)
        return new

    async def expire(self, key: str, ttl_s: float) -> bool:
        entry = self._live(key)
        if entry is None:
            return False
        entry.expires_at = time.monotonic() + ttl_s
        return True

    async def ttl(self, key: str) -> float | None:
        entry = self._live(key)
        if entry is None or entry.expires_at is None:
            return None
        return max(0.0, entry.expires_at - time.monotonic())

    async def zincrby(
        self, key: str, member: str, amount: float = 1.0, *, ttl_s: float | None = None
    ) -> float:
        entry = self._live(key)
        if entry is None:
            entry = _Entry(b"", None, zset={})
            self._data[key] = entry
        if entry.zset is None:
            raise InvalidInput(f"cache key {key!r} does not hold a sorted set")
        score = entry.zset.get(member, 0.0) + amount
        entry.zset[member] = score
        if ttl_s is not None:
            entry.expires_at = time.monotonic() + ttl_s
        return score

    async def ztop(self, keys: list[str], limit: int) -> list[tuple[str, float]]:
        totals: dict[str, float] = {}
        for key in keys:
            entry = self._live(key)
            if entry is None:
                continue
            if entry.zset is None:
                raise InvalidInput(f"cache key {key!r} does not hold a sorted set")
            for member, score in entry.zset.items():
                totals[member] = totals.get(member, 0.0) + score
        ranked = sorted(totals.items(), key=lambda ms: (-ms[1], ms[0]))
        return ranked[: max(0, limit)]

    async def zscores(self, key: str, members: list[str]) -> list[float | None]:
        entry = self._live(key)
        if entry is None:
            return [None] * len(members)
        if entry.zset is None:
            raise InvalidInput(f"cache key {key!r} does not hold a sorted set")
        return [entry.zset.get(m) for m in members]

    async def set_bits(self, key: str, offsets: list[int], *, ttl_s: float | None = None) -> None:
        if any(o < 0 for o in offsets):
            raise ValueError("bit offsets must be >= 0")
        entry = self._live(key)
        if entry is not None and not entry.plain:
            raise InvalidInput(f"cache key {key!r} does not hold a string")
        data = bytearray(entry.value if entry else b"")
        if offsets:
            need = max(offsets) // 8 + 1
            if need > len(data):
                data.extend(bytes(need - len(data)))
        for offset in offsets:
            data[offset // 8] |= 0x80 >> (offset % 8)
        expires = entry.expires_at if entry else None
        if ttl_s is not None:
            expires = time.monotonic() + ttl_s
        if entry is not None or offsets:
            self._data[key] = _Entry(bytes(data), expires)

    async def push_capped(
        self, key: str, values: list[bytes], *, cap: int, ttl_s: float | None = None
    ) -> None:
        if cap < 1:
            raise ValueError("cap must be >= 1")
        if not values:
            return
        entry = self._live(key)
        if entry is not None and entry.items is None:
            raise InvalidInput(f"cache key {key!r} does not hold a list")
        if entry is None:
            entry = _Entry(b"", None, items=[])
            self._data[key] = entry
        assert entry.items is not None
        entry.items[:0] = [bytes(v) for v in reversed(values)]
        del entry.items[cap:]
        if ttl_s is not None:
            entry.expires_at = time.monotonic() + ttl_s

    async def list_range(self, key: str, limit: int) -> list[bytes]:
        entry = self._live(key)
        if entry is None:
            return []
        if entry.items is None:
            raise InvalidInput(f"cache key {key!r} does not hold a list")
        return list(entry.items[: max(0, limit)])

    async def publish(self, channel: str, message: bytes) -> int:
        subs = self._subscribers.get(channel, set())
        for sub in subs:
            sub.queue.put_nowait(bytes(message))
        return len(subs)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[_MemorySubscription]:
        sub = _MemorySubscription()
        self._subscribers.setdefault(channel, set()).add(sub)
        try:
            yield sub
        finally:
            self._subscribers[channel].discard(sub)

    async def close(self) -> None:
        self._data.clear()
