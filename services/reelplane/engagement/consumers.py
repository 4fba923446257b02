"""Engagement consumers: counters, watch history and trending.

The three effects run in one consumer group on `engagement`, so each event costs
one idempotency check and one record (not three). They run in that order:
history (an upsert, safe to redo) first, then the two increments, each a single
cache operation, so a retried event can repeat at most one of them (a drift the
repair command fixes). The views total commits with its own ledger row, so it
is exact even across a crash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from reelplane.backends import Backends
from reelplane.engagement import store
from reelplane.engagement.core import counter_deltas, counter_key, is_completion, trending_points
from reelplane.engagement.history import WatchRecord, record_watch
from reelplane.engagement.settings import EngagementSettings
from reelplane.engagement.tables import TABLES
from reelplane.engagement.trending import add_points
from reelplane.events.consumer import run_consumer
from reelplane.events.envelope import Event, VideoViewed, VideoWatched
from reelplane.events.runner import Handler
from reelplane.settings import load_section

ENGAGEMENT_GROUP = "engagement"
VIEWS_LEDGER = "engagement-views-ledger"


def event_ms(event: Event) -> int:
    """When the event happened, in milliseconds since the epoch."""
    return int(event.occurred_at.timestamp() * 1000)


def counters_handler(backends: Backends) -> Handler:
    async def handle(event: Event) -> None:
        for video_id, kind, delta in counter_deltas(event):
            # Views: durable total first; a view the ledger already has is not counted again.
            if isinstance(event, VideoViewed) and not await store.add_view_once(
                backends.database, VIEWS_LEDGER, event.id, video_id
            ):
                continue
            await backends.cache.incr(counter_key(video_id, kind), delta)

    return handle


def history_handler(backends: Backends, settings: EngagementSettings) -> Handler:
    async def handle(event: Event) -> None:
        if not isinstance(event, VideoWatched):
            return
        p = event.payload
        record = WatchRecord(
            watched_ms=p.watched_ms,
            duration_ms=p.duration_ms,
            completed=is_completion(p.watched_ms, p.duration_ms, settings.completion_ratio),
        )
        await record_watch(
            backends.widerow,
            user_id=p.user_id,
            video_id=p.video_id,
            at_ms=event_ms(event),
            record=record,
            ttl_s=settings.watch_history_ttl_s,
        )

    return handle


def trending_handler(
    backends: Backends, settings: EngagementSettings, clock_ms: Callable[[], int] | None = None
) -> Handler:
    now_ms = clock_ms or (lambda: int(time.time() * 1000))

    async def handle(event: Event) -> None:
        scored = trending_points(event, settings.completion_ratio)
        if scored is None:
            return
        video_id, points = scored
        await add_points(
            backends.cache,
            video_id,
            points,
            at_ms=event_ms(event),
            now_ms=now_ms(),
            window_s=settings.trending_window_s,
            bucket_s=settings.trending_bucket_s,
        )

    return handle


def engagement_handler(
    backends: Backends, settings: EngagementSettings, clock_ms: Callable[[], int] | None = None
) -> Handler:
    """History, then trending, then counters, for one event."""
    steps = [
        history_handler(backends, settings),
        trending_handler(backends, settings, clock_ms),
        counters_handler(backends),
    ]

    async def handle(event: Event) -> None:
        for step in steps:
            await step(event)

    return handle


async def consume_engagement(backends: Backends, stop: asyncio.Event) -> None:
    """Background task: the engagement consumer group."""
    settings = load_section(EngagementSettings)
    await backends.widerow.ensure_tables(TABLES)
    await run_consumer(
        backends,
        stop,
        topics=["engagement"],
        group=ENGAGEMENT_GROUP,
        handler=engagement_handler(backends, settings),
    )
