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

from reelplane.backends import Backends
from reelplane.events.consumer import run_consumer
from reelplane.events.envelope import Event, VideoDeleted, utc_now
from reelplane.events.runner import Handler
from reelplane.upload.engine import UploadEngine
from reelplane.upload.settings import UploadSettings
from reelplane.videos import store

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
        deleted, sha256 = await store.deleted_video_asset(conn, video_id)
        if not deleted:
            return AssetObjects()
        doomed = AssetObjects()
        if sha256 is not None:
            found = await store.tombstone_if_unused(conn, sha256, utc_now())
            if found is not None:
                doomed = asset_objects(found.source_key, found.master_playlist_key)
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
