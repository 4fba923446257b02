"""The tus operations on uploads: create, read, append (PATCH), concatenate,
terminate, and the janitor's sweep. Each operation takes the upload's lease
(`lease`), does its work through the part that owns it (`write`, `accept`,
`concat`, `janitor`) and commits under the lease."""

from __future__ import annotations

import uuid
from datetime import timedelta

from reelplane.backends import Backends
from reelplane.errors import NotFound, ReelplaneError
from reelplane.events.envelope import utc_now
from reelplane.schema import uploads
from reelplane.upload.engine import concat, janitor
from reelplane.upload.engine.accept import Acceptor, end_upload, log_rejected
from reelplane.upload.engine.body import ReadAhead, RequestBody, refuse_bytes_past_end
from reelplane.upload.engine.hashing import RunningHashes
from reelplane.upload.engine.lease import UploadLeases
from reelplane.upload.engine.rows import Upload, load_upload
from reelplane.upload.engine.write import PatchWrite
from reelplane.upload.errors import (
    BadTusRequest,
    FinalUploadForbidden,
    MediaRejected,
    UploadGone,
)
from reelplane.upload.metadata import video_metadata
from reelplane.upload.settings import UploadSettings
from reelplane.upload.tus import Checksum, check_fits, check_offset
from reelplane.videos import store
from reelplane.videos.model import VideoState


class UploadEngine:
    """Creates, appends to, finishes and terminates tus uploads. One per process
    (it keeps the running hashes and the lingering leases); safe to run on many
    replicas at once."""

    def __init__(self, backends: Backends, settings: UploadSettings) -> None:
        self.backends = backends
        self.settings = settings
        self.db = backends.database
        self.objects = backends.objects
        self.hashes = RunningHashes()
        self.leases = UploadLeases(backends.database, settings)
        self.acceptor = Acceptor(backends, settings, self.hashes)

    # -- creation ---------------------------------------------------------------
    async def create(
        self,
        owner_id: str,
        length: int,
        metadata: dict[str, str],
        *,
        concat: str | None = None,
        concat_of: tuple[str, ...] = (),
    ) -> Upload:
        """Start an upload of `length` bytes (its video starts `uploading`). A
        `partial` upload (tus concatenation) holds bytes only: no video."""
        if concat == "partial" and length == 0:
            raise BadTusRequest("a partial upload needs at least one byte")
        meta = video_metadata(
            metadata,
            caption_max_chars=self.settings.upload_caption_max_chars,
            max_hashtags=self.settings.upload_max_hashtags,
        )
        video_id = uuid.uuid4().hex
        now = utc_now()
        video_row = {
            "id": video_id,
            "owner_id": owner_id,
            "caption": meta.caption,
            "hashtags": meta.hashtags,
            "state": VideoState.UPLOADING,
            "size_bytes": length,
            "created_at": now,
            "updated_at": now,
        }
        object_key = f"uploads/{video_id}/source"
        if length == 0:
            reason = "the file is empty (0 bytes)"
            log_rejected(video_id, owner_id, length, reason)
            async with self.db.transaction() as conn:
                await store.insert_video(
                    conn, **{**video_row, "state": VideoState.FAILED}, failure_reason=reason
                )
            await self.acceptor.announce_outcomes([video_id])
            raise MediaRejected(reason, video_id=video_id)
        multipart_id = await self.objects.create_multipart(object_key)
        upload_row = {
            "id": video_id,
            "owner_id": owner_id,
            "state": "active",
            "length": length,
            "offset": 0,
            "object_key": object_key,
            "multipart_id": multipart_id,
            "parts": [],
            "pending_key": None,
            "pending_size": 0,
            "upload_metadata": metadata,
            "concat": concat,
            "concat_of": list(concat_of) if concat == "final" else None,
            "expires_at": now + timedelta(seconds=self.settings.upload_expiry_s),
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.db.transaction() as conn:
                if concat != "partial":
                    await store.insert_video(conn, **video_row)
                await conn.execute(uploads.insert().values(**upload_row))
        except BaseException:
            await self.objects.abort_multipart(object_key, multipart_id)
            raise
        self.hashes.start(video_id)
        return await self._load(video_id)

    async def create_final(
        self, owner_id: str, partial_ids: tuple[str, ...], metadata: dict[str, str]
    ) -> Upload:
        """tus concatenation (see `concat.create_final`)."""
        return await concat.create_final(self, owner_id, partial_ids, metadata)

    # -- reading ---------------------------------------------------------------
    async def _load(self, upload_id: str) -> Upload:
        return await load_upload(self.db, upload_id)

    async def get(self, owner_id: str, upload_id: str) -> Upload:
        """The caller's upload; NotFound for anyone else's, UploadGone (410) once
        it expired, was terminated or was rejected."""
        upload = await self._load(upload_id)
        if upload.owner_id != owner_id:
            raise NotFound(f"upload {upload_id} does not exist")
        if upload.state == "terminated":
            raise UploadGone(f"upload {upload_id} was terminated or expired")
        if upload.state == "failed":
            reason = await store.failure_reason(self.db, upload_id) or "unknown reason"
            raise UploadGone(f"upload {upload_id} was rejected: {reason}")
        if upload.state == "active" and upload.expires_at <= utc_now():
            raise UploadGone(f"upload {upload_id} expired at {upload.expires_at.isoformat()}")
        return upload

    # -- appending ---------------------------------------------------------------
    async def append(
        self,
        owner_id: str,
        upload_id: str,
        *,
        offset: int,
        content_length: int | None,
        checksum: Checksum | None,
        body: RequestBody,
    ) -> Upload:
        """Write a PATCH body at `offset`; finishes the upload on its last byte
        (MediaRejected when the file is not an acceptable video)."""
        # The lease (and the row read under it) is taken while the body's first
        # part arrives: every PATCH waits for both and neither needs the other.
        # Nothing is stored before the checks on the row have passed.
        reading = ReadAhead(aiter(body), self.settings.upload_part_size_bytes)
        try:
            lease, upload = await self.leases.for_patch(upload_id)
        except BaseException:
            await reading.close()
            raise
        try:
            # A kept lease comes with the row as this process left it. Anything
            # but streaming a part's first bytes waits until its renewal proves
            # the row current: reading the pending tail it names, and a refusal.
            stale = (
                lease.renewing is not None
                and upload.pending_key is not None
                and not await lease.renewed()
            )
            if stale:
                lease, upload = await self.leases.relock(lease)
            try:
                writable = await self._check_patch(upload, owner_id, offset, content_length)
            except ReelplaneError:
                if lease.renewing is None or await lease.renewed():
                    raise  # checked against the row as it is: the refusal stands
                lease, upload = await self.leases.relock(lease)
                writable = await self._check_patch(upload, owner_id, offset, content_length)
            if not writable:
                # Complete already: an empty PATCH at the end is a no-op; one
                # carrying bytes (a chunked body: no Content-Length to check)
                # goes past Upload-Length.
                await refuse_bytes_past_end(reading, upload)
                return upload
            write = PatchWrite(
                upload,
                lease,
                objects=self.objects,
                leases=self.leases,
                hashes=self.hashes,
                settings=self.settings,
                finish=self._finish,
                checksum=checksum,
            )
            return await write.run(body, reading, content_length)
        finally:
            await reading.close()
            await lease.end()

    async def _finish(self, upload: Upload, sha256: str | None) -> None:
        await self.acceptor.finish(upload, sha256=sha256)

    async def _check_patch(
        self, upload: Upload, owner_id: str, offset: int, content_length: int | None
    ) -> bool:
        """Refuse a PATCH the upload cannot take (the tus errors); False when
        the upload is complete already."""
        self._check_access(upload, owner_id)
        if upload.concat == "final":
            raise FinalUploadForbidden(
                f"upload {upload.id} is a final upload, made of its partial uploads; "
                "send bytes to a partial upload"
            )
        if upload.state == "failed":
            await self.get(owner_id, upload.id)  # raises UploadGone with the reason
        check_offset(offset, upload.offset)
        check_fits(offset, content_length, upload.length)
        return upload.state == "active"

    def _check_access(self, upload: Upload, owner_id: str) -> None:
        """NotFound for anyone but the owner; UploadGone once terminated or expired."""
        if upload.owner_id != owner_id:
            raise NotFound(f"upload {upload.id} does not exist")
        if upload.state == "terminated":
            raise UploadGone(f"upload {upload.id} was terminated or expired")
        if upload.state == "active" and upload.expires_at <= utc_now():
            raise UploadGone(f"upload {upload.id} expired at {upload.expires_at.isoformat()}")

    # -- termination -------------------------------------------------------------
    async def terminate(self, owner_id: str, upload_id: str) -> None:
        """tus termination: drop an unfinished upload and everything it stored."""
        upload = await self.get(owner_id, upload_id)
        unused_partial = upload.concat == "partial" and upload.state == "done"
        if upload.state != "active" and not unused_partial:
            raise UploadGone(f"upload {upload_id} is complete; delete the video instead")
        token, locked = await self.leases.lock(upload_id)
        try:
            await self.end(locked, VideoState.DELETED, "terminated by its owner")
        finally:
            await self.leases.unlock(upload_id, token)

    async def abandon(self, upload_id: str) -> bool:
        """Drop an unfinished upload whose video was deleted, and everything it
        stored; False when there is no such upload or it is not unfinished.
        UploadLocked while a PATCH is writing to it (try again later)."""
        try:
            token, locked = await self.leases.lock(upload_id)
        except NotFound:
            return False
        try:
            if locked.state != "active":
                return False
            await self.end(locked, VideoState.DELETED, "the video was deleted")
            return True
        finally:
            await self.leases.unlock(upload_id, token)

    async def end(self, upload: Upload, video_state: VideoState, reason: str) -> None:
        """End an unfinished upload (under its lease): its objects go, its video
        takes `video_state` with `reason`."""
        await end_upload(
            self.db,
            self.objects,
            upload,
            {"state": "terminated", "pending_key": None},
            video_state,
            reason,
        )
        self.hashes.forget(upload.id)

    # -- janitor -------------------------------------------------------------------
    async def sweep(self) -> dict[str, int]:
        """One janitor pass (see `janitor.sweep`); counts by what it did."""
        return await janitor.sweep(self)
