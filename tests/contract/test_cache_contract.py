"""The cache port's contract, run on the in-process cache and on Redis."""

from __future__ import annotations

import asyncio

import pytest

from reelplane.errors import InvalidInput
from reelplane.ports.cache import Cache


async def test_set_then_get_returns_the_bytes(cache: Cache, ns: str) -> None:
    assert await cache.get(f"{ns}:missing") is None
    assert await cache.set(f"{ns}:k", b"\x00value")
    assert await cache.get(f"{ns}:k") == b"\x00value"
    assert await cache.get_many([f"{ns}:k", f"{ns}:missing"]) == [b"\x00value", None]


async def test_only_if_absent_keeps_the_first_value(cache: Cache, ns: str) -> None:
    assert await cache.set(f"{ns}:k", b"first", only_if_absent=True)
    assert not await cache.set(f"{ns}:k", b"second", only_if_absent=True)
    assert await cache.get(f"{ns}:k") == b"first"


async def test_delete_counts_existing_keys(cache: Cache, ns: str) -> None:
    await cache.set(f"{ns}:a", b"1")
    assert await cache.delete(f"{ns}:a", f"{ns}:b") == 1
    assert await cache.get(f"{ns}:a") is None


async def test_ttl_expires_the_key(cache: Cache, ns: str) -> None:
    await cache.set(f"{ns}:k", b"v", ttl_s=0.3)
    left = await cache.ttl(f"{ns}:k")
    assert left is not None and 0 < left <= 0.3
    await asyncio.sleep(0.45)
    assert await cache.get(f"{ns}:k") is None
    assert await cache.ttl(f"{ns}:k") is None


async def test_expire_sets_a_ttl_only_on_existing_keys(cache: Cache, ns: str) -> None:
    assert not await cache.expire(f"{ns}:missing", 5)
    await cache.set(f"{ns}:k", b"v")
    assert await cache.ttl(f"{ns}:k") is None
    assert await cache.expire(f"{ns}:k", 0.2)
    await asyncio.sleep(0.35)
    assert await cache.get(f"{ns}:k") is None


async def test_concurrent_increments_are_atomic(cache: Cache, ns: str) -> None:
    results = await asyncio.gather(*(cache.incr(f"{ns}:n") for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await cache.incr(f"{ns}:n", 10) == 210
    assert await cache.incr(f"{ns}:n", -10) == 200


async def test_increment_keeps_the_ttl(cache: Cache, ns: str) -> None:
    await cache.set(f"{ns}:n", b"1", ttl_s=5)
    await cache.incr(f"{ns}:n")
    left = await cache.ttl(f"{ns}:n")
    assert left is not None and left > 4


async def test_increment_of_a_non_integer_is_invalid(cache: Cache, ns: str) -> None:
    await cache.set(f"{ns}:k", b"text")
    with pytest.raises(InvalidInput):
        await cache.incr(f"{ns}:k")


async def test_subscribers_receive_published_messages_in_order(cache: Cache, ns: str) -> None:
    channel = f"{ns}:events"
    assert await cache.publish(channel, b"nobody listens") == 0
    async with cache.subscribe(channel) as sub:
        received: list[bytes] = []

        async def listen() -> None:
            async for message in sub.messages():
                received.append(message)
                if len(received) == 3:
                    return

        task = asyncio.create_task(listen())
        await asyncio.sleep(0.05)
        for m in (b"one", b"two", b"three"):
            assert await cache.publish(channel, m) == 1
        await asyncio.wait_for(task, 5)
    assert received == [b"one", b"two", b"three"]
