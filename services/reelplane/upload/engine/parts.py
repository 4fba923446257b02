"""Storing a PATCH's bytes as the parts of the upload's S3 multipart upload.

A PATCH's bytes are cut into parts of `upload_part_size_bytes` (5 MiB; a
PATCH's last part takes its remainder, so it may be up to twice that: the rule
is `part_plan`). With a Content-Length (tus clients send one), the size of
every part the PATCH stores is known before its bytes arrive, so each part is
streamed into the store while it is received, through a bounded queue
(`PartStreams`): a 5 MiB PATCH costs about the slower of receiving and storing
it, plus one relational commit. A part that the body is cut in is cancelled
(the store records nothing) and what arrived of it is kept as the pending
tail; a part whose stream fails is sent again, whole, from memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from reelplane.ports.objects import ObjectStore, Part
from reelplane.upload.engine.body import Received, cancel

log = logging.getLogger(__name__)


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


class PartStream:
    """One part of a PATCH, sent to the store while its bytes arrive. The
    receiving loop `feed`s it; its upload reads `chunks()` through a bounded
    queue, so receiving waits when the store falls behind. The bytes are also
    kept until the part is stored: they become the pending tail when the body is
    cut first, and are sent again, whole, when the stream fails."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.kept = Received()
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


class PartStreams:
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
        self._receiving: PartStream | None = None
        self._receiving_task: asyncio.Task[None] | None = None
        self._finishing_task: asyncio.Task[None] | None = None

    async def feed(self, chunk: bytes) -> None:
        """Pass the body's next chunk on to the part(s) it belongs to."""
        while chunk:
            if self._receiving is None:
                part = self._receiving = PartStream(self._plan.popleft())
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
        self, number: int, part: PartStream, previous: asyncio.Task[None] | None, *, last: bool
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

    async def finish(self) -> Received:
        """The body ended: wait until the parts it completed are stored; the one
        it did not complete (a cut body) is cancelled, its bytes returned."""
        cut = Received()
        if self._receiving is not None and self._receiving_task is not None:
            await cancel(self._receiving_task)
            cut = self._receiving.kept
            self._receiving = self._receiving_task = None
        if self._finishing_task is not None:
            await self._finishing_task
        return cut

    async def close(self) -> None:
        """Cancel whatever is still running (the PATCH failed)."""
        for task in (self._receiving_task, self._finishing_task):
            if task is not None:
                await cancel(task)
