"""Feed consumers: the fan-out (on `videos`), the follow backfill (on `graph`)
and the For You invalidation on completions (on `engagement`).

The fan-out walks a creator's followers in batches and records how far it got
in the cache after each batch; a crashed fan-out is redelivered (its offset was
not committed) and resumes from that checkpoint. Timeline writes are upserts,
so redoing the batch in flight changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from reelplane.backends import Backends
from reelplane.engagement.core import is_completion
from reelplane.events.consumer import run_consumer
from reelplane.events.envelope import Event, UserFollowed, VideoReady, VideoWatched
from reelplane.events.runner import Handler
from reelplane.feed import foryou, timelines
from reelplane.feed.context import FeedContext
from reelplane.feed.core import TimelineEntry
from reelplane.feed.timelines import TIMELINES
from reelplane.graph import store as graph_store
from reelplane.graph.core import creator_tier
from reelplane.schema import videos
from reelplane.videos.model import VideoState

log = logging.getLogger(__name__)

FANOUT_GROUP = "feed-fanout"
BACKFILL_GROUP = "feed-follows"
FORYOU_GROUP = "feed-foryou"
CHECKPOINT_TTL_S = 86400.0


def checkpoint_key(video_id: str) -> str:
    return f"fanout:{video_id}"


@dataclass
class FanoutStats:
    """What fan-outs did (for logs, tests and the benchmark)."""

    videos: int = 0
    rows: int = 0
    batches: int = 0
    skipped_celebrity: int = 0
    resumed: int = 0
    last_batch_done_at: float = 0.0  # time.monotonic() when the last batch was written
    per_video_rows: dict[str, int] = field(default_factory=dict)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def _ready_video(backends: Backends, video_id: str) -> tuple[str, int] | None:
    """(owner id, ready time in ms) of a ready video, None otherwise."""
    async with backends.database.connect() as conn:
        row = (
            await conn.execute(
                select(videos.c.owner_id, videos.c.ready_at).where(
                    videos.c.id == video_id, videos.c.state == VideoState.READY
                )
            )
        ).first()
    if row is None or row.ready_at is None:
        return None
    return row.owner_id, _ms(row.ready_at)


async def fan_out(
    backends: Backends, ctx: FeedContext, video_id: str, stats: FanoutStats | None = None
) -> int:
    """Push a ready video of a normal creator into every follower's timeline, in
    batches, resuming after the last checkpointed follower. Returns rows written
    by this call (0 for a celebrity, whose videos are pulled at read time)."""
    stats = stats if stats is not None else FanoutStats()
    found = await _ready_video(backends, video_id)
    if found is None:
        return 0
    owner_id, ready_ms = found
    counts = await graph_store.follower_counts(backends.database, [owner_id])
    tier = creator_tier(counts.get(owner_id, 0), ctx.graph.celebrity_follower_threshold)
    if tier == "celebrity":
        stats.skipped_celebrity += 1
        return 0
    entry = TimelineEntry(ready_ms, video_id, owner_id)
    raw = await backends.cache.get(checkpoint_key(video_id))
    after: tuple[datetime, str] | None = None
    if raw is not None:
        at, follower = json.loads(raw)
        after = (datetime.fromisoformat(at), follower)
        stats.resumed += 1
    written = 0
    while True:
        batch = await graph_store.follower_batch(
            backends.database, owner_id, after=after, limit=ctx.feed.feed_fanout_batch
        )
        if not batch:
            break
        mine = [f for _, f in batch if ctx.serves(f)]
        written += await timelines.push(backends.widerow, mine, entry, ctx.policy)
        after = batch[-1]
        await backends.cache.set(
            checkpoint_key(video_id),
            json.dumps([after[0].isoformat(), after[1]]).encode(),
            ttl_s=CHECKPOINT_TTL_S,
        )
        stats.batches += 1
        stats.last_batch_done_at = asyncio.get_running_loop().time()
    stats.videos += 1
    stats.rows += written
    stats.per_video_rows[video_id] = stats.per_video_rows.get(video_id, 0) + written
    return written


def fanout_handler(
    backends: Backends, ctx: FeedContext, stats: FanoutStats | None = None
) -> Handler:
    async def handle(event: Event) -> None:
        if isinstance(event, VideoReady):
            await fan_out(backends, ctx, event.payload.video_id, stats)

    return handle


async def backfill(backends: Backends, ctx: FeedContext, follower_id: str, creator_id: str) -> int:
    """Copy a newly followed normal creator's recent videos into the follower's
    timeline (celebrities are pulled at read time anyway). Returns rows written."""
    if not ctx.serves(follower_id):
        return 0
    counts = await graph_store.follower_counts(backends.database, [creator_id])
    if creator_tier(counts.get(creator_id, 0), ctx.graph.celebrity_follower_threshold) == (
        "celebrity"
    ):
        return 0
    if ctx.feed.feed_backfill_videos <= 0:
        return 0
    async with backends.database.connect() as conn:
        rows = (
            await conn.execute(
                select(videos.c.id, videos.c.ready_at)
                .where(videos.c.owner_id == creator_id, videos.c.state == VideoState.READY)
                .order_by(videos.c.ready_at.desc())
                .limit(ctx.feed.feed_backfill_videos)
            )
        ).all()
    written = 0
    for r in rows:
        if r.ready_at is not None:
            entry = TimelineEntry(_ms(r.ready_at), r.id, creator_id)
            written += await timelines.push(backends.widerow, [follower_id], entry, ctx.policy)
    return written


def backfill_handler(backends: Backends, ctx: FeedContext) -> Handler:
    async def handle(event: Event) -> None:
        if isinstance(event, UserFollowed):
            p = event.payload
            await backfill(backends, ctx, p.follower_id, p.followee_id)

    return handle


def foryou_handler(backends: Backends, ctx: FeedContext) -> Handler:
    async def handle(event: Event) -> None:
        if not isinstance(event, VideoWatched):
            return
        p = event.payload
        completed = is_completion(p.watched_ms, p.duration_ms, ctx.engagement.completion_ratio)
        if completed and ctx.serves(p.user_id):
            await foryou.forget_completed(backends.cache, p.user_id, p.video_id)

    return handle


async def consume_fanout(backends: Backends, stop: asyncio.Event) -> None:
    ctx = FeedContext.load()
    await backends.widerow.ensure_tables([TIMELINES])
    await run_consumer(
        backends,
        stop,
        topics=["videos"],
        group=ctx.group(FANOUT_GROUP),
        handler=fanout_handler(backends, ctx),
    )


async def consume_follows(backends: Backends, stop: asyncio.Event) -> None:
    ctx = FeedContext.load()
    await backends.widerow.ensure_tables([TIMELINES])
    await run_consumer(
        backends,
        stop,
        topics=["graph"],
        group=ctx.group(BACKFILL_GROUP),
        handler=backfill_handler(backends, ctx),
    )


async def consume_completions(backends: Backends, stop: asyncio.Event) -> None:
    ctx = FeedContext.load()
    await run_consumer(
        backends,
        stop,
        topics=["engagement"],
        group=ctx.group(FORYOU_GROUP),
        handler=foryou_handler(backends, ctx),
    )
