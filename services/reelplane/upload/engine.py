"""The upload engine: tus uploads streamed into the object store, then hashed,
probed, deduplicated and announced. The I/O half of the upload service; the
rules it applies live in `tus`, `metadata` and `probe`.

How bytes are kept. An upload is one S3 multipart upload of its source object.
A PATCH's bytes are cut into parts of `upload_part_size_bytes` (5 MiB; a
PATCH's last part takes its remainder, so it may be up to twice that: the rule
is `part_plan`); each part is uploaded and recorded in the `uploads` row. Only
a PATCH that leaves less than a part (a short one, or one whose connection
dropped) writes its tail as a small "pending" object, so the upload's offset is
durable and any replica can resume it: the next PATCH reads the pending tail
back and it starts the PATCH's first part. A part's bytes stay in memory until
it is stored: about two parts at most per PATCH.

Per PATCH, the lease is taken while the body's first bytes arrive, and bytes
are hashed in a worker thread as they arrive. With a Content-Length (tus
clients send one), the size of every part the PATCH stores is known before its
bytes arrive, so each part is streamed into the store while it is received,
through a bounded queue (`_PartStreams`): a 5 MiB PATCH costs about the slower
of receiving and storing it, plus one relational commit. A part that the body
is cut in is cancelled (the store records nothing) and what arrived of it is
kept as the pending tail; a part whose stream fails is sent again, whole, from
memory. Without a Content-Length (a chunked body), parts are cut as bytes fill
them, and one is stored while the next one is received.

The whole-file SHA-256. hashlib's state cannot be saved, so each process keeps
the running hash of the uploads it is receiving, keyed by upload id and offset.
When the process that receives the last byte also received every byte before
(the usual case), the digest is ready at once. When it did not (a restart, a
resume on another replica), the digest is computed while the finished object
is read back for ffprobe, which has to happen anyway: no extra pass.

Writers of one upload exclude each other with a lease in its row (a PATCH on
another replica waits for it, then gets 423); every commit is a compare-and-set
on the offset, so a writer that lost its lease can never move the offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import tempfile
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row

from reelplane.backends import Backends
from reelplane.errors import NotFound, ReelplaneError
from reelplane.events.envelope import utc_now
from reelplane.events.publisher import EventPublisher
from reelplane.media.ffprobe import run_ffprobe
from reelplane.media.probe import ProbeResult, SourceLimits, rejection_reason
from reelplane.ports.objects import ObjectStore, Part
from reelplane.schema import uploads, video_assets, videos
from reelplane.upload.announce import announce_outcomes, announce_uploaded, reannounce_stalled
from reelplane.upload.errors import (
    BadTusRequest,
    ChecksumMismatch,
    FinalUploadForbidden,
    MediaRejected,
    PartialUploadIncomplete,
    UploadGone,
    UploadLocked,
    UploadTooLarge,
)
from reelplane.upload.metadata import video_metadata
from reelplane.upload.settings import UploadSettings
from reelplane.upload.tus import Checksum, check_fits, check_offset

log = logging.getLogger(__name__)

#: Running hashes kept per process (each is ~200 bytes; the oldest go first).
MAX_RUNNING_HASHES = 4096


@dataclass(frozen=True)
class Upload:
    """One `uploads` row. Offsets and sizes in bytes."""

    id: str
    owner_id: str
    state: str
    length: int
    offset: int
    object_key: str
    multipart_id: str | None
    parts: tuple[Part, ...]
    pending_key: str | None
    pending_size: int
    metadata: dict[str, str]
    expires_at: datetime
    created_at: datetime
    concat: str | None = None  # tus concatenation: None, "partial" or "final"
    concat_of: tuple[str, ...] = ()  # a final upload's partial uploads, in order

    @classmethod
    def from_row(cls, row: Row[Any]) -> Upload:
        return cls(
            id=row.id,
            owner_id=row.owner_id,
            state=row.state,
            length=int(row.length),
            offset=int(row.offset),
            object_key=row.object_key,
            multipart_id=row.multipart_id,
            parts=tuple(Part(int(p["number"]), str(p["etag"]), int(p["size"])) for p in row.parts),
            pending_key=row.pending_key,
            pending_size=int(row.pending_size),
            metadata=dict(row.upload_metadata or {}),
            expires_at=row.expires_at,
            created_at=row.created_at,
            concat=row.concat,
            concat_of=tuple(row.concat_of or ()),
        )


@dataclass
class RequestBody:
    """A PATCH body as an async iterator of chunks that ends quietly when the
    client goes away (`disconnected` tells) or sends nothing for `idle_timeout_s`."""

    chunks: AsyncIterator[bytes]
    idle_timeout_s: float
    disconnect_errors: tuple[type[BaseException], ...] = ()
    disconnected: bool = field(default=False, init=False)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        iterator = aiter(self.chunks)
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError:
                self.disconnected = True
                return
            except self.disconnect_errors:
                self.disconnected = True
                return
            if chunk:
                yield chunk


@dataclass
class _RunningHash:
    offset: int
    hasher: Any  # hashlib's sha256 object


@dataclass
class _Lease:
    """A PATCH's hold on its upload: `until` (time.monotonic()) is a safe
    estimate of when it runs out; `released` once a commit gave it up (or left
    it lingering, till `lingers_until`); `renewing` a renewal started with the
    PATCH when it took over a lingering lease, awaited before any part is
    stored on it."""

    token: str
    until: float
    released: bool = False
    lingers_until: float | None = None
    renewing: asyncio.Future[bool] | None = None
    renewing_asked: float = 0.0


@dataclass(frozen=True)
class _Lingering:
    """A lease this process kept after a PATCH (`upload_lease_linger_s`), with
    the upload as that PATCH left it: nobody else can change the row before
    `until` (time.monotonic()) without taking the lease."""

    token: str
    until: float
    upload: Upload


#: A lingering lease is taken over only with at least this much of it left.
LINGER_MARGIN_S = 0.5


class _ReadAhead:
    """A PATCH body whose first `limit` bytes are received while the lease is
    taken, then handed on as they arrive, followed by the rest of the body."""

    def __init__(self, chunks: AsyncIterator[bytes], limit: int) -> None:
        self._chunks = chunks
        self._early: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._reading = asyncio.ensure_future(self._read(limit))

    async def _read(self, limit: int) -> None:
        size = 0
        try:
            while size < limit:
                try:
                    chunk = await anext(self._chunks)
                except StopAsyncIteration:
                    return
                self._early.put_nowait(chunk)
                size += len(chunk)
        finally:
            self._early.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._early.get()) is not None:
            yield chunk
        await self._reading  # a failure of the read-ahead fails the PATCH
        async for chunk in self._chunks:
            yield chunk

    async def close(self) -> None:
        await _cancel(self._reading)


async def _refuse_bytes_past_end(body: AsyncIterable[bytes], upload: Upload) -> None:
    """UploadTooLarge (413) when a PATCH to a complete upload carries any byte."""
    async for chunk in body:
        if chunk:
            raise UploadTooLarge(
                f"upload {upload.id} is complete ({upload.length} bytes); "
                "the PATCH carries bytes past its Upload-Length"
            )


def _log_rejected(video_id: str, owner_id: str, size_bytes: int, reason: str) -> None:
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


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel a helper task (if still running) and wait for it, its outcome dropped."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task


class _Received:
    """Bytes received but not stored yet, kept as the chunks they came in: each
    byte is copied once, when a part is cut from the front."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self.size = 0

    def __bool__(self) -> bool:
        return self.size > 0

    def add(self, chunk: bytes) -> None:
        if chunk:
            self._chunks.append(chunk)
            self.size += len(chunk)

    def take(self, count: int) -> bytes:
        """The first `count` bytes (all of them when fewer), removed."""
        out: list[bytes] = []
        need = min(count, self.size)
        self.size -= need
        while need:
            chunk = self._chunks.popleft()
            if len(chunk) > need:
                self._chunks.appendleft(chunk[need:])
                chunk = chunk[:need]
            out.append(chunk)
            need -= len(chunk)
        return out[0] if len(out) == 1 else b"".join(out)

    def join(self) -> bytes:
        return self.take(self.size)


def _update_all(hashers: list[Any], chunks: list[bytes]) -> None:
    for chunk in chunks:
        for hasher in hashers:
            hasher.update(chunk)


class _Hashing:
    """Feeds a PATCH's chunks, in order, to its hashers in a worker thread while
    more arrive (hashlib releases the GIL): hashing is off the PATCH's critical
    path. Chunks that arrive during a batch go in the next one."""

    def __init__(self, hashers: list[Any]) -> None:
        self.hashers = hashers
        self._waiting: list[bytes] = []
        self._worker: asyncio.Task[None] | None = None

    def add(self, chunk: bytes) -> None:
        if not self.hashers:
            return
        self._waiting.append(chunk)
        if self._worker is None or self._worker.done():
            if self._worker is not None:
                self._worker.result()  # a failed batch fails the PATCH
            self._worker = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            await asyncio.to_thread(_update_all, self.hashers, batch)

    async def flush(self) -> None:
        """Wait until every chunk added is hashed."""
        if self._worker is not None:
            await self._worker

    async def close(self) -> None:
        if self._worker is not None:
            await _cancel(self._worker)


def part_plan(pending_size: int, body_size: int, part_size: int) -> list[int]:
    """The sizes (bytes), in order, of the parts a PATCH stores: the pending tail
    an earlier PATCH left and the PATCH's `body_size` bytes, cut into parts of
    `part_size`, the last taking the remainder (so under twice `part_size`). No
    part when they add up to less than one: they become the pending tail (or,
    on the upload's last byte, its last part). A PATCH carrying at least a part
    thus leaves no tail to write now and read back next time, on the part grid
    or not."""
    total = pending_size + body_size
    count = total // part_size
    if count == 0:
        return []
    return [part_size] * (count - 1) + [total - part_size * (count - 1)]


#: Chunks queued between the receiving loop and a streamed part's upload (each
#: at most the HTTP server's read size, 64-256 KiB).
QUEUED_CHUNKS = 8


class _PartStream:
    """One part of a PATCH, sent to the store while its bytes arrive. The
    receiving loop `feed`s it; its upload reads `chunks()` through a bounded
    queue, so receiving waits when the store falls behind. The bytes are also
    kept until the part is stored: they become the pending tail when the body is
    cut first, and are sent again, whole, when the stream fails."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.kept = _Received()
        self.whole = asyncio.Event()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUED_CHUNKS)
        self._streaming = True

    @property
    def missing(self) -> int:
        return self.size - self.kept.size

    async def feed(self, chunk: bytes) -> None:
        """The part's next bytes (at most `missing`)."""
        self.kept.add(chunk)
        if not self.missing:
            self.whole.set()
        if self._streaming:
            await self._queue.put(chunk)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The part's bytes, as they are fed: the body of its upload."""
        left = self.size
        while left:
            chunk = await self._queue.get()
            left -= len(chunk)
            yield chunk

    def stop_streaming(self) -> None:
        """The upload stopped reading: the feeder must not wait for it."""
        self._streaming = False
        while not self._queue.empty():
            self._queue.get_nowait()


class _PartStreams:
    """Stores the parts of a PATCH whose sizes are known in advance (`plan`,
    from `part_plan`) while their bytes arrive: each part's upload starts with
    its first byte, so a PATCH costs about the slower of receiving and storing,
    not their sum. At most two parts are in flight: the one being received and
    the one before it, finishing (its store's answer, its commit).

    `record(part, last)` commits a stored part (commits go in part order);
    `check_lease()` runs before a part's last bytes go out, as the part is
    stored on them."""

    def __init__(
        self,
        objects: ObjectStore,
        key: str,
        multipart_id: str,
        plan: list[int],
        first_number: int,
        *,
        record: Callable[[Part, bool], Awaitable[None]],
        check_lease: Callable[[], Awaitable[None]],
    ) -> None:
        self._objects = objects
        self._key = key
        self._multipart_id = multipart_id
        self._plan = deque(plan)
        self._number = first_number
        self._record = record
        self._check_lease = check_lease
        self._receiving: _PartStream | None = None
        self._receiving_task: asyncio.Task[None] | None = None
        self._finishing_task: asyncio.Task[None] | None = None

    async def feed(self, chunk: bytes) -> None:
        """Pass the body's next chunk on to the part(s) it belongs to."""
        while chunk:
            if self._receiving is None:
                part = self._receiving = _PartStream(self._plan.popleft())
                self._receiving_task = asyncio.ensure_future(
                    self._store(self._number, part, self._finishing_task, last=not self._plan)
                )
                self._number += 1
            part = self._receiving
            piece, chunk = chunk[: part.missing], chunk[part.missing :]
            if len(piece) == part.missing:
                await self._check_lease()
            await part.feed(piece)
            if part.whole.is_set():
                if self._finishing_task is not None:
                    await self._finishing_task
                self._finishing_task, self._receiving_task = self._receiving_task, None
                self._receiving = None

    async def _store(
        self, number: int, part: _PartStream, previous: asyncio.Task[None] | None, *, last: bool
    ) -> None:
        try:
            stored = await self._objects.upload_part_stream(
                self._key, self._multipart_id, number, part.size, part.chunks()
            )
        except Exception:
            # E.g. the store timed the stream out while the client paused.
            log.warning(
                "streaming part %d of %s failed; sending it whole", number, self._key, exc_info=True
            )
            part.stop_streaming()
            await part.whole.wait()
            await self._check_lease()
            stored = await self._objects.upload_part(
                self._key, self._multipart_id, number, part.kept.join()
            )
        if previous is not None:
            await asyncio.shield(previous)  # never cancel it from here
        await self._record(stored, last)

    async def finish(self) -> _Received:
        """The body ended: wait until the parts it completed are stored; the one
        it did not complete (a cut body) is cancelled, its bytes returned."""
        cut = _Received()
        if self._receiving is not None and self._receiving_task is not None:
            await _cancel(self._receiving_task)
            cut = self._receiving.kept
            self._receiving = self._receiving_task = None
        if self._finishing_task is not None:
            await self._finishing_task
        return cut

    async def close(self) -> None:
        """Cancel whatever is still running (the PATCH failed)."""
        for task in (self._receiving_task, self._finishing_task):
            if task is not None:
                await _cancel(task)


def _parts_json(parts: list[Part] | tuple[Part, ...]) -> list[dict[str, Any]]:
    return [{"number": p.number, "etag": p.etag, "size": p.size} for p in parts]


def _write_chunk(out: IO[bytes], hasher: Any | None, chunk: bytes) -> None:
    out.write(chunk)
    if hasher is not None:
        hasher.update(chunk)


class UploadEngine:
    """Creates, appends to, finishes and terminates tus uploads. One per process
    (it keeps the running hashes); safe to run on many replicas at once."""

    def __init__(self, backends: Backends, settings: UploadSettings) -> None:
        self.backends = backends
        self.settings = settings
        self.db = backends.database
        self.objects = backends.objects
        self.publisher = EventPublisher(backends.bus)
        self.instance = uuid.uuid4().hex[:12]
        self._hashes: OrderedDict[str, _RunningHash] = OrderedDict()
        self._lingering: dict[str, _Lingering] = {}

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
            "state": "uploading",
            "size_bytes": length,
            "created_at": now,
            "updated_at": now,
        }
        object_key = f"uploads/{video_id}/source"
        if length == 0:
            reason = "the file is empty (0 bytes)"
            _log_rejected(video_id, owner_id, length, reason)
            async with self.db.transaction() as conn:
                await conn.execute(
                    videos.insert().values(
                        **{**video_row, "state": "failed"}, failure_reason=reason
                    )
                )
            await self._announce_outcomes([video_id])
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
                    await conn.execute(videos.insert().values(**video_row))
                await conn.execute(uploads.insert().values(**upload_row))
        except BaseException:
            await self.objects.abort_multipart(object_key, multipart_id)
            raise
        self._hashes[video_id] = _RunningHash(0, hashlib.sha256())
        self._trim_hashes()
        return await self._load(video_id)

    # -- reading ---------------------------------------------------------------
    async def _load(self, upload_id: str) -> Upload:
        async with self.db.connect() as conn:
            row = (await conn.execute(select(uploads).where(uploads.c.id == upload_id))).first()
        if row is None:
            raise NotFound(f"upload {upload_id} does not exist")
        return Upload.from_row(row)

    async def get(self, owner_id: str, upload_id: str) -> Upload:
        """The caller's upload; NotFound for anyone else's, UploadGone (410) once
        it expired, was terminated or was rejected."""
        try:
            upload = await self._load(upload_id)
        except NotFound:
            raise NotFound(f"upload {upload_id} does not exist") from None
        if upload.owner_id != owner_id:
            raise NotFound(f"upload {upload_id} does not exist")
        if upload.state == "terminated":
            raise UploadGone(f"upload {upload_id} was terminated or expired")
        if upload.state == "failed":
            reason = await self._failure_reason(upload_id)
            raise UploadGone(f"upload {upload_id} was rejected: {reason}")
        if upload.state == "active" and upload.expires_at <= utc_now():
            raise UploadGone(f"upload {upload_id} expired at {upload.expires_at.isoformat()}")
        return upload

    async def _failure_reason(self, video_id: str) -> str:
        async with self.db.connect() as conn:
            reason = (
                await conn.execute(select(videos.c.failure_reason).where(videos.c.id == video_id))
            ).scalar_one_or_none()
        return str(reason or "unknown reason")

    # -- locking ---------------------------------------------------------------
    async def _lock(self, upload_id: str) -> tuple[str, Upload]:
        """Take the upload's write lease (waiting up to upload_lock_wait_s, 423
        after) and read the row as of the lease. A lease this process left
        lingering after a PATCH is taken over at once."""
        token = f"{self.instance}:{uuid.uuid4().hex[:16]}"
        deadline = time.monotonic() + self.settings.upload_lock_wait_s
        mine = self._lingering.pop(upload_id, None)
        while True:
            now = utc_now()
            free = or_(uploads.c.lock_owner.is_(None), uploads.c.lock_expires_at < now)
            if mine is not None:
                free = or_(free, uploads.c.lock_owner == mine.token)
            async with self.db.transaction() as conn:
                result = await conn.execute(
                    update(uploads)
                    .where(uploads.c.id == upload_id, free)
                    .values(
                        lock_owner=token,
                        lock_expires_at=now + timedelta(seconds=self.settings.upload_lock_s),
                    )
                )
                row = (await conn.execute(select(uploads).where(uploads.c.id == upload_id))).first()
                if row is None:  # not a busy upload: no upload at all
                    raise NotFound(f"upload {upload_id} does not exist")
                if result.rowcount:
                    return token, Upload.from_row(row)
            if time.monotonic() >= deadline:
                raise UploadLocked(f"upload {upload_id} is being written by another request")
            await asyncio.sleep(0.05)

    async def _unlock(self, upload_id: str, token: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                update(uploads)
                .where(uploads.c.id == upload_id, uploads.c.lock_owner == token)
                .values(lock_owner=None, lock_expires_at=None)
            )

    async def _commit(
        self,
        upload: Upload,
        token: str,
        *,
        expected_offset: int,
        offset: int,
        parts: list[Part],
        pending_key: str | None,
        pending_size: int,
        state: str = "active",
        release: bool = False,
    ) -> None:
        """Record progress, if we still hold the lease and nobody moved the offset
        (and give the lease up with `release`: at once, or after
        `upload_lease_linger_s` when the upload stays active)."""
        now = utc_now()
        linger_s = self._linger_s if state == "active" else 0.0
        if release and linger_s > 0:
            hold_s: float | None = linger_s
        else:
            hold_s = None if release else self.settings.upload_lock_s
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(uploads)
                .where(
                    uploads.c.id == upload.id,
                    uploads.c.lock_owner == token,
                    uploads.c.offset == expected_offset,
                )
                .values(
                    offset=offset,
                    parts=_parts_json(parts),
                    pending_key=pending_key,
                    pending_size=pending_size,
                    state=state,
                    updated_at=now,
                    lock_owner=None if hold_s is None else token,
                    lock_expires_at=None if hold_s is None else now + timedelta(seconds=hold_s),
                )
            )
        if not result.rowcount:
            raise UploadLocked(f"upload {upload.id} was taken over by another request")

    # -- running hashes ----------------------------------------------------------
    def _hash_at(self, upload_id: str, offset: int) -> Any | None:
        """A copy of this process's running SHA-256 of the upload, if it covers
        exactly the first `offset` bytes (else None: computed at completion)."""
        running = self._hashes.get(upload_id)
        if running is None or running.offset != offset:
            return None
        self._hashes.move_to_end(upload_id)
        return running.hasher.copy()

    def _trim_hashes(self) -> None:
        while len(self._hashes) > MAX_RUNNING_HASHES:
            self._hashes.popitem(last=False)

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
        reading = _ReadAhead(aiter(body), self.settings.upload_part_size_bytes)
        asked = time.monotonic()
        lingering = self._lingering.get(upload_id)
        if lingering is not None and asked < lingering.until - LINGER_MARGIN_S:
            del self._lingering[upload_id]
            # The lease this process kept after the client's last PATCH: no lock
            # round trip; it is renewed meanwhile, before any part is stored.
            token, upload = lingering.token, lingering.upload
            lease = _Lease(token, lingering.until)
            lease.renewing = asyncio.ensure_future(self._renew(upload_id, token))
            lease.renewing_asked = asked
        else:
            try:
                token, upload = await self._lock(upload_id)
            except BaseException:
                await reading.close()
                raise
            lease = _Lease(token, asked + self.settings.upload_lock_s)
        try:
            # A kept lease comes with the row as this process left it. Anything
            # but streaming a part's first bytes waits until its renewal proves
            # the row current: reading the pending tail it names, and a refusal.
            stale = (
                lease.renewing is not None
                and upload.pending_key is not None
                and not await self._renewed(lease)
            )
            if stale:
                lease, upload = await self._relock(upload_id, lease)
            try:
                writable = await self._check_patch(upload, owner_id, offset, content_length)
            except ReelplaneError:
                if lease.renewing is None or await self._renewed(lease):
                    raise  # checked against the row as it is: the refusal stands
                lease, upload = await self._relock(upload_id, lease)
                writable = await self._check_patch(upload, owner_id, offset, content_length)
            if not writable:
                # Complete already: an empty PATCH at the end is a no-op; one
                # carrying bytes (a chunked body: no Content-Length to check)
                # goes past Upload-Length.
                await _refuse_bytes_past_end(reading, upload)
                return upload
            return await self._write(upload, lease, checksum, body, reading, content_length)
        finally:
            await reading.close()
            if lease.renewing is not None:
                with contextlib.suppress(Exception):
                    await lease.renewing
            if not lease.released:
                await self._unlock(upload_id, lease.token)

    async def _relock(self, upload_id: str, lost: _Lease) -> tuple[_Lease, Upload]:
        """The kept lease ran out and another request may have moved the upload
        on: take the lease the usual way and read the row as it is now."""
        lost.released = True  # not ours to unlock any more
        asked = time.monotonic()
        token, upload = await self._lock(upload_id)
        return _Lease(token, asked + self.settings.upload_lock_s), upload

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

    async def _renewed(self, lease: _Lease) -> bool:
        """Wait for the renewal of a taken-over lease: True when it is still ours
        (so nobody changed the upload since this process's last PATCH)."""
        assert lease.renewing is not None
        renewing, lease.renewing = lease.renewing, None
        if not await renewing:
            return False
        lease.until = lease.renewing_asked + self.settings.upload_lock_s
        return True

    def _check_access(self, upload: Upload, owner_id: str) -> None:
        """NotFound for anyone but the owner; UploadGone once terminated or expired."""
        if upload.owner_id != owner_id:
            raise NotFound(f"upload {upload.id} does not exist")
        if upload.state == "terminated":
            raise UploadGone(f"upload {upload.id} was terminated or expired")
        if upload.state == "active" and upload.expires_at <= utc_now():
            raise UploadGone(f"upload {upload.id} expired at {upload.expires_at.isoformat()}")

    async def _pending_tail(self, upload: Upload) -> bytes:
        """The tail an earlier PATCH left shorter than a part (b"" when none)."""
        if not upload.pending_key:
            return b""
        data = await self.objects.get(upload.pending_key)
        if len(data) != upload.pending_size:
            raise ReelplaneError(
                f"upload {upload.id}: pending tail has {len(data)} bytes, "
                f"expected {upload.pending_size}"
            )
        return data

    async def _write(
        self,
        upload: Upload,
        lease: _Lease,
        checksum: Checksum | None,
        body: RequestBody,
        chunks: AsyncIterable[bytes],
        content_length: int | None,
    ) -> Upload:
        part_size = self.settings.upload_part_size_bytes
        multipart_id = upload.multipart_id
        assert multipart_id is not None
        token = lease.token
        buffer = _Received()
        # The pending tail is in the running hash already, and not part of this
        # PATCH's checksum: only body bytes go through `hashing`.
        buffer.add(await self._pending_tail(upload))
        parts = list(upload.parts)
        committed = upload.offset
        stale_pending = upload.pending_key
        # With a checksum the PATCH is all or nothing, so nothing is committed
        # before the digest is checked (uploaded parts past the committed ones
        # are simply overwritten by the next attempt).
        deferred = checksum is not None
        hashers = [checksum.new_hasher()] if checksum is not None else []
        running = self._hash_at(upload.id, upload.offset)
        if running is not None:
            hashers.append(running)
        self._hashes.pop(upload.id, None)  # re-added only if this PATCH succeeds
        hashing = _Hashing(hashers)
        received = 0
        lock_s = self.settings.upload_lock_s

        async def keep_lease() -> None:
            if lease.renewing is not None:  # the renewal of a taken-over lease
                renewed = await self._renewed(lease)
            else:
                asked = time.monotonic()
                renewed = await self._renew(upload.id, token)
                if renewed:
                    lease.until = asked + lock_s
            if not renewed:
                raise UploadLocked(f"upload {upload.id}: the lease ran out and was taken over")

        async def lease_for_a_part() -> None:
            # Never store a part on a lease that may run out meanwhile: another
            # request could then take the upload over and store the same part.
            if lease.renewing is not None or time.monotonic() > lease.until - lock_s / 3:
                await keep_lease()

        async def record(part: Part, last: bool) -> None:
            """Add a stored part and commit it, giving the lease up with `last`
            (the PATCH's last byte: no pending object is needed). Not committed:
            the parts of a PATCH with a checksum (the digest is checked first)
            and the upload's last part (`_complete` commits it)."""
            nonlocal committed, stale_pending
            parts.append(part)
            new_offset = sum(p.size for p in parts)  # the pending tail is in the first one
            if deferred or new_offset == upload.length:
                return
            asked = time.monotonic()
            await self._commit(
                upload,
                token,
                expected_offset=committed,
                offset=new_offset,
                parts=parts,
                pending_key=None,
                pending_size=0,
                release=last,
            )
            lease.released = last
            lease.until = asked + lock_s  # the commit renewed it
            if last:
                lease.lingers_until = asked + self._linger_s
            committed = new_offset
            if stale_pending:
                await self.objects.delete(stale_pending)
                stale_pending = None

        async def store(number: int, data: bytes) -> None:
            """Upload and commit a part from memory (a chunked body's, or what
            arrived of a streamed part before the body was cut)."""
            await lease_for_a_part()
            part = await self.objects.upload_part(upload.object_key, multipart_id, number, data)
            await record(part, last=False)  # the PATCH's end is committed after it

        # With a Content-Length, every part's size is known before its bytes
        # arrive (`part_plan`), so each part is streamed to the store as it is
        # received. Without one (a chunked body), parts are cut from `buffer` as
        # it fills up, and one is stored while the next one is received. Either
        # way bytes are hashed in a thread as they arrive.
        plan = [] if content_length is None else part_plan(buffer.size, content_length, part_size)
        streams: _PartStreams | None = None
        if plan:
            streams = _PartStreams(
                self.objects,
                upload.object_key,
                multipart_id,
                plan,
                len(parts) + 1,
                record=record,
                check_lease=lease_for_a_part,
            )
        storing: asyncio.Task[None] | None = None
        try:
            if streams is not None:
                await streams.feed(buffer.join())  # the pending tail starts the first part
            async for chunk in chunks:
                if upload.offset + received + len(chunk) > upload.length:
                    raise UploadTooLarge(
                        f"the PATCH carries more than the {upload.length - upload.offset} "
                        f"bytes left of upload {upload.id}"
                    )
                if content_length is not None and received + len(chunk) > content_length:
                    raise BadTusRequest("the body is longer than its Content-Length")
                if lease.renewing is None and time.monotonic() > lease.until - lock_s * 2 / 3:
                    await keep_lease()  # every third of the lease while bytes flow
                received += len(chunk)
                hashing.add(chunk)
                if streams is not None:
                    await streams.feed(chunk)
                    continue
                buffer.add(chunk)
                while buffer.size >= part_size:  # only without a Content-Length
                    data = buffer.take(part_size)
                    if storing is not None:
                        await storing
                    storing = asyncio.ensure_future(store(len(parts) + 1, data))
            if streams is not None:
                # Empty, unless the body was cut: then what arrived of the part
                # it was cut in, stored below if it makes a part (the remainder
                # of the PATCH's last part), else the pending tail.
                buffer = await streams.finish()
            if storing is not None:
                await storing
                storing = None
            if upload.offset + received < upload.length and buffer.size >= part_size:
                storing = asyncio.ensure_future(store(len(parts) + 1, buffer.join()))
            await hashing.flush()
            if storing is not None:
                await storing
        finally:
            if streams is not None:
                await streams.close()
            if storing is not None:
                await _cancel(storing)
            await hashing.close()
        if lease.renewing is not None:
            await keep_lease()  # a taken-over lease is renewed before anything is stored
        if received == 0:
            return upload
        if deferred:
            if body.disconnected:
                return upload  # a cut body cannot be verified: the spec says discard it
            assert checksum is not None
            if not checksum.matches(hashers[0]):
                raise ChecksumMismatch(
                    f"the {checksum.algorithm} of the {received} bytes received does not "
                    "match Upload-Checksum; nothing was stored, resend from "
                    f"offset {upload.offset}",
                    headers={"Upload-Offset": str(upload.offset)},
                )
        end = upload.offset + received
        if end == upload.length:
            return await self._complete(
                upload, token, parts, buffer.join(), committed, stale_pending, running
            )
        tail = buffer.join()
        pending_key: str | None = None
        if tail:
            pending_key = f"uploads/{upload.id}/pending/{uuid.uuid4().hex}"
            await self.objects.put(pending_key, tail)
        try:
            if committed == end and pending_key is None:
                if not lease.released:
                    await self._unlock(upload.id, token)
            else:
                asked = time.monotonic()
                await self._commit(
                    upload,
                    token,
                    expected_offset=committed,
                    offset=end,
                    parts=parts,
                    pending_key=pending_key,
                    pending_size=len(tail),
                    release=True,
                )
                lease.lingers_until = asked + self._linger_s
            lease.released = True
        except BaseException:
            if pending_key:
                await self.objects.delete(pending_key)
            raise
        if stale_pending and stale_pending != pending_key:
            await self.objects.delete(stale_pending)
        if running is not None:
            self._hashes[upload.id] = _RunningHash(end, running)
            self._trim_hashes()
        written = replace(
            upload, offset=end, parts=tuple(parts), pending_key=pending_key, pending_size=len(tail)
        )
        if lease.lingers_until is not None and self._linger_s > 0:
            self._keep_lingering(_Lingering(token, lease.lingers_until, written))
        return written

    @property
    def _linger_s(self) -> float:
        """How long a PATCH's lease lingers (never longer than a lease)."""
        return min(self.settings.upload_lease_linger_s, self.settings.upload_lock_s)

    def _keep_lingering(self, lingering: _Lingering) -> None:
        now = time.monotonic()
        for upload_id in [k for k, v in self._lingering.items() if v.until <= now]:
            del self._lingering[upload_id]  # ran out: forget them
        self._lingering[lingering.upload.id] = lingering

    async def _renew(self, upload_id: str, token: str) -> bool:
        """Extend the lease; False when it is no longer ours."""
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(uploads)
                .where(uploads.c.id == upload_id, uploads.c.lock_owner == token)
                .values(lock_expires_at=utc_now() + timedelta(seconds=self.settings.upload_lock_s))
            )
        return bool(result.rowcount)

    async def _complete(
        self,
        upload: Upload,
        token: str,
        parts: list[Part],
        tail: bytes,
        committed: int,
        stale_pending: str | None,
        running: Any | None,
    ) -> Upload:
        """The last byte arrived: join the parts into the source object, then finish."""
        assert upload.multipart_id is not None
        if tail or not parts:
            parts.append(
                await self.objects.upload_part(
                    upload.object_key, upload.multipart_id, len(parts) + 1, bytes(tail)
                )
            )
        info = await self.objects.complete_multipart(upload.object_key, upload.multipart_id, parts)
        if info.size != upload.length:
            raise ReelplaneError(
                f"upload {upload.id}: source object has {info.size} bytes, expected {upload.length}"
            )
        partial = upload.concat == "partial"
        await self._commit(
            upload,
            token,
            expected_offset=committed,
            offset=upload.length,
            parts=parts,
            pending_key=None,
            pending_size=0,
            # A partial upload is bytes waiting for its final upload: nothing to validate.
            state="done" if partial else "completing",
            release=partial,
        )
        if stale_pending:
            await self.objects.delete(stale_pending)
        if partial:
            return replace(upload, state="done", offset=upload.length, parts=tuple(parts))
        sha256 = running.hexdigest() if running is not None else None
        done = replace(upload, state="completing", offset=upload.length, parts=tuple(parts))
        await self.finish(done, sha256=sha256)
        return replace(done, state="done")

    # -- concatenation ---------------------------------------------------------------
    async def create_final(
        self, owner_id: str, partial_ids: tuple[str, ...], metadata: dict[str, str]
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
                    token, partial = await self._lock(partial_id)
                except NotFound:
                    raise BadTusRequest(f"partial upload {partial_id} does not exist") from None
                leases.append((partial_id, token))
                partials.append(self._usable_partial(partial, owner_id))
            length = sum(p.length for p in partials)
            if length > self.settings.upload_max_size_bytes:
                raise UploadTooLarge(
                    f"the partial uploads add up to {length} bytes; this server accepts at "
                    f"most {self.settings.upload_max_size_bytes} (Tus-Max-Size)"
                )
            final = await self.create(
                owner_id, length, metadata, concat="final", concat_of=partial_ids
            )
            token, final = await self._lock(final.id)
            try:
                try:
                    parts, sha256 = await self._join(final, partials)
                except BaseException:
                    # A final upload takes no PATCH, so one that could not be joined
                    # can never finish: end it now (the partials are kept for a retry).
                    await self._end(final, "failed", "joining the partial uploads failed")
                    await self._announce_outcomes([final.id])
                    raise
                await self._commit(
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
                    await self._end(partial, "deleted", "joined into a final upload")
                done = replace(final, state="completing", offset=length, parts=tuple(parts))
                await self.finish(done, sha256=sha256)
            finally:
                await self._unlock(final.id, token)
            return replace(done, state="done")
        finally:
            for partial_id, token in leases:
                await self._unlock(partial_id, token)

    def _usable_partial(self, upload: Upload, owner_id: str) -> Upload:
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

    async def _join(self, final: Upload, partials: list[Upload]) -> tuple[list[Part], str]:
        """Copy the partials' bytes, in order, into the final upload's multipart
        upload (a part stored while the next one is read) and hash them; returns
        the parts and the SHA-256."""
        multipart_id = final.multipart_id
        assert multipart_id is not None
        part_size = self.settings.upload_part_size_bytes
        hasher = hashlib.sha256()
        hashing = _Hashing([hasher])
        buffer = _Received()
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
                self.objects.upload_part(final.object_key, multipart_id, number, data)
            )

        try:
            for partial in partials:
                async for chunk in self.objects.stream(partial.object_key, chunk_size=1 << 20):
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
                await _cancel(storing)
            await hashing.close()
        info = await self.objects.complete_multipart(final.object_key, multipart_id, parts)
        if info.size != final.length:
            raise ReelplaneError(
                f"upload {final.id}: joined object has {info.size} bytes, expected {final.length}"
            )
        return parts, hasher.hexdigest()

    # -- finishing ---------------------------------------------------------------
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
            await self._reject(upload, reason)
            raise MediaRejected(reason, video_id=upload.id)
        await self._accept(upload, sha256, probe)

    async def _download(self, key: str, path: Path, *, hashing: bool) -> str | None:
        """Stream an object to a local file (SHA-256 on the way when asked)."""
        hasher = hashlib.sha256() if hashing else None
        with path.open("wb") as out:
            async for chunk in self.objects.stream(key, chunk_size=1 << 20):
                await asyncio.to_thread(_write_chunk, out, hasher, chunk)
        return hasher.hexdigest() if hasher is not None else None

    async def _reject(self, upload: Upload, reason: str) -> None:
        """Mark the video failed with `reason` and remove every object of the upload."""
        _log_rejected(upload.id, upload.owner_id, upload.length, reason)
        await self._remove_objects(upload)
        now = utc_now()
        async with self.db.transaction() as conn:
            await conn.execute(
                update(uploads)
                .where(uploads.c.id == upload.id)
                .values(state="failed", updated_at=now)
            )
            await conn.execute(
                update(videos)
                .where(videos.c.id == upload.id)
                .values(state="failed", failure_reason=reason[:500], updated_at=now)
            )
        self._hashes.pop(upload.id, None)
        await self._announce_outcomes([upload.id])

    async def _remove_objects(self, upload: Upload) -> None:
        if upload.multipart_id:
            await self.objects.abort_multipart(upload.object_key, upload.multipart_id)
        if upload.pending_key:
            await self.objects.delete(upload.pending_key)
        async for info in self.objects.list_objects(f"uploads/{upload.id}/"):
            await self.objects.delete(info.key)

    async def _accept(self, upload: Upload, sha256: str, probe: ProbeResult) -> None:
        """Point the video at its content-addressed asset (a new one, or an
        existing one: dedup) and publish `video.uploaded` (and `video.ready`
        when the asset was already transcoded)."""
        video = probe.video
        assert video is not None
        now = utc_now()
        duplicate = False
        async with self.db.transaction() as conn:
            inserted = await self.db.insert_if_absent(
                conn,
                video_assets,
                {
                    "sha256": sha256,
                    "state": "pending",
                    "source_key": upload.object_key,
                    "renditions": [],
                    "duration_ms": probe.duration_ms,
                    "width": video.display_width,
                    "height": video.display_height,
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
            state = "uploaded"
            values: dict[str, Any] = {}
            if not inserted and asset.state in ("failed", "deleted"):
                # The earlier transcode of these bytes failed, or every video on the
                # asset was deleted and its objects removed: start again from this copy.
                await conn.execute(
                    update(video_assets)
                    .where(video_assets.c.sha256 == sha256)
                    .values(
                        state="pending",
                        source_key=upload.object_key,
                        failure_reason=None,
                        attempts=0,
                        updated_at=now,
                    )
                )
            elif not inserted:
                duplicate = asset.source_key != upload.object_key
                if asset.state == "ready":
                    state = "ready"
                    values = {"ready_at": now, "progress_pct": 100}
                elif asset.state == "transcoding":
                    state = "transcoding"
            await conn.execute(
                update(videos)
                .where(videos.c.id == upload.id, videos.c.state == "uploading")
                .values(
                    state=state,
                    sha256=sha256,
                    asset_sha256=sha256,
                    size_bytes=upload.length,
                    duration_ms=probe.duration_ms,
                    width=video.display_width,
                    height=video.display_height,
                    updated_at=now,
                    **values,
                )
            )
            await conn.execute(
                update(uploads)
                .where(uploads.c.id == upload.id)
                .values(state="done", updated_at=now)
            )
        self._hashes.pop(upload.id, None)
        if duplicate:
            # Same bytes already stored as the asset's source: keep one copy.
            await self.objects.delete(upload.object_key)
        await announce_uploaded(self.db, self.publisher, upload.id)
        if state == "ready":
            await self._announce_outcomes([upload.id])

    async def _announce_outcomes(self, video_ids: list[str]) -> None:
        try:
            await announce_outcomes(self.db, self.publisher, video_ids)
        except Exception:  # the janitor publishes it later; the state is committed
            log.warning("could not announce video outcome yet", exc_info=True)

    # -- termination -------------------------------------------------------------
    async def terminate(self, owner_id: str, upload_id: str) -> None:
        """tus termination: drop an unfinished upload and everything it stored."""
        upload = await self.get(owner_id, upload_id)
        unused_partial = upload.concat == "partial" and upload.state == "done"
        if upload.state != "active" and not unused_partial:
            raise UploadGone(f"upload {upload_id} is complete; delete the video instead")
        token, locked = await self._lock(upload_id)
        try:
            await self._end(locked, "deleted", "terminated by its owner")
        finally:
            await self._unlock(upload_id, token)

    async def abandon(self, upload_id: str) -> bool:
        """Drop an unfinished upload whose video was deleted, and everything it
        stored; False when there is no such upload or it is not unfinished.
        UploadLocked while a PATCH is writing to it (try again later)."""
        try:
            token, locked = await self._lock(upload_id)
        except NotFound:
            return False
        try:
            if locked.state != "active":
                return False
            await self._end(locked, "deleted", "the video was deleted")
            return True
        finally:
            await self._unlock(upload_id, token)

    async def _end(self, upload: Upload, video_state: str, reason: str) -> None:
        await self._remove_objects(upload)
        now = utc_now()
        async with self.db.transaction() as conn:
            await conn.execute(
                update(uploads)
                .where(uploads.c.id == upload.id)
                .values(state="terminated", updated_at=now, pending_key=None)
            )
            await conn.execute(
                update(videos)
                .where(videos.c.id == upload.id)
                .values(state=video_state, failure_reason=reason, updated_at=now)
            )
        self._hashes.pop(upload.id, None)

    # -- janitor -------------------------------------------------------------------
    async def sweep(self) -> dict[str, int]:
        """One janitor pass: expire abandoned uploads, finish uploads whose process
        died while validating, publish events whose publication was lost, and
        announce again videos left waiting for a transcode nobody is doing."""
        now = utc_now()
        settle = now - timedelta(seconds=self.settings.upload_announce_after_s)
        counts = {"expired": 0, "finished": 0, "announced": 0, "reannounced": 0}
        free = or_(uploads.c.lock_owner.is_(None), uploads.c.lock_expires_at < now)
        async with self.db.connect() as conn:
            expired = (
                (
                    await conn.execute(
                        select(uploads.c.id)
                        .where(
                            or_(
                                uploads.c.state == "active",
                                # finished partial uploads no final upload joined
                                and_(uploads.c.state == "done", uploads.c.concat == "partial"),
                            ),
                            uploads.c.expires_at < now,
                            free,
                        )
                        .limit(100)
                    )
                )
                .scalars()
                .all()
            )
            stuck = (
                (
                    await conn.execute(
                        select(uploads.c.id)
                        .where(uploads.c.state == "completing", uploads.c.updated_at < settle, free)
                        .limit(20)
                    )
                )
                .scalars()
                .all()
            )
            unannounced = (
                (
                    await conn.execute(
                        select(uploads.c.id)
                        .where(
                            and_(
                                uploads.c.state == "done",
                                uploads.c.announced_at.is_(None),
                                uploads.c.updated_at < settle,
                            )
                        )
                        .limit(500)
                    )
                )
                .scalars()
                .all()
            )
        for upload_id in expired:
            with contextlib.suppress(UploadLocked):
                token, locked = await self._lock(upload_id)
                try:
                    await self._end(locked, "failed", "the upload expired unfinished")
                    await self._announce_outcomes([upload_id])
                    counts["expired"] += 1
                finally:
                    await self._unlock(upload_id, token)
        for upload_id in stuck:
            with contextlib.suppress(UploadLocked, MediaRejected):
                token, locked = await self._lock(upload_id)
                try:
                    await self.finish(locked)
                    counts["finished"] += 1
                finally:
                    await self._unlock(upload_id, token)
        for upload_id in unannounced:
            if await announce_uploaded(self.db, self.publisher, upload_id):
                counts["announced"] += 1
        counts["announced"] += len(
            await announce_outcomes(self.db, self.publisher, older_than=settle)
        )
        stalled = now - timedelta(seconds=self.settings.upload_reannounce_after_s)
        counts["reannounced"] = len(
            await reannounce_stalled(self.db, self.publisher, stalled_before=stalled)
        )
        return counts
