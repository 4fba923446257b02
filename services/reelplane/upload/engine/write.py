"""Writing one PATCH body into its upload (`PatchWrite`).

Only a PATCH that leaves less than a part (a short one, or one whose
connection dropped) writes its tail as a small "pending" object, so the
upload's offset is durable and any replica can resume it: the next PATCH reads
the pending tail back and it starts the PATCH's first part. A part's bytes
stay in memory until it is stored: about two parts at most per PATCH. Bytes
are hashed in a worker thread as they arrive. Without a Content-Length (a
chunked body), parts are cut as bytes fill them, and one is stored while the
next one is received.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import replace
from typing import Any

from reelplane.errors import ReelplaneError
from reelplane.ports.objects import ObjectStore, Part
from reelplane.upload.engine.body import Received, RequestBody, cancel
from reelplane.upload.engine.hashing import Hashing, RunningHashes
from reelplane.upload.engine.lease import Lingering, PatchLease, UploadLeases
from reelplane.upload.engine.parts import PartStreams, part_plan
from reelplane.upload.engine.rows import Upload
from reelplane.upload.errors import BadTusRequest, ChecksumMismatch, UploadTooLarge
from reelplane.upload.settings import UploadSettings
from reelplane.upload.tus import Checksum

#: Validates and publishes a complete upload (`sha256` None: computed from the object).
Finish = Callable[[Upload, str | None], Awaitable[None]]


class PatchWrite:
    """One PATCH's bytes, from the body to the upload's row. What it holds, as
    the body arrives:

    - `buffer`: bytes received but in no part yet (it starts with the pending
      tail an earlier PATCH left, which is in the running hash already);
    - `parts`: the upload's stored parts, this PATCH's appended as they are
      stored; `committed`: the offset the row says (moved by each commit);
    - `stale_pending`: the earlier pending tail, deleted once a commit no
      longer names it;
    - `received`: body bytes so far, all hashed by `hashing` (the checksum's
      hasher first, then the upload's running SHA-256 when this process has it).

    With a checksum the PATCH is all or nothing (`deferred`): nothing is
    committed before the digest is checked (uploaded parts past the committed
    ones are simply overwritten by the next attempt).
    """

    def __init__(
        self,
        upload: Upload,
        lease: PatchLease,
        *,
        objects: ObjectStore,
        leases: UploadLeases,
        hashes: RunningHashes,
        settings: UploadSettings,
        finish: Finish,
        checksum: Checksum | None,
    ) -> None:
        assert upload.multipart_id is not None
        self.upload = upload
        self.lease = lease
        self.objects = objects
        self.leases = leases
        self.hashes = hashes
        self.finish = finish
        self.checksum = checksum
        self.part_size = settings.upload_part_size_bytes
        self.multipart_id: str = upload.multipart_id
        self.buffer = Received()
        self.parts = list(upload.parts)
        self.committed = upload.offset
        self.stale_pending = upload.pending_key
        self.deferred = checksum is not None
        self.hashers: list[Any] = [checksum.new_hasher()] if checksum is not None else []
        self.running: Any | None = None  # the upload's running SHA-256, when this process has it
        self.received = 0

    async def run(
        self, body: RequestBody, chunks: AsyncIterable[bytes], content_length: int | None
    ) -> Upload:
        """Store the body's bytes and commit them; the upload as it is after."""
        self.buffer.add(await self._pending_tail())
        self.running = self.hashes.take(self.upload.id, self.upload.offset)  # kept on success
        if self.running is not None:
            self.hashers.append(self.running)
        await self._receive(chunks, content_length)
        if self.lease.renewing is not None:
            await self.lease.keep()  # a taken-over lease is renewed before anything is stored
        if self.received == 0:
            return self.upload
        if self.deferred:
            if body.disconnected:
                return self.upload  # a cut body cannot be verified: the spec says discard it
            self._verify()
        if self.upload.offset + self.received == self.upload.length:
            return await self._complete()
        return await self._commit_end()

    async def _pending_tail(self) -> bytes:
        """The tail an earlier PATCH left shorter than a part (b"" when none)."""
        upload = self.upload
        if not upload.pending_key:
            return b""
        data = await self.objects.get(upload.pending_key)
        if len(data) != upload.pending_size:
            raise ReelplaneError(
                f"upload {upload.id}: pending tail has {len(data)} bytes, "
                f"expected {upload.pending_size}"
            )
        return data

    async def _receive(self, chunks: AsyncIterable[bytes], content_length: int | None) -> None:
        """Read the body and store every part it completes. With a
        Content-Length, every part's size is known before its bytes arrive
        (`part_plan`), so each part is streamed to the store as it is received.
        Without one (a chunked body), parts are cut from `buffer` as it fills
        up, and one is stored while the next one is received. Either way bytes
        are hashed in a thread as they arrive."""
        upload, lease = self.upload, self.lease
        plan = (
            []
            if content_length is None
            else part_plan(self.buffer.size, content_length, self.part_size)
        )
        streams: PartStreams | None = None
        if plan:
            streams = PartStreams(
                self.objects,
                upload.object_key,
                self.multipart_id,
                plan,
                len(self.parts) + 1,
                record=self._record,
                check_lease=lease.keep_for_a_part,
            )
        hashing = Hashing(self.hashers)
        storing: asyncio.Task[None] | None = None
        try:
            if streams is not None:
                await streams.feed(self.buffer.join())  # the pending tail starts the first part
            async for chunk in chunks:
                if upload.offset + self.received + len(chunk) > upload.length:
                    raise UploadTooLarge(
                        f"the PATCH carries more than the {upload.length - upload.offset} "
                        f"bytes left of upload {upload.id}"
                    )
                if content_length is not None and self.received + len(chunk) > content_length:
                    raise BadTusRequest("the body is longer than its Content-Length")
                await lease.keep_while_receiving()
                self.received += len(chunk)
                hashing.add(chunk)
                if streams is not None:
                    await streams.feed(chunk)
                    continue
                self.buffer.add(chunk)
                while self.buffer.size >= self.part_size:  # only without a Content-Length
                    data = self.buffer.take(self.part_size)
                    if storing is not None:
                        await storing
                    storing = asyncio.ensure_future(self._store(len(self.parts) + 1, data))
            if streams is not None:
                # Empty, unless the body was cut: then what arrived of the part
                # it was cut in, stored below if it makes a part (the remainder
                # of the PATCH's last part), else the pending tail.
                self.buffer = await streams.finish()
            if storing is not None:
                await storing
                storing = None
            end = upload.offset + self.received
            if end < upload.length and self.buffer.size >= self.part_size:
                storing = asyncio.ensure_future(
                    self._store(len(self.parts) + 1, self.buffer.join())
                )
            await hashing.flush()
            if storing is not None:
                await storing
        finally:
            if streams is not None:
                await streams.close()
            if storing is not None:
                await cancel(storing)
            await hashing.close()

    async def _record(self, part: Part, last: bool) -> None:
        """Add a stored part and commit it, giving the lease up with `last`
        (the PATCH's last byte: no pending object is needed). Not committed:
        the parts of a PATCH with a checksum (the digest is checked first)
        and the upload's last part (`_complete` commits it)."""
        self.parts.append(part)
        new_offset = sum(p.size for p in self.parts)  # the pending tail is in the first one
        if self.deferred or new_offset == self.upload.length:
            return
        asked = time.monotonic()
        await self.leases.commit(
            self.upload,
            self.lease.token,
            expected_offset=self.committed,
            offset=new_offset,
            parts=self.parts,
            pending_key=None,
            pending_size=0,
            release=last,
        )
        self.lease.committed(asked, released=last)
        self.committed = new_offset
        if self.stale_pending:
            await self.objects.delete(self.stale_pending)
            self.stale_pending = None

    async def _store(self, number: int, data: bytes) -> None:
        """Upload and commit a part from memory (a chunked body's, or what
        arrived of a streamed part before the body was cut)."""
        await self.lease.keep_for_a_part()
        part = await self.objects.upload_part(
            self.upload.object_key, self.multipart_id, number, data
        )
        await self._record(part, last=False)  # the PATCH's end is committed after it

    def _verify(self) -> None:
        """ChecksumMismatch (460) when the body's digest is not Upload-Checksum's."""
        assert self.checksum is not None
        if not self.checksum.matches(self.hashers[0]):
            raise ChecksumMismatch(
                f"the {self.checksum.algorithm} of the {self.received} bytes received does not "
                "match Upload-Checksum; nothing was stored, resend from "
                f"offset {self.upload.offset}",
                headers={"Upload-Offset": str(self.upload.offset)},
            )

    async def _commit_end(self) -> Upload:
        """The PATCH ended before the upload's last byte: store what is left
        short of a part as the pending tail and commit the new offset, leaving
        the lease lingering for the client's next PATCH."""
        upload, lease = self.upload, self.lease
        end = upload.offset + self.received
        tail = self.buffer.join()
        pending_key: str | None = None
        if tail:
            pending_key = f"uploads/{upload.id}/pending/{uuid.uuid4().hex}"
            await self.objects.put(pending_key, tail)
        try:
            if self.committed == end and pending_key is None:
                if not lease.released:
                    await self.leases.unlock(upload.id, lease.token)
            else:
                asked = time.monotonic()
                await self.leases.commit(
                    upload,
                    lease.token,
                    expected_offset=self.committed,
                    offset=end,
                    parts=self.parts,
                    pending_key=pending_key,
                    pending_size=len(tail),
                    release=True,
                )
                lease.lingers_until = asked + self.leases.linger_s
            lease.released = True
        except BaseException:
            if pending_key:
                await self.objects.delete(pending_key)
            raise
        if self.stale_pending and self.stale_pending != pending_key:
            await self.objects.delete(self.stale_pending)
        if self.running is not None:
            self.hashes.keep(upload.id, end, self.running)
        written = replace(
            upload,
            offset=end,
            parts=tuple(self.parts),
            pending_key=pending_key,
            pending_size=len(tail),
        )
        if lease.lingers_until is not None and self.leases.linger_s > 0:
            self.leases.keep_lingering(Lingering(lease.token, lease.lingers_until, written))
        return written

    async def _complete(self) -> Upload:
        """The last byte arrived: join the parts into the source object, then finish."""
        upload, parts = self.upload, self.parts
        tail = self.buffer.join()
        if tail or not parts:
            parts.append(
                await self.objects.upload_part(
                    upload.object_key, self.multipart_id, len(parts) + 1, bytes(tail)
                )
            )
        info = await self.objects.complete_multipart(upload.object_key, self.multipart_id, parts)
        if info.size != upload.length:
            raise ReelplaneError(
                f"upload {upload.id}: source object has {info.size} bytes, expected {upload.length}"
            )
        partial = upload.concat == "partial"
        await self.leases.commit(
            upload,
            self.lease.token,
            expected_offset=self.committed,
            offset=upload.length,
            parts=parts,
            pending_key=None,
            pending_size=0,
            # A partial upload is bytes waiting for its final upload: nothing to validate.
            state="done" if partial else "completing",
            release=partial,
        )
        if self.stale_pending:
            await self.objects.delete(self.stale_pending)
        if partial:
            return replace(upload, state="done", offset=upload.length, parts=tuple(parts))
        sha256 = self.running.hexdigest() if self.running is not None else None
        done = replace(upload, state="completing", offset=upload.length, parts=tuple(parts))
        await self.finish(done, sha256)
        return replace(done, state="done")
