"""`kafka://...?prefix=p.`: one Kafka shared by isolated deployments (the real
browser tests' dev server runs on the harness's Kafka this way)."""

from __future__ import annotations

import uuid

import pytest

from reelplane.adapters.bus_kafka import KafkaBus
from reelplane.infra.harness import Harness
from tests.conftest import real_url

pytestmark = pytest.mark.integration


async def test_a_prefixed_bus_keeps_its_topics_and_groups_to_itself(harness: Harness) -> None:
    url = real_url(harness, "kafka")
    prefix = f"p{uuid.uuid4().hex[:8]}."
    topic = f"events{uuid.uuid4().hex[:6]}"
    mine = KafkaBus(f"{url}?prefix={prefix}", default_partitions=2)
    plain = KafkaBus(url, default_partitions=2)
    try:
        delivered = await mine.publish(topic, "k", b"mine")
        assert delivered.topic == topic  # callers never see the prefix
        await plain.publish(topic, "k", b"someone else's")
        assert await mine.partition_count(topic) == 2

        consumer = mine.consumer([topic], "readers")
        await consumer.start()
        try:
            records = []
            for _ in range(30):
                records += await consumer.poll(timeout_s=1.0)
                if records:
                    break
            assert [(r.topic, r.value) for r in records] == [(topic, b"mine")]
            assert {t for t, _ in consumer.assignment()} == {topic}
            await consumer.commit(records)
        finally:
            await consumer.stop()

        # On the broker the prefixed names are what exist.
        raw = plain.consumer([prefix + topic], f"{prefix}check{uuid.uuid4().hex[:6]}")
        await raw.start()
        try:
            seen = []
            for _ in range(30):
                seen += await raw.poll(timeout_s=1.0)
                if seen:
                    break
            assert [r.value for r in seen] == [b"mine"]
        finally:
            await raw.stop()
    finally:
        await mine.close()
        await plain.close()
