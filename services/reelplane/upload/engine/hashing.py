"""SHA-256 of an upload's bytes, computed as they arrive.

hashlib's state cannot be saved, so each process keeps the running hash of the
uploads it is receiving (`RunningHashes`), keyed by upload id and offset. When
the process that receives the last byte also received every byte before (the
usual case), the digest is ready at once. When it did not (a restart, a resume
on another replica), the digest is computed while the finished object is read
back for ffprobe, which has to happen anyway: no extra pass.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from reelplane.upload.engine.body import cancel

#: Running hashes kept per process (each is ~200 bytes; the oldest go first).
MAX_RUNNING_HASHES = 4096


def _update_all(hashers: list[Any], chunks: list[bytes]) -> None:
    for chunk in chunks:
        for hasher in hashers:
            hasher.update(chunk)


class Hashing:
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
            await cancel(self._worker)


@dataclass
class _RunningHash:
    offset: int
    hasher: Any  # hashlib's sha256 object


class RunningHashes:
    """This process's running SHA-256 of the uploads it receives, each covering
    the upload's first `offset` bytes (the oldest dropped past `MAX_RUNNING_HASHES`)."""

    def __init__(self) -> None:
        self._hashes: OrderedDict[str, _RunningHash] = OrderedDict()

    def start(self, upload_id: str) -> None:
        """A new upload: the hash of its first 0 bytes."""
        self.keep(upload_id, 0, hashlib.sha256())

    def take(self, upload_id: str, offset: int) -> Any | None:
        """The running hash of the upload (removed: a PATCH `keep`s it again
        once it succeeds) if it covers exactly the first `offset` bytes, else
        None (the digest is computed at completion)."""
        running = self._hashes.pop(upload_id, None)
        if running is None or running.offset != offset:
            return None
        return running.hasher.copy()

    def keep(self, upload_id: str, offset: int, hasher: Any) -> None:
        self._hashes[upload_id] = _RunningHash(offset, hasher)
        self._hashes.move_to_end(upload_id)
        while len(self._hashes) > MAX_RUNNING_HASHES:
            self._hashes.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
