"""A PATCH body as it arrives: read ahead while the lease is taken, ended
quietly when the client goes away, and kept as chunks until a part is cut."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from reelplane.upload.engine.rows import Upload
from reelplane.upload.errors import UploadTooLarge


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


class ReadAhead:
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
        await cancel(self._reading)


async def refuse_bytes_past_end(body: AsyncIterable[bytes], upload: Upload) -> None:
    """UploadTooLarge (413) when a PATCH to a complete upload carries any byte."""
    async for chunk in body:
        if chunk:
            raise UploadTooLarge(
                f"upload {upload.id} is complete ({upload.length} bytes); "
                "the PATCH carries bytes past its Upload-Length"
            )


async def cancel(task: asyncio.Future[Any]) -> None:
    """Cancel a helper task (if still running) and wait for it, its outcome dropped."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task


class Received:
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
