"""S3 adapter of the objects port (aioboto3), for AWS S3 or any S3-compatible store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

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
            "config": Config(
                connect_timeout=connect_timeout_s,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        }
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def _s3(self) -> Any:
        if self._client is None:
            session = aioboto3.Session()
            self._client = await self._stack.enter_async_context(
                session.client("s3", **self._client_args)
            )
        return self._client

    async def ping(self) -> None:
        s3 = await self._s3()
        await s3.head_bucket(Bucket=self.bucket)

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
        self._client = None
