"""Publishing a video's events exactly once in effect (an outbox in the rows).

The state change is committed first; the event is published after, with an id
derived from the video id and the event type, and then the row is marked
announced. A crash between the two leaves the row unmarked and the janitor (or
a redelivered job) publishes again with the same id, which every consumer's
dedup treats as the same event.

An event can still be lost after it was marked sent (an in-process bus that
restarted, a dead letter, a worker killed with its work): the janitor announces
a video again once it has waited for its transcode longer than a bound with no
worker holding a live lease on it (`reannounce_stalled`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select, update

from reelplane.events.envelope import (
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


def stable_event_id(event_type: str, video_id: str) -> str:
    """The one id of `event_type` for `video_id` (32 hex), the same on every retry."""
    return uuid.uuid5(_NAMESPACE, f"{event_type}:{video_id}").hex


async def announce_uploaded(database: Database, publisher: EventPublisher, video_id: str) -> bool:
    """Publish `video.uploaded` for a finished upload not yet announced; True when published."""
    async with database.connect() as conn:
        row = (
            await conn.execute(
                select(
                    uploads.c.owner_id,
                    uploads.c.length,
                    uploads.c.announced_at,
                    videos.c.sha256,
                    video_assets.c.source_key,
                )
                .join(videos, videos.c.id == uploads.c.id)
                .join(video_assets, video_assets.c.sha256 == videos.c.asset_sha256)
                .where(uploads.c.id == video_id, uploads.c.state == "done")
            )
        ).first()
    if row is None or row.announced_at is not None:
        return False
    event = VideoUploaded(
        id=stable_event_id("video.uploaded", video_id),
        key=row.owner_id,
        payload=VideoUploadedPayload(
            video_id=video_id,
            owner_id=row.owner_id,
            sha256=row.sha256,
            object_key=row.source_key,
            size_bytes=row.length,
        ),
    )
    await publisher.publish(event)
    async with database.transaction() as conn:
        await conn.execute(
            update(uploads)
            .where(uploads.c.id == video_id, uploads.c.announced_at.is_(None))
            .values(announced_at=utc_now())
        )
    return True


async def reannounce_stalled(
    database: Database,
    publisher: EventPublisher,
    *,
    stalled_before: datetime,
    limit: int = 100,
) -> list[str]:
    """Publish `video.uploaded` again for every video still waiting for its
    transcode (uploaded or transcoding) that nothing has moved since
    `stalled_before`, announced before then, whose asset no worker holds a live
    lease on: its event was lost (an in-process bus that restarted), dead-lettered,
    or its worker died. Returns their ids.

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
        await publisher.publish(
            VideoUploaded(
                id=stable_event_id("video.uploaded", round_key),
                key=row.owner_id,
                payload=VideoUploadedPayload(
                    video_id=row.id,
                    owner_id=row.owner_id,
                    sha256=row.sha256,
                    object_key=row.source_key,
                    size_bytes=row.length,
                ),
            )
        )
        async with database.transaction() as conn:
            await conn.execute(
                update(uploads)
                .where(uploads.c.id == row.id, uploads.c.announced_at < stalled_before)
                .values(announced_at=utc_now())
            )
        sent.append(row.id)
    return sent


async def announce_outcomes(
    database: Database,
    publisher: EventPublisher,
    video_ids: list[str] | None = None,
    *,
    older_than: datetime | None = None,
    limit: int = 500,
) -> list[str]:
    """Publish `video.ready` / `video.failed` for terminal videos not announced
    yet (the given ones, or all updated before `older_than`); return their ids."""
    query = (
        select(
            videos.c.id,
            videos.c.owner_id,
            videos.c.state,
            videos.c.duration_ms,
            videos.c.failure_reason,
            video_assets.c.renditions,
        )
        .outerjoin(video_assets, video_assets.c.sha256 == videos.c.asset_sha256)
        .where(videos.c.state.in_(SETTLED), videos.c.announced_at.is_(None))
        .limit(limit)
    )
    if video_ids is not None:
        if not video_ids:
            return []
        query = query.where(videos.c.id.in_(video_ids))
    if older_than is not None:
        query = query.where(videos.c.updated_at < older_than)
    async with database.connect() as conn:
        rows = (await conn.execute(query)).all()
    done: list[str] = []
    for row in rows:
        if row.state == VideoState.READY:
            names = [r.name for r in renditions_of(row.renditions)]
            await publisher.publish(
                VideoReady(
                    id=stable_event_id("video.ready", row.id),
                    key=row.owner_id,
                    payload=VideoReadyPayload(
                        video_id=row.id,
                        owner_id=row.owner_id,
                        duration_ms=row.duration_ms or 0,
                        renditions=names,
                    ),
                )
            )
        else:
            await publisher.publish(
                VideoFailed(
                    id=stable_event_id("video.failed", row.id),
                    key=row.owner_id,
                    payload=VideoFailedPayload(
                        video_id=row.id,
                        owner_id=row.owner_id,
                        reason=(row.failure_reason or "failed")[:2000],
                    ),
                )
            )
        async with database.transaction() as conn:
            await conn.execute(
                update(videos)
                .where(videos.c.id == row.id, videos.c.announced_at.is_(None))
                .values(announced_at=utc_now())
            )
        done.append(row.id)
    return done
