"""The pub/sub port (live push across replicas): two clients stand for two
replicas; on Redis they are two connections, in-process they share one cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from reelplane.infra.harness import Harness
from reelplane.ports.pubsub import PubSub, Subscription
from tests.conftest import BACKENDS, real_url


@pytest.fixture(params=BACKENDS)
async def replicas(
    request: pytest.FixtureRequest, harness: Harness
) -> AsyncIterator[tuple[PubSub, PubSub]]:
    if request.param == "embedded":
        from reelplane.adapters.cache_memory import MemoryCache

        memory = MemoryCache()
        yield memory, memory
        await memory.close()
    else:
        from reelplane.adapters.cache_redis import RedisCache

        a, b = RedisCache(real_url(harness, "redis")), RedisCache(real_url(harness, "redis"))
        yield a, b
        await a.close()
        await b.close()


async def take(sub: Subscription, n: int) -> list[bytes]:
    got: list[bytes] = []
    async for message in sub.messages():
        got.append(message)
        if len(got) == n:
            break
    return got


async def test_a_message_published_on_one_replica_reaches_subscribers_on_both(
    replicas: tuple[PubSub, PubSub], ns: str
) -> None:
    a, b = replicas
    channel = f"{ns}:live"
    async with a.subscribe(channel) as on_a, b.subscribe(channel) as on_b:
        reading = asyncio.gather(take(on_a, 2), take(on_b, 2))
        await asyncio.sleep(0.05)
        assert await b.publish(channel, b"first") == 2
        assert await a.publish(channel, b"second") == 2
        got_a, got_b = await asyncio.wait_for(reading, 5)
    assert got_a == got_b == [b"first", b"second"]


async def test_other_channels_and_closed_subscriptions_hear_nothing(
    replicas: tuple[PubSub, PubSub], ns: str
) -> None:
    a, b = replicas
    async with a.subscribe(f"{ns}:mine") as sub:
        reading = asyncio.create_task(take(sub, 1))
        await asyncio.sleep(0.05)
        assert await b.publish(f"{ns}:other", b"not for me") == 0
        assert await b.publish(f"{ns}:mine", b"for me") == 1
        assert await asyncio.wait_for(reading, 5) == [b"for me"]
    await asyncio.sleep(0.05)
    assert await b.publish(f"{ns}:mine", b"after") == 0
