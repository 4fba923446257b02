"""tus concatenation: a final upload made of finished partial uploads.

The partials' bytes are copied, in order, into the final upload's multipart
upload (one part stored while the next one is read, cut as a PATCH would cut
them), hashed on the way, and the final upload is finished like any other.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING

from reelplane.errors import NotFound, ReelplaneError
from reelplane.ports.objects import Part
from reelplane.upload.engine.body import Received, cancel
from reelplane.upload.engine.hashing import Hashing
from reelplane.upload.engine.parts import part_plan
from reelplane.upload.engine.rows import Upload
from reelplane.upload.errors import BadTusRequest, PartialUploadIncomplete, UploadTooLarge
from reelplane.videos.model import VideoState

if TYPE_CHECKING:
    from reelplane.upload.engine.operations import UploadEngine


async def create_final(
    engine: UploadEngine,
    owner_id: str,
    partial_ids: tuple[str, ...],
    metadata: dict[str, str],
) -> Upload:
    """tus concatenation: a new upload (and video) made of the caller's
    finished partial uploads joined in order, then finished like any upload
    (MediaRejected when the result is not an acceptable video). The partial
    uploads are used up. BadTusRequest (400) for an unknown partial or one
    that is not partial; PartialUploadIncomplete (409) for an unfinished one."""
    leases: list[tuple[str, str]] = []
    try:
        partials = []
        for partial_id in partial_ids:
            try:
                token, partial = await engine.leases.lock(partial_id)
            except NotFound:
                raise BadTusRequest(f"partial upload {partial_id} does not exist") from None
            leases.append((partial_id, token))
            partials.append(usable_partial(partial, owner_id))
        length = sum(p.length for p in partials)
        if length > engine.settings.upload_max_size_bytes:
            raise UploadTooLarge(
                f"the partial uploads add up to {length} bytes; this server accepts at "
                f"most {engine.settings.upload_max_size_bytes} (Tus-Max-Size)"
            )
        final = await engine.create(
            owner_id, length, metadata, concat="final", concat_of=partial_ids
        )
        token, final = await engine.leases.lock(final.id)
        try:
            try:
                parts, sha256 = await join_partials(engine, final, partials)
            except BaseException:
                # A final upload takes no PATCH, so one that could not be joined
                # can never finish: end it now (the partials are kept for a retry).
                await engine.end(final, VideoState.FAILED, "joining the partial uploads failed")
                await engine.acceptor.announce_outcomes([final.id])
                raise
            await engine.leases.commit(
                final,
                token,
                expected_offset=0,
                offset=length,
                parts=parts,
                pending_key=None,
                pending_size=0,
                state="completing",
            )
            for partial in partials:
                await engine.end(partial, VideoState.DELETED, "joined into a final upload")
            done = replace(final, state="completing", offset=length, parts=tuple(parts))
            await engine.acceptor.finish(done, sha256=sha256)
        finally:
            await engine.leases.unlock(final.id, token)
        return replace(done, state="done")
    finally:
        for partial_id, token in leases:
            await engine.leases.unlock(partial_id, token)


def usable_partial(upload: Upload, owner_id: str) -> Upload:
    if upload.owner_id != owner_id or upload.state == "terminated":
        raise BadTusRequest(f"partial upload {upload.id} does not exist")
    if upload.concat != "partial":
        raise BadTusRequest(f"upload {upload.id} is not a partial upload (Upload-Concat)")
    if upload.state != "done":
        raise PartialUploadIncomplete(
            f"partial upload {upload.id} has {upload.offset} of its {upload.length} bytes; "
            "finish it first"
        )
    return upload


async def join_partials(
    engine: UploadEngine, final: Upload, partials: list[Upload]
) -> tuple[list[Part], str]:
    """Copy the partials' bytes, in order, into the final upload's multipart
    upload (a part stored while the next one is read) and hash them; returns
    the parts and the SHA-256."""
    multipart_id = final.multipart_id
    assert multipart_id is not None
    part_size = engine.settings.upload_part_size_bytes
    hasher = hashlib.sha256()
    hashing = Hashing([hasher])
    buffer = Received()
    parts: list[Part] = []
    left = final.length
    sizes = deque(part_plan(0, final.length, part_size))  # as in a PATCH
    storing: asyncio.Task[Part] | None = None

    async def cut(data: bytes) -> None:
        nonlocal storing
        if storing is not None:
            parts.append(await storing)
        number = len(parts) + 1
        storing = asyncio.ensure_future(
            engine.objects.upload_part(final.object_key, multipart_id, number, data)
        )

    try:
        for partial in partials:
            async for chunk in engine.objects.stream(partial.object_key, chunk_size=1 << 20):
                left -= len(chunk)
                buffer.add(chunk)
                hashing.add(chunk)
                while sizes and buffer.size >= sizes[0]:
                    await cut(buffer.take(sizes.popleft()))
        if left != 0:
            raise ReelplaneError(f"upload {final.id}: partial uploads lost {left} bytes")
        if buffer:  # less than a part in all: one part
            await cut(buffer.join())
        assert storing is not None
        parts.append(await storing)
        await hashing.flush()
    finally:
        if storing is not None:
            await cancel(storing)
        await hashing.close()
    info = await engine.objects.complete_multipart(final.object_key, multipart_id, parts)
    if info.size != final.length:
        raise ReelplaneError(
            f"upload {final.id}: joined object has {info.size} bytes, expected {final.length}"
        )
    return parts, hasher.hexdigest()
