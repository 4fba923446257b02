"""The accept path: a complete upload is read back, hashed when needed, probed,
then rejected (the video fails, its objects go) or accepted: pointed at its
content-addressed asset (a new one, or an existing one: dedup) and announced.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from pathlib import Path
from typing import IO, Any

from sqlalchemy import update

from reelplane.backends import Backends
from reelplane.events.envelope import utc_now
from reelplane.events.publisher import EventPublisher
from reelplane.media.ffprobe import run_ffprobe
from reelplane.media.probe import ProbeResult, SourceLimits, rejection_reason
from reelplane.ports.objects import ObjectStore
from reelplane.ports.relational import Database
from reelplane.schema import uploads
from reelplane.upload.engine.hashing import RunningHashes
from reelplane.upload.engine.rows import Upload
from reelplane.upload.errors import MediaRejected
from reelplane.upload.settings import UploadSettings
from reelplane.videos import store
from reelplane.videos.announce import announce_outcomes, announce_uploaded
from reelplane.videos.model import VideoState

log = logging.getLogger(__name__)


def log_rejected(video_id: str, owner_id: str, size_bytes: int, reason: str) -> None:
    """One line per rejected upload, saying why (the video's failure_reason)."""
    log.info(
        "upload rejected",
        extra={
            "video_id": video_id,
            "owner_id": owner_id,
            "size_bytes": size_bytes,
            "reason": reason,
        },
    )


def _write_chunk(out: IO[bytes], hasher: Any | None, chunk: bytes) -> None:
    out.write(chunk)
    if hasher is not None:
        hasher.update(chunk)


async def remove_objects(objects: ObjectStore, upload: Upload) -> None:
    """Every object an unfinished or rejected upload stored."""
    if upload.multipart_id:
        await objects.abort_multipart(upload.object_key, upload.multipart_id)
    if upload.pending_key:
        await objects.delete(upload.pending_key)
    async for info in objects.list_objects(f"uploads/{upload.id}/"):
        await objects.delete(info.key)


async def end_upload(
    database: Database,
    objects: ObjectStore,
    upload: Upload,
    upload_values: dict[str, Any],
    video_state: VideoState,
    reason: str,
) -> None:
    """Remove every object of the upload, then write its row's `upload_values`
    and move its video to `video_state` with `reason`, in one transaction."""
    await remove_objects(objects, upload)
    now = utc_now()
    async with database.transaction() as conn:
        await conn.execute(
            update(uploads).where(uploads.c.id == upload.id).values(updated_at=now, **upload_values)
        )
        await store.set_video_state(conn, upload.id, video_state, reason=reason, now=now)


class Acceptor:
    """Validates complete uploads and publishes them (or rejects them)."""

    def __init__(self, backends: Backends, settings: UploadSettings, hashes: RunningHashes) -> None:
        self.db = backends.database
        self.objects = backends.objects
        self.publisher = EventPublisher(backends.bus)
        self.settings = settings
        self.hashes = hashes

    @property
    def limits(self) -> SourceLimits:
        s = self.settings
        return SourceLimits(
            max_duration_s=s.upload_max_duration_s,
            min_duration_s=s.upload_min_duration_s,
            min_side_px=s.upload_min_side_px,
            max_side_px=s.upload_max_side_px,
            max_aspect_ratio=s.upload_max_aspect_ratio,
        )

    async def finish(self, upload: Upload, *, sha256: str | None = None) -> None:
        """Validate and publish a complete upload (idempotent; the janitor calls it
        again for one whose process died half-way). MediaRejected when rejected."""
        scratch = self.settings.upload_work_dir
        if scratch is not None:
            scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="reelplane-probe-", dir=scratch) as folder:
            path = Path(folder) / "source"
            computed = await self._download(upload.object_key, path, hashing=sha256 is None)
            sha256 = sha256 or computed
            probe = await run_ffprobe(
                path, binary=self.settings.ffprobe_path, timeout_s=self.settings.ffprobe_timeout_s
            )
        assert sha256 is not None
        reason = rejection_reason(probe, self.limits)
        if reason is not None:
            await self.reject(upload, reason)
            raise MediaRejected(reason, video_id=upload.id)
        await self.accept(upload, sha256, probe)

    async def _download(self, key: str, path: Path, *, hashing: bool) -> str | None:
        """Stream an object to a local file (SHA-256 on the way when asked)."""
        hasher = hashlib.sha256() if hashing else None
        with path.open("wb") as out:
            async for chunk in self.objects.stream(key, chunk_size=1 << 20):
                await asyncio.to_thread(_write_chunk, out, hasher, chunk)
        return hasher.hexdigest() if hasher is not None else None

    async def reject(self, upload: Upload, reason: str) -> None:
        """Mark the video failed with `reason` and remove every object of the upload."""
        log_rejected(upload.id, upload.owner_id, upload.length, reason)
        await end_upload(
            self.db,
            self.objects,
            upload,
            {"state": "failed"},
            VideoState.FAILED,
            reason[: store.REASON_CHARS],
        )
        self.hashes.forget(upload.id)
        await self.announce_outcomes([upload.id])

    async def accept(self, upload: Upload, sha256: str, probe: ProbeResult) -> None:
        """Point the video at its content-addressed asset (a new one, or an
        existing one: dedup) and publish `video.uploaded` (and `video.ready`
        when the asset was already transcoded)."""
        video = probe.video
        assert video is not None
        source = store.SourceFacts(
            video_id=upload.id,
            sha256=sha256,
            source_key=upload.object_key,
            size_bytes=upload.length,
            duration_ms=probe.duration_ms,
            width=video.display_width,
            height=video.display_height,
        )
        done = (
            update(uploads)
            .where(uploads.c.id == upload.id)
            .values(state="done", updated_at=utc_now())
        )
        state, duplicate = await store.attach_to_asset(self.db, source, also=[done])
        self.hashes.forget(upload.id)
        if duplicate:
            # Same bytes already stored as the asset's source: keep one copy.
            await self.objects.delete(upload.object_key)
        await announce_uploaded(self.db, self.publisher, upload.id)
        if state == VideoState.READY:
            await self.announce_outcomes([upload.id])

    async def announce_outcomes(self, video_ids: list[str]) -> None:
        try:
            await announce_outcomes(self.db, self.publisher, video_ids)
        except Exception:  # the janitor publishes it later; the state is committed
            log.warning("could not announce video outcome yet", exc_info=True)
