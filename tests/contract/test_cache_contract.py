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


# -- sorted sets (trending windows) and token buckets (rate limits) ---------------
async def test_zincrby_accumulates_and_ztop_sums_across_keys(cache: Cache, ns: str) -> None:
    assert await cache.zincrby(f"{ns}:w1", "a") == 1.0
    assert await cache.zincrby(f"{ns}:w1", "a", 2.5) == 3.5
    await cache.zincrby(f"{ns}:w1", "b", 1)
    await cache.zincrby(f"{ns}:w2", "b", 3)
    await cache.zincrby(f"{ns}:w2", "c", 3.5)
    top = await cache.ztop([f"{ns}:w1", f"{ns}:w2", f"{ns}:missing"], 10)
    # b = 4.0 first; a and c tie at 3.5 and are ordered by member.
    assert top == [("b", 4.0), ("a", 3.5), ("c", 3.5)]
    assert await cache.ztop([f"{ns}:w1", f"{ns}:w2"], 1) == [("b", 4.0)]
    assert await cache.ztop([f"{ns}:missing"], 5) == []
    assert await cache.ztop([], 5) == []


async def test_zscores_reads_members_in_order_with_none_for_missing(cache: Cache, ns: str) -> None:
    await cache.zincrby(f"{ns}:z", "a", 2)
    await cache.zincrby(f"{ns}:z", "b", 0.5)
    assert await cache.zscores(f"{ns}:z", ["b", "x", "a"]) == [0.5, None, 2.0]
    assert await cache.zscores(f"{ns}:missing", ["a"]) == [None]
    assert await cache.zscores(f"{ns}:z", []) == []
    await cache.set(f"{ns}:s", b"text")
    with pytest.raises(InvalidInput):
        await cache.zscores(f"{ns}:s", ["a"])


async def test_zincrby_with_ttl_expires_the_set(cache: Cache, ns: str) -> None:
    await cache.zincrby(f"{ns}:w", "a", ttl_s=0.3)
    left = await cache.ttl(f"{ns}:w")
    assert left is not None and 0 < left <= 0.3
    await asyncio.sleep(0.45)
    assert await cache.ztop([f"{ns}:w"], 5) == []


async def test_concurrent_zincrby_is_atomic(cache: Cache, ns: str) -> None:
    await asyncio.gather(*(cache.zincrby(f"{ns}:w", "v") for _ in range(200)))
    assert await cache.ztop([f"{ns}:w"], 1) == [("v", 200.0)]


async def test_sorted_set_ops_on_a_string_key_are_invalid(cache: Cache, ns: str) -> None:
    await cache.set(f"{ns}:s", b"text")
    with pytest.raises(InvalidInput):
        await cache.zincrby(f"{ns}:s", "a")


# -- bitsets (seen filters) and capped lists (recent histories) --------------------
async def test_set_bits_sets_redis_ordered_bits_read_back_with_get(cache: Cache, ns: str) -> None:
    await cache.set_bits(f"{ns}:b", [0, 9, 23])
    # Offset 0 is the high bit of byte 0; the string grows to the highest offset's byte.
    assert await cache.get(f"{ns}:b") == bytes([0b1000_0000, 0b0100_0000, 0b0000_0001])
    await cache.set_bits(f"{ns}:b", [1, 9])
    assert await cache.get(f"{ns}:b") == bytes([0b1100_0000, 0b0100_0000, 0b0000_0001])
    assert await cache.ttl(f"{ns}:b") is None


async def test_set_bits_with_ttl_expires_the_bitset(cache: Cache, ns: str) -> None:
    await cache.set_bits(f"{ns}:b", [5], ttl_s=0.3)
    left = await cache.ttl(f"{ns}:b")
    assert left is not None and 0 < left <= 0.3
    await asyncio.sleep(0.45)
    assert await cache.get(f"{ns}:b") is None


async def test_concurrent_set_bits_lose_no_bit(cache: Cache, ns: str) -> None:
    await asyncio.gather(*(cache.set_bits(f"{ns}:b", [i]) for i in range(64)))
    assert await cache.get(f"{ns}:b") == b"\xff" * 8


async def test_push_capped_keeps_the_newest_first(cache: Cache, ns: str) -> None:
    await cache.push_capped(f"{ns}:l", [b"a", b"b"], cap=3)
    await cache.push_capped(f"{ns}:l", [b"c", b"d"], cap=3)
    assert await cache.list_range(f"{ns}:l", 10) == [b"d", b"c", b"b"]
    assert await cache.list_range(f"{ns}:l", 2) == [b"d", b"c"]
    assert await cache.list_range(f"{ns}:missing", 10) == []
    assert await cache.list_range(f"{ns}:l", 0) == []


async def test_push_capped_with_ttl_expires_the_list(cache: Cache, ns: str) -> None:
    await cache.push_capped(f"{ns}:l", [b"a"], cap=5, ttl_s=0.3)
    left = await cache.ttl(f"{ns}:l")
    assert left is not None and 0 < left <= 0.3
    await asyncio.sleep(0.45)
    assert await cache.list_range(f"{ns}:l", 5) == []


async def test_list_and_bit_ops_on_keys_of_another_type_are_invalid(cache: Cache, ns: str) -> None:
    await cache.zincrby(f"{ns}:z", "a")
    await cache.push_capped(f"{ns}:l", [b"x"], cap=2)
    with pytest.raises(InvalidInput):
        await cache.set_bits(f"{ns}:z", [1])
    with pytest.raises(InvalidInput):
        await cache.push_capped(f"{ns}:z", [b"x"], cap=2)
    with pytest.raises(InvalidInput):
        await cache.list_range(f"{ns}:z", 2)
    with pytest.raises(InvalidInput):
        await cache.get(f"{ns}:l")
    assert await cache.get_many([f"{ns}:l"]) == [None]
