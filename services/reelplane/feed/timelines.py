"""Following timelines in the wide-row store: partition per follower, newest
first, one row per pushed video (value: its creator), capped and expiring."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from reelplane.feed.core import Position, TimelineEntry, should_trim
from reelplane.ports.widerow import Clustering, WideRow, WideRowStore, WideTable

TIMELINES = WideTable("timelines")

#: Concurrent trims per batch (each is a read and a range delete).
_TRIM_CONCURRENCY = 16


class TimelineValue(BaseModel):
    creator_id: str


@dataclass(frozen=True)
class TimelinePolicy:
    """How timelines are kept: at most `cap` entries (trimmed on about one push
    in `trim_every`), each expiring after `ttl_s` (0: never)."""

    cap: int
    ttl_s: int
    trim_every: int


async def push(
    widerow: WideRowStore,
    follower_ids: Sequence[str],
    entry: TimelineEntry,
    policy: TimelinePolicy,
) -> int:
    """Write one video into many followers' timelines (an idempotent upsert);
    returns the rows written."""
    value = TimelineValue(creator_id=entry.creator_id).model_dump_json().encode()
    rows = [WideRow(f, entry.ts_ms, entry.video_id, value) for f in follower_ids]
    await widerow.put(TIMELINES, rows, ttl_s=policy.ttl_s)
    to_trim = [f for f in follower_ids if should_trim(f, entry.video_id, policy.trim_every)]
    if to_trim:
        gate = asyncio.Semaphore(_TRIM_CONCURRENCY)

        async def trim(follower: str) -> None:
            async with gate:
                await widerow.trim(TIMELINES, follower, policy.cap)

        await asyncio.gather(*(trim(f) for f in to_trim))
    return len(rows)


async def read(
    widerow: WideRowStore, follower_id: str, *, before: Position | None, limit: int
) -> list[TimelineEntry]:
    """Entries of a follower's timeline, newest first, strictly before the cursor."""
    rows = await widerow.range(
        TIMELINES,
        follower_id,
        before=Clustering(before.ts_ms, before.video_id) if before else None,
        limit=limit,
    )
    return [
        TimelineEntry(r.ts, r.item, TimelineValue.model_validate_json(r.value).creator_id)
        for r in rows
    ]
