"""Watch history (wide-row, partition per user, newest first) and completions."""

from __future__ import annotations

from pydantic import BaseModel

from reelplane.engagement.tables import COMPLETIONS, WATCH_HISTORY
from reelplane.ports.widerow import Clustering, WideRow, WideRowStore


class WatchRecord(BaseModel):
    """One watch as stored: milliseconds watched of a video of duration_ms."""

    watched_ms: int
    duration_ms: int
    completed: bool


async def record_watch(
    widerow: WideRowStore,
    *,
    user_id: str,
    video_id: str,
    at_ms: int,
    record: WatchRecord,
    ttl_s: int,
) -> None:
    """Store a watch (idempotent: the same event rewrites the same row)."""
    row = WideRow(user_id, at_ms, video_id, record.model_dump_json().encode())
    await widerow.put(WATCH_HISTORY, [row], ttl_s=ttl_s)
    if record.completed:
        await widerow.put(COMPLETIONS, [WideRow(user_id, at_ms, video_id, b"")], ttl_s=ttl_s)


async def history_page(
    widerow: WideRowStore, user_id: str, *, before: Clustering | None, limit: int
) -> list[tuple[WideRow, WatchRecord]]:
    rows = await widerow.range(WATCH_HISTORY, user_id, before=before, limit=limit)
    return [(r, WatchRecord.model_validate_json(r.value)) for r in rows]


async def completed_video_ids(widerow: WideRowStore, user_id: str, *, limit: int) -> set[str]:
    """The videos the user most recently watched to completion (at most limit)."""
    rows = await widerow.range(COMPLETIONS, user_id, limit=limit)
    return {r.item for r in rows}
