"""A service's consumer-group member as a background task: the runner (dedup,
retries, dead letters) over the service's backends, restarted when it crashes."""

from __future__ import annotations

import asyncio
import logging

from reelplane.backends import Backends
from reelplane.events.dedup import RelationalDeduplicator
from reelplane.events.runner import ConsumerRunner, Handler, RetryPolicy

log = logging.getLogger(__name__)


async def run_consumer(
    backends: Backends,
    stop: asyncio.Event,
    *,
    topics: list[str],
    group: str,
    handler: Handler,
) -> None:
    """Run one consumer group member until stop is set (restarting after a crash
    of the runner itself, e.g. a lost connection)."""
    await backends.bus.ensure_topics(topics, backends.settings.bus_partitions)
    retry = RetryPolicy(max_attempts=backends.settings.consumer_max_attempts)
    while not stop.is_set():
        runner = ConsumerRunner(
            backends.bus,
            topics=topics,
            group=group,
            handler=handler,
            dedup=RelationalDeduplicator(backends.database),
            retry=retry,
        )
        try:
            await runner.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer crashed; restarting", extra={"group": group})
            await asyncio.sleep(1.0)
