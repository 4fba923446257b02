"""A video's events, through the one transactional outbox (`events.outbox`).

Each event is staged in the transaction that changes the video's state
(`stage_uploaded`, `stage_outcomes`: called by `videos.store`), with an id
derived from the video id and the event type, so a committed state always has
its event. Right after the commit the writer publishes it (`announce_uploaded`,
`announce_outcomes`); a crash in between leaves the row to the relay (the
upload janitor's, or any service's `run_relay`), which publishes it with the
same id, which every consumer's dedup treats as the same event.

An event can still be lost after it was published (an in-process bus that
restarted, a dead letter, a worker killed with its work): the janitor announces
a video again once it has waited for its transcode longer than a bound with no
worker holding a live lease on it (`reannounce_stalled`). `uploads.announced_at`
is when its last announcement was staged; `videos.announced_at` when its
outcome was.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reelplane.events import outbox
from reelplane.events.envelope import (
    Event,
    VideoFailed,
    VideoFailedPayload,
    VideoReady,
    VideoReadyPayload,
    VideoUploaded,
    VideoUploadedPayload,
    utc_now,
)
from reelplane.events.publisher import EventPublisher
from reelplane.ports.relational import Database
from reelplane.schema import uploads, video_assets, videos
from reelplane.videos.model import SETTLED, WAITING_FOR_TRANSCODE, VideoState, renditions_of

_NAMESPACE = uuid.UUID("6f1c2a4e-0b7d-4c53-9a8e-52d1f0c3a9b1")

#: The topics of video events (what the upload janitor relays).
VIDEO_TOPICS = ("uploads", "videos")


def stable_event_id(event_type: str, video_id: str) -> str:
    """The one id of `event_type` for `video_id` (32 hex), the same on every retry."""
    return uuid.uuid5(_NAMESPACE, f"{event_type}:{video_id}").hex


def _outcome_ids(video_ids: Sequence[str]) -> list[str]:
    return [stable_event_id(t, v) for v in video_ids for t in ("video.ready", "video.failed")]


def _uploaded(event_id: str, video_id: str, row: Any) -> VideoUploaded:
    """`video.uploaded` from a row with the upload's owner_id and length and
    the asset's sha256 and source_key."""
    return VideoUploaded(
        id=event_id,
        key=row.owner_id,
        payload=VideoUploadedPayload(
            video_id=video_id,
            owner_id=row.owner_id,
            sha256=row.sha256,
            object_key=row.source_key,
            size_bytes=row.length,
        ),
    )


# -- staging (inside the state change's transaction) ------------------------------------
async def stage_uploaded(conn: AsyncConnection, video_id: str) -> None:
    """Stage `video.uploaded` for a video just attached to its asset."""
    row = (
        await conn.execute(
            select(
                uploads.c.owner_id,
                uploads.c.length,
                videos.c.sha256,
                video_assets.c.source_key,
            )
            .join(videos, videos.c.id == uploads.c.id)
            .join(video_assets, video_assets.c.sha256 == videos.c.asset_sha256)
            .where(uploads.c.id == video_id)
        )
    ).first()
    if row is None:  # the video was deleted meanwhile: nothing to transcode
        return
    event_id = stable_event_id("video.uploaded", video_id)
    await outbox.stage(conn, _uploaded(event_id, video_id, row))
    await conn.execute(
        update(uploads).where(uploads.c.id == video_id).values(announced_at=utc_now())
    )


async def stage_outcomes(conn: AsyncConnection, video_ids: Sequence[str]) -> None:
    """Stage `video.ready` / `video.failed` for those of the videos that just
    became ready or failed and were not announced yet."""
    if not video_ids:
        return
    rows = (
        await conn.execute(
            select(
                videos.c.id,
                videos.c.owner_id,
                videos.c.state,
                videos.c.duration_ms,
                videos.c.failure_reason,
                video_assets.c.renditions,
            )
            .outerjoin(video_assets, video_assets.c.sha256 == videos.c.asset_sha256)
            .where(
                videos.c.id.in_(list(video_ids)),
                videos.c.state.in_(SETTLED),
                videos.c.announced_at.is_(None),
            )
        )
    ).all()
    for row in rows:
        event: Event
        if row.state == VideoState.READY:
            event = VideoReady(
                id=stable_event_id("video.ready", row.id),
                key=row.owner_id,
                payload=VideoReadyPayload(
                    video_id=row.id,
                    owner_id=row.owner_id,
                    duration_ms=row.duration_ms or 0,
                    renditions=[r.name for r in renditions_of(row.renditions)],
                ),
            )
        else:
            event = VideoFailed(
                id=stable_event_id("video.failed", row.id),
                key=row.owner_id,
                payload=VideoFailedPayload(
                    video_id=row.id,
                    owner_id=row.owner_id,
                    reason=(row.failure_reason or "failed")[:2000],
                ),
            )
        await outbox.stage(conn, event)
    if rows:
        await conn.execute(
            update(videos)
            .where(videos.c.id.in_([r.id for r in rows]))
            .values(announced_at=utc_now())
        )


# -- publishing (right after the commit) ------------------------------------------------
async def announce_uploaded(database: Database, publisher: EventPublisher, video_id: str) -> bool:
    """Publish the staged `video.uploaded` of a video; True when published
    (False: no such event waits, or the bus refused it: left to the relay)."""
    sent = await outbox.flush_staged(
        database, publisher.bus, [stable_event_id("video.uploaded", video_id)]
    )
    return sent > 0


async def announce_outcomes(
    database: Database, publisher: EventPublisher, video_ids: Sequence[str]
) -> int:
    """Publish the staged `video.ready` / `video.failed` of the videos; how many."""
    if not video_ids:
        return 0
    return await outbox.flush_staged(database, publisher.bus, _outcome_ids(video_ids))


async def reannounce_stalled(
    database: Database,
    publisher: EventPublisher,
    *,
    stalled_before: datetime,
    limit: int = 100,
) -> list[str]:
    """Announce `video.uploaded` again for every video still waiting for its
    transcode (uploaded or transcoding) that nothing has moved since
    `stalled_before`, announced before then, whose asset no worker holds a live
    lease on: its event was lost (an in-process bus that restarted),
    dead-lettered, or its worker died. Returns their ids.

    Each round's event has an id of its own (a consumer that applied an earlier
    one must not skip it as a duplicate), derived from the previous announcement
    so a crash before the row is marked re-sends the same id. The transcode job
    is idempotent: a second event for a video in progress or done changes nothing.
    """
    now = utc_now()
    query = (
        select(
            videos.c.id,
            videos.c.owner_id,
            videos.c.sha256,
            uploads.c.length,
            uploads.c.announced_at,
            video_assets.c.source_key,
        )
        .join(uploads, uploads.c.id == videos.c.id)
        .join(video_assets, video_assets.c.sha256 == videos.c.asset_sha256)
        .where(
            videos.c.state.in_(WAITING_FOR_TRANSCODE),
            videos.c.updated_at < stalled_before,
            uploads.c.state == "done",
            uploads.c.announced_at < stalled_before,
            # no worker holds a live transcode lease on its asset
            or_(video_assets.c.lease_expires_at.is_(None), video_assets.c.lease_expires_at < now),
        )
        .order_by(videos.c.updated_at)
        .limit(limit)
    )
    async with database.connect() as conn:
        rows = (await conn.execute(query)).all()
    sent: list[str] = []
    for row in rows:
        round_key = f"{row.id}:after:{row.announced_at.isoformat()}"
        event = _uploaded(stable_event_id("video.uploaded", round_key), row.id, row)
        async with database.transaction() as conn:
            marked = await conn.execute(
                update(uploads)
                .where(uploads.c.id == row.id, uploads.c.announced_at < stalled_before)
                .values(announced_at=utc_now())
            )
            if marked.rowcount:
                await outbox.stage(conn, event)
        if marked.rowcount:
            await outbox.flush_staged(database, publisher.bus, [event.id])
            sent.append(row.id)
    return sent
