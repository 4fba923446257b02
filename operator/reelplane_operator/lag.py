"""Read a consumer group's lag on a topic from Kafka (aiokafka).

The group's committed offsets come from the admin client
(`list_consumer_group_offsets`), the partitions' end and beginning offsets
from a group-less consumer; `autoscale.partition_lag` does the arithmetic.
One admin client and one consumer are kept open per broker list.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from reelplane_operator.autoscale import partition_lag

UNKNOWN_TOPIC = 3


@dataclass(frozen=True)
class LagReading:
    """Lag of a group on a topic at one moment."""

    total: int
    partitions: int
    per_partition: dict[int, int] = field(default_factory=dict)


class KafkaLagReader:
    """Reads lag from one Kafka cluster; `close()` when done."""

    def __init__(self, bootstrap_servers: str, timeout_s: float = 10.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        async with self._lock:
            if self._admin is None or self._consumer is None:
                timeout_ms = int(self.timeout_s * 1000)
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers, request_timeout_ms=timeout_ms
                )
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap_servers,
                    enable_auto_commit=False,
                    request_timeout_ms=timeout_ms,
                )
                try:
                    await asyncio.wait_for(admin.start(), self.timeout_s)
                    await asyncio.wait_for(consumer.start(), self.timeout_s)
                except BaseException:
                    await admin.close()
                    await consumer.stop()
                    raise
                self._admin, self._consumer = admin, consumer
            return self._admin, self._consumer

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partition ids ([] if the topic does not exist)."""
        admin, _ = await self._clients()
        topics = await asyncio.wait_for(admin.describe_topics([topic]), self.timeout_s)
        for item in topics:
            if item.get("topic") == topic and item.get("error_code", 0) == 0:
                return sorted(int(p["partition"]) for p in item.get("partitions", []))
        return []

    async def read(
        self,
        topic: str,
        group: str,
        reset_policy: Literal["earliest", "latest"] = "earliest",
    ) -> LagReading:
        """The group's lag on the topic, summed over partitions."""
        try:
            return await self._read(topic, group, reset_policy)
        except Exception:
            await self.close()  # reconnect next time
            raise

    async def _read(
        self, topic: str, group: str, reset_policy: Literal["earliest", "latest"]
    ) -> LagReading:
        ids = await self.partitions(topic)
        if not ids:
            return LagReading(total=0, partitions=0)
        admin, consumer = await self._clients()
        tps = [TopicPartition(topic, p) for p in ids]
        offsets = await asyncio.wait_for(
            admin.list_consumer_group_offsets(group, partitions=tps), self.timeout_s
        )
        committed = {tp.partition: (meta.offset if meta else None) for tp, meta in offsets.items()}
        ends = await asyncio.wait_for(consumer.end_offsets(tps), self.timeout_s)
        starts = await asyncio.wait_for(consumer.beginning_offsets(tps), self.timeout_s)
        lags = partition_lag(
            {tp.partition: int(o) for tp, o in ends.items()},
            committed,
            {tp.partition: int(o) for tp, o in starts.items()},
            reset_policy,
        )
        return LagReading(total=sum(lags.values()), partitions=len(ids), per_partition=lags)

    async def close(self) -> None:
        """Close the clients (a later read reconnects)."""
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()
