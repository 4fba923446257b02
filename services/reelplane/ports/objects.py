"""Objects port: raw uploads, renditions, thumbnails, model artifacts (S3 semantics)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

#: S3's smallest part, except the last one (bytes).
MIN_PART_SIZE = 5 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Part:
    """One uploaded part of a multipart upload."""

    number: int  # 1-based, as in S3
    etag: str
    size: int


@dataclass(frozen=True)
class ByteRange:
    """Inclusive byte range, as in an HTTP Range header; end None means to the end."""

    start: int
    end: int | None = None


class ObjectStore(Protocol):
    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo: ...

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """The object's bytes (or a range of them). NotFound when missing,
        RangeNotSatisfiable when the range starts past the end."""

    def stream(
        self, key: str, byte_range: ByteRange | None = None, *, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """The object's bytes in chunks, without holding it whole in memory."""

    async def head(self, key: str) -> ObjectInfo | None: ...

    async def delete(self, key: str) -> None:
        """Delete one object; deleting a missing key is not an error."""

    def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Objects whose key starts with prefix, in key order."""

    async def create_multipart(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> str:
        """Start a multipart upload; return its upload id."""

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> Part: ...

    async def upload_part_stream(
        self, key: str, upload_id: str, number: int, size: int, chunks: AsyncIterable[bytes]
    ) -> Part:
        """Upload part `number`, exactly `size` bytes, while `chunks` is still
        producing them (the part is recorded once the last one arrived). InvalidInput
        when `chunks` ends short of `size` or runs past it; then, as when the call
        is cancelled or fails, no part is recorded (a part stored earlier under the
        same number stays). A streamed part is sent once, never retried: the
        caller, which has its bytes, may send them again with `upload_part`."""

    async def list_parts(self, key: str, upload_id: str) -> list[Part]: ...

    async def complete_multipart(self, key: str, upload_id: str, parts: list[Part]) -> ObjectInfo:
        """Join the parts in number order. Every part but the last must be at
        least MIN_PART_SIZE bytes (InvalidInput otherwise)."""

    async def abort_multipart(self, key: str, upload_id: str) -> None: ...

    async def close(self) -> None: ...
