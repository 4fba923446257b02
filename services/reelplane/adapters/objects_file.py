"""Local-folder adapter of the objects port, with S3's rules (part sizes, ranges)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from reelplane.errors import InvalidInput, NotFound, RangeNotSatisfiable
from reelplane.ports.objects import MIN_PART_SIZE, ByteRange, ObjectInfo, Part

_META = ".meta"
_UPLOADS = ".multipart"
T = TypeVar("T")


def _check_key(key: str) -> None:
    if not key or key.startswith("/") or ".." in key.split("/") or key.startswith("."):
        raise InvalidInput(f"invalid object key {key!r}")


def _resolve_range(size: int, byte_range: ByteRange | None) -> tuple[int, int]:
    """(start, end exclusive) for a range over an object of `size` bytes."""
    if byte_range is None:
        return 0, size
    if byte_range.start >= size or byte_range.start < 0:
        raise RangeNotSatisfiable(f"range starts at {byte_range.start}, object has {size} bytes")
    end = size if byte_range.end is None else min(byte_range.end + 1, size)
    return byte_range.start, end


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    """Remove `folder` and then each parent while it is empty, up to `root`
    (kept): a deleted object leaves no empty folders behind."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): its parents are not empty either
            return
        folder = folder.parent


def _in_folder(path: Path, make: Callable[[Path], T]) -> T:
    """make(path) once path's folder exists; the folder is made again if a
    delete pruned it between the mkdir and make (at most 3 tries)."""
    tries = 3
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return make(path)
        except FileNotFoundError:
            tries -= 1
            if not tries:
                raise


def _write_all(out: IO[bytes], md5: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        out.write(chunk)
        md5.update(chunk)


class FileObjectStore:
    """Objects as files under a root folder; metadata in a sidecar JSON file.

    Writes go to a temporary file and are renamed into place, so a reader never
    sees half an object. Blocking file I/O runs in worker threads.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key

    def _meta_path(self, key: str) -> Path:
        return self.root / _META / f"{key}.json"

    async def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")

    def _write_sync(self, key: str, chunks: list[Path] | bytes, content_type: str) -> ObjectInfo:
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        with _in_folder(tmp, lambda p: p.open("wb")) as out:
            if isinstance(chunks, bytes):
                out.write(chunks)
                md5.update(chunks)
                size = len(chunks)
            else:
                for part in chunks:
                    with part.open("rb") as src:
                        while block := src.read(1 << 20):
                            out.write(block)
                            md5.update(block)
                            size += len(block)
            out.flush()
            os.fsync(out.fileno())
        etag = md5.hexdigest() if isinstance(chunks, bytes) else f"{md5.hexdigest()}-{len(chunks)}"
        info = ObjectInfo(key=key, size=size, etag=etag, content_type=content_type)
        meta = json.dumps({"etag": etag, "content_type": content_type})
        _in_folder(self._meta_path(key), lambda p: p.write_text(meta))
        os.replace(tmp, path)
        return info

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        self._path(key)
        return await asyncio.to_thread(self._write_sync, key, bytes(data), content_type)

    def _head_sync(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            meta = json.loads(self._meta_path(key).read_text())
        except FileNotFoundError:
            meta = {"etag": "", "content_type": "application/octet-stream"}
        return ObjectInfo(key, path.stat().st_size, meta["etag"], meta["content_type"])

    async def head(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._head_sync, key)

    def _read_sync(self, key: str, byte_range: ByteRange | None) -> bytes:
        path = self._path(key)
        try:
            with path.open("rb") as f:
                start, end = _resolve_range(os.fstat(f.fileno()).st_size, byte_range)
                f.seek(start)
                return f.read(end - start)
        except FileNotFoundError:
            raise NotFound(f"object {key!r} does not exist") from None

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        return await asyncio.to_thread(self._read_sync, key, byte_range)

    async def stream(
        self, key: str, byte_range: ByteRange | None = None, *, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            f = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise NotFound(f"object {key!r} does not exist") from None
        try:
            start, end = _resolve_range(os.fstat(f.fileno()).st_size, byte_range)
            await asyncio.to_thread(f.seek, start)
            left = end - start
            while left > 0:
                block = await asyncio.to_thread(f.read, min(chunk_size, left))
                if not block:
                    break
                left -= len(block)
                yield block
        finally:
            f.close()

    async def delete(self, key: str) -> None:
        def _delete() -> None:
            path, meta = self._path(key), self._meta_path(key)
            path.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            _prune_empty_dirs(path.parent, self.root)
            _prune_empty_dirs(meta.parent, self.root)

        await asyncio.to_thread(_delete)

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        def _keys() -> list[str]:
            found = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if name.startswith("."):
                        continue
                    key = os.path.relpath(os.path.join(dirpath, name), self.root)
                    if key.startswith(prefix):
                        found.append(key)
            return sorted(found)

        for key in await asyncio.to_thread(_keys):
            info = await self.head(key)
            if info is not None:
                yield info

    # -- multipart ------------------------------------------------------------
    def _upload_dir(self, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise NotFound(f"multipart upload {upload_id!r} does not exist")
        return self.root / _UPLOADS / upload_id

    def _open_upload(self, key: str, upload_id: str) -> Path:
        folder = self._upload_dir(upload_id)
        try:
            manifest = json.loads((folder / "upload.json").read_text())
        except FileNotFoundError:
            raise NotFound(f"multipart upload {upload_id!r} does not exist") from None
        if manifest["key"] != key:
            raise NotFound(f"multipart upload {upload_id!r} is not for {key!r}")
        return folder

    async def create_multipart(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> str:
        self._path(key)
        upload_id = uuid.uuid4().hex
        folder = self._upload_dir(upload_id)

        def _create() -> None:
            folder.mkdir(parents=True)
            (folder / "upload.json").write_text(
                json.dumps({"key": key, "content_type": content_type})
            )

        await asyncio.to_thread(_create)
        return upload_id

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> Part:
        if not 1 <= number <= 10_000:
            raise InvalidInput(f"part number {number} outside 1..10000")
        folder = self._open_upload(key, upload_id)

        def _write() -> Part:
            tmp = folder / f".{number}.{uuid.uuid4().hex}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, folder / f"{number:05d}.part")
            return Part(number, hashlib.md5(data, usedforsecurity=False).hexdigest(), len(data))

        return await asyncio.to_thread(_write)

    async def upload_part_stream(
        self, key: str, upload_id: str, number: int, size: int, chunks: AsyncIterable[bytes]
    ) -> Part:
        if not 1 <= number <= 10_000:
            raise InvalidInput(f"part number {number} outside 1..10000")
        folder = self._open_upload(key, upload_id)
        tmp = folder / f".{number}.{uuid.uuid4().hex}.tmp"
        md5 = hashlib.md5(usedforsecurity=False)
        written = 0
        out: IO[bytes] | None = None
        try:
            out = await asyncio.to_thread(tmp.open, "wb")
            batch: list[bytes] = []
            batched = 0
            async for chunk in chunks:
                written += len(chunk)
                if written > size:
                    raise InvalidInput(f"streamed part: the stream runs past its {size} bytes")
                batch.append(chunk)
                batched += len(chunk)
                if batched >= 1 << 20:  # one thread hop per MiB, not per chunk
                    await asyncio.to_thread(_write_all, out, md5, batch)
                    batch, batched = [], 0
            if written < size:
                raise InvalidInput(
                    f"streamed part: the stream ended after {written} of {size} bytes"
                )
            await asyncio.to_thread(_write_all, out, md5, batch)
            await asyncio.to_thread(out.close)
            await asyncio.to_thread(os.replace, tmp, folder / f"{number:05d}.part")
        except BaseException:
            # Quick, and must happen even when cancelled: done on the loop.
            if out is not None:
                out.close()
            tmp.unlink(missing_ok=True)
            raise
        return Part(number, md5.hexdigest(), size)

    async def list_parts(self, key: str, upload_id: str) -> list[Part]:
        folder = self._open_upload(key, upload_id)

        def _list() -> list[Part]:
            parts = []
            for path in sorted(folder.glob("*.part")):
                data = path.read_bytes()
                md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
                parts.append(Part(int(path.stem), md5, len(data)))
            return parts

        return await asyncio.to_thread(_list)

    async def complete_multipart(self, key: str, upload_id: str, parts: list[Part]) -> ObjectInfo:
        folder = self._open_upload(key, upload_id)
        if not parts:
            raise InvalidInput("a multipart upload needs at least one part")
        ordered: list[Part] = sorted(parts, key=lambda p: p.number)
        stored = {p.number: p for p in await self.list_parts(key, upload_id)}
        for i, part in enumerate(ordered):
            have = stored.get(part.number)
            if have is None or have.etag != part.etag:
                raise InvalidInput(f"part {part.number} was not uploaded or has another etag")
            if i < len(ordered) - 1 and have.size < MIN_PART_SIZE:
                raise InvalidInput(
                    f"part {part.number} is {have.size} bytes; all but the last part "
                    f"must be at least {MIN_PART_SIZE} bytes"
                )
        manifest = json.loads((folder / "upload.json").read_text())
        files = [folder / f"{p.number:05d}.part" for p in ordered]
        info = await asyncio.to_thread(self._write_sync, key, files, manifest["content_type"])
        await self.abort_multipart(key, upload_id)
        return info

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        folder = self._upload_dir(upload_id)

        def _remove() -> None:
            if folder.is_dir():
                for path in folder.iterdir():
                    path.unlink()
                _prune_empty_dirs(folder, self.root)

        await asyncio.to_thread(_remove)

    async def close(self) -> None:
        return None
