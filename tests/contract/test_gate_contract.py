"""The gate port's contract, run on the in-process gate and on Redis, each over
the store its cache adapter writes (sessions, pages and counters are written
through the cache port and read by the gate)."""

from __future__ import annotations

import asyncio
import json

import pytest

from reelplane.errors import InvalidInput
from reelplane.ports.gate import ITEM_PLACEHOLDER, USER_PLACEHOLDER, Bucket, Expansion
from tests.contract.conftest import GateAndCache


async def test_take_tokens_on_a_key_of_another_type_is_invalid(both: GateAndCache, ns: str) -> None:
    await both.cache.set(f"{ns}:s", b"text")
    with pytest.raises(InvalidInput):
        await both.gate.take_tokens(f"{ns}:s", capacity=1, refill_per_s=1)


async def test_token_bucket_allows_a_burst_then_refuses_with_retry_after(
    both: GateAndCache, ns: str
) -> None:
    key = f"{ns}:bucket"
    decisions = [await both.gate.take_tokens(key, capacity=5, refill_per_s=2) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[0].tokens_left == pytest.approx(4, abs=0.05)
    refused = decisions[-1]
    # Empty bucket refilling at 2 tokens/s: about 0.5 s until one token is back.
    assert 0.3 < refused.retry_after_s <= 0.5
    assert refused.tokens_left < 1
    left = await both.cache.ttl(key)
    assert left is not None and left <= 5 / 2 + 1


async def test_token_bucket_refills_with_time(both: GateAndCache, ns: str) -> None:
    key = f"{ns}:bucket"
    for _ in range(2):
        assert (await both.gate.take_tokens(key, capacity=2, refill_per_s=10)).allowed
    assert not (await both.gate.take_tokens(key, capacity=2, refill_per_s=10)).allowed
    await asyncio.sleep(0.25)  # 2.5 tokens' worth of refill, capped at 2
    assert (await both.gate.take_tokens(key, capacity=2, refill_per_s=10, cost=2)).allowed


async def test_token_bucket_is_atomic_under_concurrency(both: GateAndCache, ns: str) -> None:
    key = f"{ns}:bucket"
    decisions = await asyncio.gather(
        *(both.gate.take_tokens(key, capacity=20, refill_per_s=0.01) for _ in range(60))
    )
    assert sum(d.allowed for d in decisions) == 20


async def test_token_bucket_rejects_a_cost_above_capacity(both: GateAndCache, ns: str) -> None:
    with pytest.raises(ValueError, match="capacity"):
        await both.gate.take_tokens(f"{ns}:b", capacity=1, refill_per_s=1, cost=2)


def _principal(user_id: str) -> bytes:
    return json.dumps({"user_id": user_id, "handle": "ada"}).encode()


async def test_admit_without_a_principal_only_draws_the_buckets(
    both: GateAndCache, ns: str
) -> None:
    ip = Bucket(f"{ns}:ip", capacity=2, refill_per_s=0.01)
    first = await both.gate.admit([ip], principal_key=f"{ns}:missing", reads=[f"{ns}:page"])
    assert (first.refused, first.principal, first.values) == (None, None, ())
    await both.gate.admit([ip])
    refused = await both.gate.admit([ip], principal_key=f"{ns}:missing")
    assert refused.refused == ip.key
    assert refused.retry_after_s > 1


async def test_admit_resolves_the_principal_then_draws_its_bucket_and_reads(
    both: GateAndCache, ns: str
) -> None:
    await both.cache.set(f"{ns}:session", _principal("u1"))
    await both.cache.set(f"{ns}:u1:page", b"page-bytes")
    user = Bucket(f"{ns}:user:{USER_PLACEHOLDER}", capacity=1, refill_per_s=0.01)
    reads = [f"{ns}:{USER_PLACEHOLDER}:page", f"{ns}:{USER_PLACEHOLDER}:none"]
    ip = Bucket(f"{ns}:ip", capacity=10, refill_per_s=1)
    got = await both.gate.admit([ip], principal_key=f"{ns}:session", user_bucket=user, reads=reads)
    assert got.refused is None
    assert got.principal == _principal("u1")
    assert got.values == (b"page-bytes", None)
    # The user's bucket (key with the user id filled in) is empty now: refused, no reads.
    again = await both.gate.admit(
        [ip], principal_key=f"{ns}:session", user_bucket=user, reads=reads
    )
    assert again.refused == f"{ns}:user:u1"
    assert again.principal == _principal("u1")
    assert again.values == ()
    assert not (await both.gate.take_tokens(f"{ns}:user:u1", capacity=1, refill_per_s=0.01)).allowed


async def test_admit_expands_the_items_a_read_lists_into_more_reads(
    both: GateAndCache, ns: str
) -> None:
    await both.cache.set(f"{ns}:session", _principal("u4"))
    await both.cache.set(f"{ns}:u4:page", b"v1 v2  v3\nbody v9\n")
    await both.cache.set(f"{ns}:ctr:v1", b"7")
    await both.cache.set(f"{ns}:ctr:v3", b"9")
    await both.cache.set(f"{ns}:liked:u4:v2", b"1")
    await both.cache.zincrby(f"{ns}:ctr:v2", "m")  # another type reads as missing
    expand = Expansion(1, (f"{ns}:ctr:{ITEM_PLACEHOLDER}", f"{ns}:liked:{{user}}:{{item}}"))
    reads = [f"{ns}:none", f"{ns}:{{user}}:page"]
    got = await both.gate.admit([], principal_key=f"{ns}:session", reads=reads, expand=expand)
    assert got.values == (None, b"v1 v2  v3\nbody v9\n", b"7", None, None, b"1", b"9", None)
    # A missing read, one without a first line, or one that lists nothing: no more reads.
    for value in (None, b"v1 v2", b"\nv1 v2\n"):
        if value is None:
            await both.cache.delete(f"{ns}:u4:page")
        else:
            await both.cache.set(f"{ns}:u4:page", value)
        got = await both.gate.admit([], principal_key=f"{ns}:session", reads=reads, expand=expand)
        assert got.values == (None, value)
    # A refused user bucket reads nothing, expansion included.
    user = Bucket(f"{ns}:user:{USER_PLACEHOLDER}", capacity=1, refill_per_s=0.01)
    await both.gate.take_tokens(f"{ns}:user:u4", capacity=1, refill_per_s=0.01)
    refused = await both.gate.admit(
        [], principal_key=f"{ns}:session", user_bucket=user, reads=reads, expand=expand
    )
    assert (refused.refused, refused.values) == (f"{ns}:user:u4", ())
    # A bare template: the items are the keys.
    await both.cache.set(f"{ns}:u4:page", f"{ns}:ctr:v1 {ns}:ctr:v3 {ns}:nope\n".encode())
    bare = Expansion(1, (ITEM_PLACEHOLDER,))
    got = await both.gate.admit([], principal_key=f"{ns}:session", reads=reads, expand=bare)
    assert got.values[2:] == (b"7", b"9", None)
    # A template must name the item exactly once.
    for templates in ((f"{ns}:ctr",), (f"{ns}:{{item}}:{{item}}",)):
        with pytest.raises(ValueError, match="exactly once"):
            await both.gate.admit(
                [], principal_key=f"{ns}:session", reads=reads, expand=Expansion(1, templates)
            )


async def test_admit_reads_as_the_user_the_principal_names_now(both: GateAndCache, ns: str) -> None:
    # The Redis gate remembers a principal key's user and what its page listed;
    # a session value that changes user (or stops naming one) must not serve
    # the old user's values or draw the old user's bucket.
    user = Bucket(f"{ns}:user:{USER_PLACEHOLDER}", capacity=5, refill_per_s=0.01)
    reads = [f"{ns}:{{user}}:page"]
    expand = Expansion(0, (f"{ns}:ctr:{ITEM_PLACEHOLDER}",))
    await both.cache.set(f"{ns}:u7:page", b"a b\nseven")
    await both.cache.set(f"{ns}:u8:page", b"b c\neight")
    for item, count in (("a", b"1"), ("b", b"2"), ("c", b"3")):
        await both.cache.set(f"{ns}:ctr:{item}", count)

    async def admit() -> tuple[bytes | None, ...]:
        got = await both.gate.admit(
            [], principal_key=f"{ns}:session", user_bucket=user, reads=reads, expand=expand
        )
        assert got.refused is None
        return got.values

    await both.cache.set(f"{ns}:session", _principal("u7"))
    assert await admit() == (b"a b\nseven", b"1", b"2")
    assert await admit() == (b"a b\nseven", b"1", b"2")
    await both.cache.set(f"{ns}:ctr:a", b"10")  # counters are read on every call
    await both.cache.set(f"{ns}:u7:page", b"c\nseven again")  # and the listing too
    assert await admit() == (b"c\nseven again", b"3")
    await both.cache.set(f"{ns}:session", _principal("u8"))
    assert await admit() == (b"b c\neight", b"2", b"3")
    ip = Bucket(f"{ns}:ip", capacity=1, refill_per_s=0.01)
    await both.gate.take_tokens(ip.key, capacity=1, refill_per_s=0.01)
    refused = await both.gate.admit([ip], principal_key=f"{ns}:session", reads=reads)
    assert (refused.refused, refused.principal, refused.values) == (ip.key, None, ())
    await both.cache.set(f"{ns}:session", b"not json")
    assert await admit() == ()
    await both.cache.delete(f"{ns}:session")
    got = await both.gate.admit([], principal_key=f"{ns}:session", user_bucket=user, reads=reads)
    assert (got.principal, got.values) == (None, ())
    # u7's bucket gave one token per call as u7, u8's one: none drawn twice or for the other.
    for name, calls in (("u7", 3), ("u8", 1)):
        left = await both.gate.take_tokens(f"{ns}:user:{name}", capacity=5, refill_per_s=0.01)
        assert left.tokens_left == pytest.approx(5 - calls - 1, abs=0.05)


async def test_admit_stops_at_the_first_refusing_bucket(both: GateAndCache, ns: str) -> None:
    first = Bucket(f"{ns}:a", capacity=1, refill_per_s=0.01)
    second = Bucket(f"{ns}:b", capacity=5, refill_per_s=0.01)
    await both.gate.admit([first, second])
    refused = await both.gate.admit([first, second])
    assert refused.refused == first.key
    # The second bucket gave one token, to the first call only.
    left = await both.gate.take_tokens(second.key, capacity=5, refill_per_s=0.01)
    assert left.tokens_left == pytest.approx(3, abs=0.05)


async def test_admit_returns_a_principal_without_a_user_id_but_reads_nothing(
    both: GateAndCache, ns: str
) -> None:
    await both.cache.set(f"{ns}:session", b"not json")
    await both.cache.set(f"{ns}:x", b"secret")
    got = await both.gate.admit([], principal_key=f"{ns}:session", reads=[f"{ns}:x"])
    assert (got.refused, got.principal, got.values) == (None, b"not json", ())


async def test_admit_reads_values_of_another_type_as_missing(both: GateAndCache, ns: str) -> None:
    await both.cache.set(f"{ns}:session", _principal("u2"))
    await both.cache.zincrby(f"{ns}:u2:z", "m")
    got = await both.gate.admit([], principal_key=f"{ns}:session", reads=[f"{ns}:{{user}}:z"])
    assert got.values == (None,)


async def test_admit_on_a_key_that_is_not_a_bucket_is_invalid(both: GateAndCache, ns: str) -> None:
    await both.cache.set(f"{ns}:s", b"v")
    with pytest.raises(InvalidInput):
        await both.gate.admit([Bucket(f"{ns}:s", capacity=1, refill_per_s=1)])


async def test_admit_still_works_after_redis_forgets_its_scripts(
    both: GateAndCache, ns: str
) -> None:
    from reelplane.adapters.gate_redis import RedisGate

    if not isinstance(both.gate, RedisGate):
        pytest.skip("only Redis keeps a script cache (SCRIPT FLUSH after a restart)")
    await both.cache.set(f"{ns}:session", _principal("u3"))
    await both.cache.set(f"{ns}:u3:page", b"p")
    for _ in range(2):  # the second time with the session's user known (another script)
        await both.gate._client.script_flush()  # what a Redis restart does
        got = await both.gate.admit(
            [], principal_key=f"{ns}:session", reads=[f"{ns}:{{user}}:page"]
        )
        assert got.values == (b"p",)


async def test_admit_gives_up_on_a_redis_that_never_answers(both: GateAndCache) -> None:
    from reelplane.adapters.gate_redis import RedisGate

    if not isinstance(both.gate, RedisGate):
        pytest.skip("only the Redis adapter waits on a server")

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads until the client goes, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gate = RedisGate(f"redis://127.0.0.1:{port}/0", command_timeout_s=0.2)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await gate.admit([], principal_key="session:x")
        # Two tries of 0.2 s each, then the error: never a request left hanging.
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        await gate.close()
        server.close()
