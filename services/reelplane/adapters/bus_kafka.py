"""Kafka adapter of the bus port (aiokafka).

The producer is idempotent with acks=all, so a retried send never duplicates a
record in the log and an acknowledged record survives a broker restart. The
consumer never auto-commits: the consumer runner commits after the handler's
effect is durable.

`kafka://host:port?prefix=<p>` puts every topic and consumer group under the
prefix `<p>` on the broker, so that several deployments (or test runs) can
share one Kafka without reading each other's events; callers still name topics
without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    InvalidProducerEpoch,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from reelplane.ports.bus import Delivery, Record

log = logging.getLogger(__name__)


#: Errors after which an idempotent producer's sequence numbers or id are out of step
#: with the broker for good: the broker rejected the batch (nothing was written), and
#: every later send on that partition would fail the same way. Seen after a broker
#: outage: aiokafka drops a batch that expired without a leader but keeps its sequence
#: numbers, so the next batch is out of order.
_BROKEN_PRODUCER_ERRORS = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
)


def bootstrap_servers(url: str) -> str:
    """`kafka://h1:9092,h2:9092` -> `h1:9092,h2:9092`."""
    netloc = urlsplit(url).netloc
    return netloc or "127.0.0.1:9092"


def name_prefix(url: str) -> str:
    """`kafka://h:9092?prefix=staging.` -> `staging.` (topics and groups); "" without one."""
    values = parse_qs(urlsplit(url).query).get("prefix", [""])
    return values[-1]


class KafkaBus:
    def __init__(
        self,
        url: str,
        *,
        default_partitions: int = 6,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
        max_poll_interval_s: float = 300.0,
        offset_reset: Literal["earliest", "latest"] = "earliest",
    ) -> None:
        self.servers = bootstrap_servers(url)
        self.prefix = name_prefix(url)
        self.offset_reset = offset_reset
        self.max_poll_interval_ms = int(max_poll_interval_s * 1000)
        self._default_partitions = default_partitions
        self._connect_timeout_ms = int(connect_timeout_s * 1000)
        self._request_timeout_ms = int(request_timeout_s * 1000)
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._known_topics: dict[str, int] = {}

    def _admin(self) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(
            bootstrap_servers=self.servers, request_timeout_ms=self._connect_timeout_ms
        )

    async def ping(self) -> None:
        admin = self._admin()
        try:
            await asyncio.wait_for(admin.start(), self._connect_timeout_ms / 1000)
            await admin.describe_cluster()
        finally:
            await admin.close()

    def broker_name(self, name: str) -> str:
        """A topic's or group's name on the broker."""
        return self.prefix + name

    def topic_of(self, broker_topic: str) -> str:
        """A broker topic's name as callers know it."""
        return broker_topic.removeprefix(self.prefix)

    async def ensure_topics(self, topics: list[str], partitions: int) -> None:
        missing = [
            self.broker_name(t) for t in topics if self.broker_name(t) not in self._known_topics
        ]
        if not missing:
            return
        admin = self._admin()
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            new = [
                NewTopic(t, num_partitions=partitions, replication_factor=1)
                for t in missing
                if t not in existing
            ]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
            for desc in await admin.describe_topics(missing):
                self._known_topics[desc["topic"]] = len(desc["partitions"]) or partitions
        finally:
            await admin.close()

    async def partition_count(self, topic: str) -> int:
        if self.broker_name(topic) not in self._known_topics:
            await self.ensure_topics([topic], self._default_partitions)
        return self._known_topics[self.broker_name(topic)]

    async def _get_producer(self) -> AIOKafkaProducer:
        async with self._producer_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.servers,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=2,
                    request_timeout_ms=self._request_timeout_ms,
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def publish(
        self, topic: str, key: str, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()
    ) -> Delivery:
        if self.broker_name(topic) not in self._known_topics:
            await self.ensure_topics([topic], self._default_partitions)
        topic_on_broker = self.broker_name(topic)
        producer = await self._get_producer()
        try:
            meta = await producer.send_and_wait(
                topic_on_broker, value, key=key.encode(), headers=list(headers) or None
            )
        except _BROKEN_PRODUCER_ERRORS as exc:
            log.warning("kafka producer out of step with the broker (%r); starting a new one", exc)
            # Not written, so sending once more with a fresh producer id cannot duplicate.
            await self._discard_producer(producer)
            producer = await self._get_producer()
            meta = await producer.send_and_wait(
                topic_on_broker, value, key=key.encode(), headers=list(headers) or None
            )
        return Delivery(self.topic_of(meta.topic), meta.partition, meta.offset)

    async def _discard_producer(self, broken: AIOKafkaProducer) -> None:
        """Drop a producer that can no longer send (only once when many sends see it)."""
        async with self._producer_lock:
            if self._producer is broken:
                self._producer = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broken.stop(), self._request_timeout_ms / 1000)

    def consumer(self, topics: list[str], group: str) -> KafkaConsumer:
        return KafkaConsumer(self, topics, group)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class KafkaConsumer:
    def __init__(self, bus: KafkaBus, topics: list[str], group: str) -> None:
        self._bus = bus
        self.topics = topics
        self.group = group
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        if self._consumer is not None:
            return
        await self._bus.ensure_topics(self.topics, self._bus._default_partitions)
        consumer = AIOKafkaConsumer(
            *(self._bus.broker_name(t) for t in self.topics),
            bootstrap_servers=self._bus.servers,
            group_id=self._bus.broker_name(self.group),
            enable_auto_commit=False,
            auto_offset_reset=self._bus.offset_reset,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_poll_interval_ms=self._bus.max_poll_interval_ms,
        )
        await consumer.start()
        self._consumer = consumer

    async def poll(self, *, max_records: int = 100, timeout_s: float = 1.0) -> list[Record]:
        if self._consumer is None:
            raise RuntimeError("consumer not started")
        batches: dict[Any, list[Any]] = await self._consumer.getmany(
            timeout_ms=int(timeout_s * 1000), max_records=max_records
        )
        out: list[Record] = []
        for tp, messages in sorted(batches.items(), key=lambda kv: (kv[0].topic, kv[0].partition)):
            for m in messages:
                out.append(
                    Record(
                        self._bus.topic_of(tp.topic),
                        tp.partition,
                        m.offset,
                        (m.key or b"").decode(),
                        m.value or b"",
                        tuple((k, v or b"") for k, v in (m.headers or ())),
                    )
                )
        return out

    async def commit(self, records: list[Record]) -> None:
        if self._consumer is None or not records:
            return
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(self._bus.broker_name(r.topic), r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        owned = self._consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError):
            # The group rebalanced: the new owner resumes at the last commit and
            # redelivers; the runner's dedup makes that a no-op.
            return

    def assignment(self) -> set[tuple[str, int]]:
        if self._consumer is None:
            return set()
        return {(self._bus.topic_of(tp.topic), tp.partition) for tp in self._consumer.assignment()}

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
