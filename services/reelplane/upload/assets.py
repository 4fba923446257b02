"""A deleted video's stored media: removed once no other video uses it.

Dedup makes assets shared: uploads of the same bytes are videos on one
content-addressed asset (one source object, one transcoded run). Deleting a
video (the gateway marks it `deleted` and publishes `video.deleted`) removes
the asset's objects only when it was the last live video on the asset; the
asset row stays as a `deleted` tombstone (deleted videos still point at it),
and a later upload of the same bytes brings it back to life (`pending`, a
new transcode from that upload's source).

Runs on `video.deleted` in consumer group `upload-assets`, at least once: a
repeated event finds the asset shared, or already a tombstone, and does
nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reelplane.backends import Backends
from reelplane.events.consumer import run_consumer
from reelplane.events.envelope import Event, VideoDeleted, utc_now
from reelplane.events.runner import Handler
from reelplane.schema import video_assets, videos
from reelplane.upload.engine import UploadEngine
from reelplane.upload.settings import UploadSettings

log = logging.getLogger(__name__)

ASSETS_GROUP = "upload-assets"


@dataclass(frozen=True)
class AssetObjects:
    """What a tombstoned asset leaves to remove: single keys and key prefixes."""

    keys: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()


def asset_objects(source_key: str | None, master_playlist_key: str | None) -> AssetObjects:
    """The objects of an asset: its source, and the folder of the transcode run
    that made it ready (`assets/<sha256>/<run>/`: playlists, segments, poster,
    stills). Only that run's folder: a run started after the tombstone (a new
    upload of the same bytes) writes to a folder of its own."""
    keys = (source_key,) if source_key else ()
    prefixes: tuple[str, ...] = ()
    if master_playlist_key and "/" in master_playlist_key:
        prefixes = (master_playlist_key.rsplit("/", 1)[0] + "/",)
    return AssetObjects(keys, prefixes)


async def release_video_media(backends: Backends, video_id: str) -> AssetObjects:
    """Remove the media of a deleted video that no live video shares; returns
    what was removed (nothing while the asset is shared or the video is not
    deleted). A video deleted while still uploading has its upload dropped.
    Safe to repeat."""
    async with backends.database.transaction() as conn:
        video = (
            await conn.execute(
                select(videos.c.state, videos.c.asset_sha256).where(videos.c.id == video_id)
            )
        ).first()
        if video is None or video.state != "deleted":
            return AssetObjects()
        sha256 = video.asset_sha256
        doomed = AssetObjects()
        if sha256 is not None:
            doomed = await _tombstone_if_unused(conn, sha256, utc_now())
    if sha256 is None:
        await UploadEngine(backends, UploadSettings()).abandon(video_id)
        return doomed
    await remove_objects(backends, doomed)
    if doomed.keys or doomed.prefixes:
        log.info(
            "deleted video's media removed",
            extra={"video_id": video_id, "sha256": sha256, "keys": list(doomed.keys)},
        )
    return doomed


async def _tombstone_if_unused(conn: AsyncConnection, sha256: str, now: datetime) -> AssetObjects:
    """Mark the asset deleted if no live video uses it; what to remove then."""
    # Write first: the row lock (MySQL) / the database write lock (SQLite) orders
    # this against an upload of the same bytes attaching a video to the asset
    # (UploadEngine._accept locks the row too), so a new user is either counted
    # here or finds the tombstone and revives the asset.
    locked = await conn.execute(
        update(video_assets).where(video_assets.c.sha256 == sha256).values(updated_at=now)
    )
    if not locked.rowcount:
        return AssetObjects()
    asset = (await conn.execute(select(video_assets).where(video_assets.c.sha256 == sha256))).one()
    if asset.state == "deleted":
        return AssetObjects()
    users = (
        await conn.execute(
            select(func.count())
            .select_from(videos)
            .where(videos.c.asset_sha256 == sha256, videos.c.state != "deleted")
        )
    ).scalar_one()
    if users:
        return AssetObjects()
    await conn.execute(
        update(video_assets)
        .where(video_assets.c.sha256 == sha256)
        .values(
            state="deleted",
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
    return asset_objects(asset.source_key, asset.master_playlist_key)


async def remove_objects(backends: Backends, doomed: AssetObjects) -> None:
    objects = backends.objects
    for key in doomed.keys:
        await objects.delete(key)
    for prefix in doomed.prefixes:
        keys = [info.key async for info in objects.list_objects(prefix)]
        for start in range(0, len(keys), 16):
            await asyncio.gather(*(objects.delete(k) for k in keys[start : start + 16]))


def deletions_handler(backends: Backends) -> Handler:
    async def handle(event: Event) -> None:
        if isinstance(event, VideoDeleted):
            await release_video_media(backends, event.payload.video_id)

    return handle


async def consume_deletions(backends: Backends, stop: asyncio.Event) -> None:
    """BackgroundTask of the upload service: `video.deleted` -> media removed."""
    await run_consumer(
        backends, stop, topics=["videos"], group=ASSETS_GROUP, handler=deletions_handler(backends)
    )
