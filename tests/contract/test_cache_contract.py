"""The cache port's contract, run on the in-process cache and on Redis."""

from __future__ import annotations

import asyncio
import json

import pytest

from reelplane.errors import InvalidInput
from reelplane.ports.cache import ITEM_PLACEHOLDER, USER_PLACEHOLDER, Bucket, Cache, Expansion


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
    with pytest.raises(InvalidInput):
        await cache.take_tokens(f"{ns}:s", capacity=1, refill_per_s=1)


async def test_token_bucket_allows_a_burst_then_refuses_with_retry_after(
    cache: Cache, ns: str
) -> None:
    key = f"{ns}:bucket"
    decisions = [await cache.take_tokens(key, capacity=5, refill_per_s=2) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[0].tokens_left == pytest.approx(4, abs=0.05)
    refused = decisions[-1]
    # Empty bucket refilling at 2 tokens/s: about 0.5 s until one token is back.
    assert 0.3 < refused.retry_after_s <= 0.5
    assert refused.tokens_left < 1
    left = await cache.ttl(key)
    assert left is not None and left <= 5 / 2 + 1


async def test_token_bucket_refills_with_time(cache: Cache, ns: str) -> None:
    key = f"{ns}:bucket"
    for _ in range(2):
        assert (await cache.take_tokens(key, capacity=2, refill_per_s=10)).allowed
    assert not (await cache.take_tokens(key, capacity=2, refill_per_s=10)).allowed
    await asyncio.sleep(0.25)  # 2.5 tokens' worth of refill, capped at 2
    assert (await cache.take_tokens(key, capacity=2, refill_per_s=10, cost=2)).allowed


async def test_token_bucket_is_atomic_under_concurrency(cache: Cache, ns: str) -> None:
    key = f"{ns}:bucket"
    decisions = await asyncio.gather(
        *(cache.take_tokens(key, capacity=20, refill_per_s=0.01) for _ in range(60))
    )
    assert sum(d.allowed for d in decisions) == 20


async def test_token_bucket_rejects_a_cost_above_capacity(cache: Cache, ns: str) -> None:
    with pytest.raises(ValueError, match="capacity"):
        await cache.take_tokens(f"{ns}:b", capacity=1, refill_per_s=1, cost=2)


def _principal(user_id: str) -> bytes:
    return json.dumps({"user_id": user_id, "handle": "ada"}).encode()


async def test_gate_without_a_principal_only_draws_the_buckets(cache: Cache, ns: str) -> None:
    ip = Bucket(f"{ns}:ip", capacity=2, refill_per_s=0.01)
    first = await cache.gate([ip], principal_key=f"{ns}:missing", reads=[f"{ns}:page"])
    assert (first.refused, first.principal, first.values) == (None, None, ())
    await cache.gate([ip])
    refused = await cache.gate([ip], principal_key=f"{ns}:missing")
    assert refused.refused == ip.key
    assert refused.retry_after_s > 1


async def test_gate_resolves_the_principal_then_draws_its_bucket_and_reads(
    cache: Cache, ns: str
) -> None:
    await cache.set(f"{ns}:session", _principal("u1"))
    await cache.set(f"{ns}:u1:page", b"page-bytes")
    user = Bucket(f"{ns}:user:{USER_PLACEHOLDER}", capacity=1, refill_per_s=0.01)
    reads = [f"{ns}:{USER_PLACEHOLDER}:page", f"{ns}:{USER_PLACEHOLDER}:none"]
    ip = Bucket(f"{ns}:ip", capacity=10, refill_per_s=1)
    got = await cache.gate([ip], principal_key=f"{ns}:session", user_bucket=user, reads=reads)
    assert got.refused is None
    assert got.principal == _principal("u1")
    assert got.values == (b"page-bytes", None)
    # The user's bucket (key with the user id filled in) is empty now: refused, no reads.
    again = await cache.gate([ip], principal_key=f"{ns}:session", user_bucket=user, reads=reads)
    assert again.refused == f"{ns}:user:u1"
    assert again.principal == _principal("u1")
    assert again.values == ()
    assert not (await cache.take_tokens(f"{ns}:user:u1", capacity=1, refill_per_s=0.01)).allowed


async def test_gate_expands_the_items_a_read_lists_into_more_reads(cache: Cache, ns: str) -> None:
    await cache.set(f"{ns}:session", _principal("u4"))
    await cache.set(f"{ns}:u4:page", b"v1 v2  v3\nbody v9\n")
    await cache.set(f"{ns}:ctr:v1", b"7")
    await cache.set(f"{ns}:ctr:v3", b"9")
    await cache.set(f"{ns}:liked:u4:v2", b"1")
    await cache.zincrby(f"{ns}:ctr:v2", "m")  # another type reads as missing
    expand = Expansion(1, (f"{ns}:ctr:{ITEM_PLACEHOLDER}", f"{ns}:liked:{{user}}:{{item}}"))
    reads = [f"{ns}:none", f"{ns}:{{user}}:page"]
    got = await cache.gate([], principal_key=f"{ns}:session", reads=reads, expand=expand)
    assert got.values == (None, b"v1 v2  v3\nbody v9\n", b"7", None, None, b"1", b"9", None)
    # A missing read, one without a first line, or one that lists nothing: no more reads.
    for value in (None, b"v1 v2", b"\nv1 v2\n"):
        if value is None:
            await cache.delete(f"{ns}:u4:page")
        else:
            await cache.set(f"{ns}:u4:page", value)
        got = await cache.gate([], principal_key=f"{ns}:session", reads=reads, expand=expand)
        assert got.values == (None, value)
    # A refused user bucket reads nothing, expansion included.
    user = Bucket(f"{ns}:user:{USER_PLACEHOLDER}", capacity=1, refill_per_s=0.01)
    await cache.take_tokens(f"{ns}:user:u4", capacity=1, refill_per_s=0.01)
    refused = await cache.gate(
        [], principal_key=f"{ns}:session", user_bucket=user, reads=reads, expand=expand
    )
    assert (refused.refused, refused.values) == (f"{ns}:user:u4", ())
    # A bare template: the items are the keys.
    await cache.set(f"{ns}:u4:page", f"{ns}:ctr:v1 {ns}:ctr:v3 {ns}:nope\n".encode())
    bare = Expansion(1, (ITEM_PLACEHOLDER,))
    got = await cache.gate([], principal_key=f"{ns}:session", reads=reads, expand=bare)
    assert got.values[2:] == (b"7", b"9", None)
    # A template must name the item exactly once.
    for templates in ((f"{ns}:ctr",), (f"{ns}:{{item}}:{{item}}",)):
        with pytest.raises(ValueError, match="exactly once"):
            await cache.gate(
                [], principal_key=f"{ns}:session", reads=reads, expand=Expansion(1, templates)
            )


async def test_gate_stops_at_the_first_refusing_bucket(cache: Cache, ns: str) -> None:
    first = Bucket(f"{ns}:a", capacity=1, refill_per_s=0.01)
    second = Bucket(f"{ns}:b", capacity=5, refill_per_s=0.01)
    await cache.gate([first, second])
    refused = await cache.gate([first, second])
    assert refused.refused == first.key
    # The second bucket gave one token, to the first call only.
    left = await cache.take_tokens(second.key, capacity=5, refill_per_s=0.01)
    assert left.tokens_left == pytest.approx(3, abs=0.05)


async def test_gate_returns_a_principal_without_a_user_id_but_reads_nothing(
    cache: Cache, ns: str
) -> None:
    await cache.set(f"{ns}:session", b"not json")
    await cache.set(f"{ns}:x", b"secret")
    got = await cache.gate([], principal_key=f"{ns}:session", reads=[f"{ns}:x"])
    assert (got.refused, got.principal, got.values) == (None, b"not json", ())


async def test_gate_reads_values_of_another_type_as_missing(cache: Cache, ns: str) -> None:
    await cache.set(f"{ns}:session", _principal("u2"))
    await cache.zincrby(f"{ns}:u2:z", "m")
    got = await cache.gate([], principal_key=f"{ns}:session", reads=[f"{ns}:{{user}}:z"])
    assert got.values == (None,)


async def test_gate_on_a_key_that_is_not_a_bucket_is_invalid(cache: Cache, ns: str) -> None:
    await cache.set(f"{ns}:s", b"v")
    with pytest.raises(InvalidInput):
        await cache.gate([Bucket(f"{ns}:s", capacity=1, refill_per_s=1)])


async def test_gate_still_works_after_redis_forgets_its_scripts(cache: Cache, ns: str) -> None:
    from reelplane.adapters.cache_redis import RedisCache

    if not isinstance(cache, RedisCache):
        pytest.skip("only Redis keeps a script cache (SCRIPT FLUSH after a restart)")
    await cache.set(f"{ns}:session", _principal("u3"))
    await cache.set(f"{ns}:u3:page", b"p")
    await cache._client.script_flush()  # what a Redis restart does
    got = await cache.gate([], principal_key=f"{ns}:session", reads=[f"{ns}:{{user}}:page"])
    assert got.values == (b"p",)


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
