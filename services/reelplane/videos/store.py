"""Every query on `videos` and `video_assets`: the one place that writes a
video's state, and the asset transitions of the transcode (claim, progress,
finalize, fail) and of dedup (attach, revive, tombstone). A state others
care about stages its event in the same transaction (`videos.announce`); the
writer publishes it after the commit.

Functions taking a `conn` run inside the caller's transaction (the upload's
row changes with the video's); the others open their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from reelplane.events.envelope import utc_now
from reelplane.leases import RowLease
from reelplane.ports.relational import Database
from reelplane.schema import video_assets, videos
from reelplane.videos.announce import stage_outcomes, stage_uploaded
from reelplane.videos.model import WAITING_FOR_TRANSCODE, AssetState, Rendition, VideoState

#: Reasons are cut to the column's size.
REASON_CHARS = 500


def asset_lease(ttl_s: float) -> RowLease:
    """The transcode lease on an asset (`video_assets.lease_owner`): one worker per asset."""
    return RowLease(
        video_assets,
        video_assets.c.sha256,
        video_assets.c.lease_owner,
        video_assets.c.lease_expires_at,
        ttl_s,
    )


# -- videos ------------------------------------------------------------------------------
async def insert_video(conn: AsyncConnection, **values: Any) -> None:
    """A new video row (`state` among `VideoState`; a failed one's event is staged)."""
    await conn.execute(videos.insert().values(**values))
    if values.get("state") == VideoState.FAILED:
        await stage_outcomes(conn, [values["id"]])


async def set_video_state(
    conn: AsyncConnection, video_id: str, state: VideoState, *, reason: str | None, now: datetime
) -> None:
    """Move a video to `state` (failed, deleted), saying why (a failed one's
    event is staged)."""
    await conn.execute(
        update(videos)
        .where(videos.c.id == video_id)
        .values(state=state, failure_reason=reason, updated_at=now)
    )
    if state == VideoState.FAILED:
        await stage_outcomes(conn, [video_id])


async def failure_reason(database: Database, video_id: str) -> str | None:
    async with database.connect() as conn:
        reason = (
            await conn.execute(select(videos.c.failure_reason).where(videos.c.id == video_id))
        ).scalar_one_or_none()
    return None if reason is None else str(reason)


@dataclass(frozen=True)
class SourceFacts:
    """What the accept path learnt about an upload's source (sizes in bytes and px)."""

    video_id: str
    sha256: str
    source_key: str
    size_bytes: int
    duration_ms: int
    width: int
    height: int


async def attach_to_asset(
    database: Database, source: SourceFacts, *, also: Sequence[Any] = ()
) -> tuple[VideoState, bool]:
    """Point an `uploading` video at its content-addressed asset: a new one, an
    existing one (dedup: the video follows the asset's state), or one whose
    transcode failed or was deleted (started again from this source), and
    stage `video.uploaded` (and `video.ready` for a ready asset). Runs the
    statements `also` in the same transaction. Returns the video's new state
    and whether the source is a duplicate (its object is not needed)."""
    sha256, now = source.sha256, utc_now()
    duplicate = False
    async with database.transaction() as conn:
        inserted = await database.insert_if_absent(
            conn,
            video_assets,
            {
                "sha256": sha256,
                "state": AssetState.PENDING,
                "source_key": source.source_key,
                "renditions": [],
                "duration_ms": source.duration_ms,
                "width": source.width,
                "height": source.height,
                "created_at": now,
                "updated_at": now,
            },
        )
        # FOR UPDATE (MySQL) / the write lock just taken (SQLite) orders this
        # against a worker finishing the same asset, so a duplicate never
        # misses the moment its asset becomes ready.
        asset = (
            await conn.execute(
                select(video_assets).where(video_assets.c.sha256 == sha256).with_for_update()
            )
        ).one()
        state = VideoState.UPLOADED
        values: dict[str, Any] = {}
        if not inserted and asset.state in (AssetState.FAILED, AssetState.DELETED):
            # The earlier transcode of these bytes failed, or every video on the
            # asset was deleted and its objects removed: start again from this copy.
            await conn.execute(
                update(video_assets)
                .where(video_assets.c.sha256 == sha256)
                .values(
                    state=AssetState.PENDING,
                    source_key=source.source_key,
                    failure_reason=None,
                    attempts=0,
                    updated_at=now,
                )
            )
        elif not inserted:
            duplicate = asset.source_key != source.source_key
            if asset.state == AssetState.READY:
                state = VideoState.READY
                values = {"ready_at": now, "progress_pct": 100}
            elif asset.state == AssetState.TRANSCODING:
                state = VideoState.TRANSCODING
        await conn.execute(
            update(videos)
            .where(videos.c.id == source.video_id, videos.c.state == VideoState.UPLOADING)
            .values(
                state=state,
                sha256=sha256,
                asset_sha256=sha256,
                size_bytes=source.size_bytes,
                duration_ms=source.duration_ms,
                width=source.width,
                height=source.height,
                updated_at=now,
                **values,
            )
        )
        for statement in also:
            await conn.execute(statement)
        await stage_uploaded(conn, source.video_id)
        if state == VideoState.READY:
            await stage_outcomes(conn, [source.video_id])
    return state, duplicate


# -- assets: the transcode -----------------------------------------------------------------
async def asset(database: Database, sha256: str) -> Row[Any] | None:
    async with database.connect() as conn:
        return (
            await conn.execute(select(video_assets).where(video_assets.c.sha256 == sha256))
        ).first()


async def claim_asset(database: Database, lease: RowLease, sha256: str, worker_id: str) -> bool:
    """Take (or keep) the transcode of a pending or abandoned asset; its
    waiting videos become `transcoding`. True when claimed."""
    now = utc_now()
    async with database.transaction() as conn:
        claimed = await lease.take(
            conn,
            sha256,
            worker_id,
            also_from=(worker_id,),
            where=(video_assets.c.state.in_((AssetState.PENDING, AssetState.TRANSCODING)),),
            values={
                "state": AssetState.TRANSCODING,
                "attempts": video_assets.c.attempts + 1,
                "updated_at": now,
            },
        )
        if claimed:
            await _update_waiting(conn, sha256, state=VideoState.TRANSCODING, progress_pct=0)
    return claimed


async def renew_claim(database: Database, lease: RowLease, sha256: str, worker_id: str) -> bool:
    async with database.transaction() as conn:
        return await lease.renew(
            conn, sha256, worker_id, where=(video_assets.c.state == AssetState.TRANSCODING,)
        )


async def release_claim(database: Database, lease: RowLease, sha256: str, worker_id: str) -> None:
    async with database.transaction() as conn:
        await lease.release(conn, sha256, worker_id)


async def write_progress(database: Database, sha256: str, pct: int) -> None:
    """The transcode's percent done, on every video waiting for it."""
    async with database.transaction() as conn:
        await _update_waiting(conn, sha256, state=VideoState.TRANSCODING, progress_pct=pct)


async def finalize_asset(
    database: Database,
    lease: RowLease,
    sha256: str,
    worker_id: str,
    *,
    master_key: str,
    poster_key: str,
    still_keys: list[str],
    renditions: list[Rendition],
) -> list[str] | None:
    """Flip the asset and all its waiting videos to ready in one transaction, if
    `worker_id`'s lease still holds; the videos' ids (None: another worker took over)."""
    now = utc_now()
    async with database.transaction() as conn:
        result = await conn.execute(
            update(video_assets)
            .where(
                video_assets.c.sha256 == sha256,
                lease.held_by(worker_id),
                video_assets.c.state == AssetState.TRANSCODING,
            )
            .values(
                **lease.hold(None, now),
                state=AssetState.READY,
                master_playlist_key=master_key,
                poster_key=poster_key,
                still_keys=still_keys,
                renditions=[r.model_dump() for r in renditions],
                ready_at=now,
                updated_at=now,
                failure_reason=None,
            )
        )
        if not result.rowcount:
            return None
        ids = await _waiting_videos(conn, sha256)
        if ids:
            await _update_videos(
                conn, ids, state=VideoState.READY, progress_pct=100, ready_at=now, updated_at=now
            )
            await stage_outcomes(conn, ids)
    return ids


async def fail_asset(
    database: Database, lease: RowLease, sha256: str, worker_id: str, reason: str
) -> list[str]:
    """Fail the asset (if `worker_id` holds it) and its waiting videos; their ids."""
    now = utc_now()
    async with database.transaction() as conn:
        result = await conn.execute(
            update(video_assets)
            .where(video_assets.c.sha256 == sha256, lease.held_by(worker_id))
            .values(
                **lease.hold(None, now),
                state=AssetState.FAILED,
                failure_reason=reason[:REASON_CHARS],
                updated_at=now,
            )
        )
        ids = await _waiting_videos(conn, sha256) if result.rowcount else []
        if ids:
            await _update_videos(
                conn,
                ids,
                state=VideoState.FAILED,
                failure_reason=reason[:REASON_CHARS],
                updated_at=now,
            )
            await stage_outcomes(conn, ids)
    return ids


async def settle_waiting_videos(database: Database, sha256: str, done: Row[Any]) -> list[str]:
    """Videos still waiting on an asset that is already ready or failed follow
    its outcome; returns the ids this changed."""
    now = utc_now()
    values: dict[str, Any]
    if done.state == AssetState.READY:
        values = {"state": VideoState.READY, "progress_pct": 100, "ready_at": now}
    else:
        values = {"state": VideoState.FAILED, "failure_reason": done.failure_reason}
    async with database.transaction() as conn:
        ids = await _waiting_videos(conn, sha256)
        if ids:
            await _update_videos(conn, ids, updated_at=now, **values)
            await stage_outcomes(conn, ids)
    return ids


async def _waiting_videos(conn: AsyncConnection, sha256: str) -> list[str]:
    rows = await conn.execute(
        select(videos.c.id)
        .where(videos.c.asset_sha256 == sha256, videos.c.state.in_(WAITING_FOR_TRANSCODE))
        .with_for_update()
    )
    return [r.id for r in rows]


async def _update_waiting(conn: AsyncConnection, sha256: str, **values: Any) -> None:
    await conn.execute(
        update(videos)
        .where(videos.c.asset_sha256 == sha256, videos.c.state.in_(WAITING_FOR_TRANSCODE))
        .values(updated_at=utc_now(), **values)
    )


async def _update_videos(conn: AsyncConnection, ids: list[str], **values: Any) -> None:
    await conn.execute(update(videos).where(videos.c.id.in_(ids)).values(**values))


# -- assets: deletion ----------------------------------------------------------------------
async def deleted_video_asset(conn: AsyncConnection, video_id: str) -> tuple[bool, str | None]:
    """Whether the video is deleted, and its asset's SHA-256 (None before accept)."""
    video = (
        await conn.execute(
            select(videos.c.state, videos.c.asset_sha256).where(videos.c.id == video_id)
        )
    ).first()
    if video is None or video.state != VideoState.DELETED:
        return False, None
    return True, video.asset_sha256


async def tombstone_if_unused(conn: AsyncConnection, sha256: str, now: datetime) -> Row[Any] | None:
    """Mark the asset deleted if no live video uses it; its row as it was then
    (None when it is still used, or a tombstone already)."""
    # Write first: the row lock (MySQL) / the database write lock (SQLite) orders
    # this against an upload of the same bytes attaching a video to the asset
    # (`attach_to_asset` locks the row too), so a new user is either counted
    # here or finds the tombstone and revives the asset.
    locked = await conn.execute(
        update(video_assets).where(video_assets.c.sha256 == sha256).values(updated_at=now)
    )
    if not locked.rowcount:
        return None
    found = (await conn.execute(select(video_assets).where(video_assets.c.sha256 == sha256))).one()
    if found.state == AssetState.DELETED:
        return None
    users = (
        await conn.execute(
            select(func.count())
            .select_from(videos)
            .where(videos.c.asset_sha256 == sha256, videos.c.state != VideoState.DELETED)
        )
    ).scalar_one()
    if users:
        return None
    await conn.execute(
        update(video_assets)
        .where(video_assets.c.sha256 == sha256)
        .values(
            state=AssetState.DELETED,
            master_playlist_key=None,
            poster_key=None,
            still_keys=None,
            renditions=[],
            # A worker still transcoding it loses its lease: it stops, and drops
            # what it stored (its run folder) when it cannot finalize.
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return found
