"""S3 adapter of the objects port (aioboto3), for AWS S3 or any S3-compatible store.

How bodies are sent. PutObject and UploadPart bodies go aws-chunked with a
trailing CRC32 (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`): botocore does that by
itself on https endpoints, and this adapter asks for it on plain http ones too
(the local versitygw). Three reasons:

- A part can be streamed while its bytes are still arriving
  (`upload_part_stream`): a SigV4-signed payload needs the body's SHA-256 in
  the headers, before the first byte goes out.
- The store checks a CRC32 instead of a SHA-256: a 5 MiB part takes ~25 ms
  instead of ~37 ms on versitygw, and the client no longer hashes it either.
- A body cut short (a cancelled upload, a dropped connection) is refused by the
  chunk framing. A plain `UNSIGNED-PAYLOAD` body with a Content-Length is not:
  versitygw then records the part, padded with zeros to its Content-Length.

The payload itself is no longer signed: in production, its integrity and
authenticity in transit come from TLS (an https endpoint) and the CRC32.
Streamed parts use a second client that never retries: a retry would have to
rewind a body that was consumed as it went (the engine keeps the bytes and can
send them again).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from reelplane.errors import InvalidInput, NotFound, RangeNotSatisfiable
from reelplane.ports.objects import MIN_PART_SIZE, ByteRange, ObjectInfo, Part
from reelplane.urls import query_params

_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}


def _etag(raw: str) -> str:
    return raw.strip('"')


def _range_header(byte_range: ByteRange) -> str:
    end = "" if byte_range.end is None else str(byte_range.end)
    return f"bytes={byte_range.start}-{end}"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


#: aws-chunked frames of a streamed part: all but the last must be >= 8 KiB.
_MIN_FRAME = 64 * 1024


def _checksum_in_trailer(params: dict[str, Any], **_: Any) -> None:
    """botocore event handler: send the body's checksum after it (aws-chunked),
    on http endpoints as botocore does on https ones (see the module docstring)."""
    algorithm = params.get("context", {}).get("checksum", {}).get("request_algorithm")
    if isinstance(algorithm, dict):
        algorithm["in"] = "trailer"


class _ExactBody:
    """A streamed part's body, as botocore's aws-chunked wrapper reads it: exactly
    `size` bytes from `chunks`, in frames of at least _MIN_FRAME bytes. When
    `chunks` ends short or runs past `size`, `read` raises InvalidInput (kept in
    `error`) before the last byte goes out, so the store gets an incomplete body
    and records nothing."""

    def __init__(self, chunks: AsyncIterable[bytes], size: int) -> None:
        self._chunks = aiter(chunks)
        self._size = size
        self._left = size  # bytes not returned by `read` yet
        self._held = b""  # received, not returned yet: self._held[self._at:]
        self._at = 0
        self.error: InvalidInput | None = None

    def __len__(self) -> int:
        return self._size  # botocore sends it as X-Amz-Decoded-Content-Length

    def _fail(self, detail: str) -> InvalidInput:
        self.error = InvalidInput(f"streamed part: {detail}")
        return self.error

    async def read(self, limit: int | None = -1) -> bytes:
        ready = len(self._held) - self._at
        while ready < min(_MIN_FRAME, self._left):
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                got = self._size - self._left + ready
                raise self._fail(f"the stream ended after {got} of {self._size} bytes") from None
            self._held, self._at = self._held[self._at :] + chunk, 0
            ready = len(self._held)
        if ready > self._left:
            raise self._fail(f"the stream runs past the part's {self._size} bytes")
        take = ready if limit is None or limit < 0 else min(limit, ready)
        out = self._held[self._at : self._at + take]  # no copy when it is all of it
        self._at += take
        self._left -= take
        if take and not self._left:
            async for extra in self._chunks:  # the stream must end with the part
                if extra:
                    raise self._fail(f"the stream runs past the part's {self._size} bytes")
        return out


class S3ObjectStore:
    """Objects port over one bucket. URL: s3://bucket?endpoint=..&region=..
    &access_key=..&secret_key=.. (credentials fall back to the AWS environment)."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        params = query_params(url)
        if not parts.netloc:
            raise InvalidInput("s3 URL needs a bucket: s3://bucket?endpoint=...")
        self.bucket = parts.netloc
        self._client_args: dict[str, Any] = {
            "endpoint_url": params.get("endpoint") or None,
            "region_name": params.get("region", "us-east-1"),
            "aws_access_key_id": params.get("access_key") or None,
            "aws_secret_access_key": params.get("secret_key") or None,
        }
        self._config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
            # A CRC32 with every body, sent in its trailer (_checksum_in_trailer).
            request_checksum_calculation="when_supported",
        )
        self._stack = AsyncExitStack()
        # One session for both clients: the second reuses the first's loaded
        # service model (~40 ms of CPU to make instead of ~100).
        self._session = aioboto3.Session()
        self._client: Any = None
        self._streaming_client: Any = None

    async def _new_client(self, config: Config) -> Any:
        client = await self._stack.enter_async_context(
            self._session.client("s3", config=config, **self._client_args)
        )
        for operation in ("PutObject", "UploadPart"):
            client.meta.events.register(f"before-call.s3.{operation}", _checksum_in_trailer)
        return client

    async def _s3(self) -> Any:
        if self._client is None:
            self._client = await self._new_client(self._config)
        return self._client

    async def _s3_streaming(self) -> Any:
        """The client for streamed parts: one attempt each (see the module docstring)."""
        if self._streaming_client is None:
            one_attempt = Config(retries={"total_max_attempts": 1, "mode": "standard"})
            config = self._config.merge(one_attempt)
            self._streaming_client = await self._new_client(config)
        return self._streaming_client

    async def ping(self) -> None:
        s3 = await self._s3()
        await s3.head_bucket(Bucket=self.bucket)
        # Made now (backends are pinged when they open), not by the first
        # streamed part, whose PATCH would wait for it.
        await self._s3_streaming()

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        s3 = await self._s3()
        resp = await s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return ObjectInfo(key, len(data), _etag(resp["ETag"]), content_type)

    async def _get_object(self, key: str, byte_range: ByteRange | None) -> Any:
        s3 = await self._s3()
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if byte_range is not None:
            args["Range"] = _range_header(byte_range)
        try:
            return await s3.get_object(**args)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _MISSING:
                raise NotFound(f"object {key!r} does not exist") from None
            if code in {"InvalidRange", "416"}:
                raise RangeNotSatisfiable(f"range {byte_range} outside object {key!r}") from None
            raise

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        resp = await self._get_object(key, byte_range)
        async with resp["Body"] as body:
            data: bytes = await body.read()
        return data

    async def stream(
        self, key: str, byte_range: ByteRange | None = None, *, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        resp = await self._get_object(key, byte_range)
        body = resp["Body"]
        try:
            async for chunk in body.iter_chunks(chunk_size):
                yield chunk
        finally:
            body.close()

    async def head(self, key: str) -> ObjectInfo | None:
        s3 = await self._s3()
        try:
            resp = await s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                return None
            raise
        return ObjectInfo(
            key,
            int(resp["ContentLength"]),
            _etag(resp["ETag"]),
            resp.get("ContentType", "application/octet-stream"),
        )

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        await s3.delete_object(Bucket=self.bucket, Key=key)

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        s3 = await self._s3()
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"], int(item["Size"]), _etag(item["ETag"]))

    async def create_multipart(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> str:
        s3 = await self._s3()
        resp = await s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type
        )
        return str(resp["UploadId"])

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> Part:
        if not 1 <= number <= 10_000:
            raise InvalidInput(f"part number {number} outside 1..10000")
        s3 = await self._s3()
        try:
            resp = await s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                raise NotFound(f"multipart upload {upload_id!r} does not exist") from None
            raise
        return Part(number, _etag(resp["ETag"]), len(data))

    async def upload_part_stream(
        self, key: str, upload_id: str, number: int, size: int, chunks: AsyncIterable[bytes]
    ) -> Part:
        if not 1 <= number <= 10_000:
            raise InvalidInput(f"part number {number} outside 1..10000")
        s3 = await self._s3_streaming()
        body = _ExactBody(chunks, size)
        try:
            resp = await s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
        except Exception as exc:
            if body.error is not None:  # raised in aiohttp's writer, wrapped on the way
                raise body.error from None
            if isinstance(exc, ClientError) and _error_code(exc) in _MISSING:
                raise NotFound(f"multipart upload {upload_id!r} does not exist") from None
            if isinstance(exc, BotoCoreError):
                # A store may answer (404) and close before the body is all out:
                # the client then only sees the connection go. Ask why.
                await self.list_parts(key, upload_id)  # NotFound when the upload is gone
            raise
        return Part(number, _etag(resp["ETag"]), size)

    async def list_parts(self, key: str, upload_id: str) -> list[Part]:
        s3 = await self._s3()
        parts: list[Part] = []
        marker = 0
        while True:
            try:
                resp = await s3.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
            except ClientError as exc:
                if _error_code(exc) in _MISSING:
                    raise NotFound(f"multipart upload {upload_id!r} does not exist") from None
                raise
            for p in resp.get("Parts", []):
                parts.append(Part(int(p["PartNumber"]), _etag(p["ETag"]), int(p["Size"])))
            if not resp.get("IsTruncated"):
                return sorted(parts, key=lambda p: p.number)
            marker = int(resp["NextPartNumberMarker"])

    async def complete_multipart(self, key: str, upload_id: str, parts: list[Part]) -> ObjectInfo:
        if not parts:
            raise InvalidInput("a multipart upload needs at least one part")
        ordered: list[Part] = sorted(parts, key=lambda p: p.number)
        # Same rule as S3, checked here so both adapters fail alike and early.
        for part in ordered[:-1]:
            if part.size < MIN_PART_SIZE:
                raise InvalidInput(
                    f"part {part.number} is {part.size} bytes; all but the last part "
                    f"must be at least {MIN_PART_SIZE} bytes"
                )
        s3 = await self._s3()
        try:
            await s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.number, "ETag": f'"{p.etag}"'} for p in ordered]
                },
            )
        except ClientError as exc:
            code = _error_code(exc)
            if code in _MISSING:
                raise NotFound(f"multipart upload {upload_id!r} does not exist") from None
            if code in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}:
                raise InvalidInput(f"cannot complete upload: {code}") from None
            raise
        info = await self.head(key)
        if info is None:
            raise NotFound(f"object {key!r} missing after completing its upload")
        return info

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        s3 = await self._s3()
        try:
            await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _error_code(exc) not in _MISSING:
                raise

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = self._streaming_client = None
