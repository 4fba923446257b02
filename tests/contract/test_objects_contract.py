"""The objects port's contract, run on the local-folder store and on S3 (versitygw)."""

from __future__ import annotations

import hashlib
import os

import pytest

from reelplane.errors import InvalidInput, NotFound, RangeNotSatisfiable
from reelplane.ports.objects import MIN_PART_SIZE, ByteRange, ObjectStore


async def test_put_get_head_round_trip(objects: ObjectStore, ns: str) -> None:
    info = await objects.put(f"{ns}/raw/video.mp4", b"0123456789", content_type="video/mp4")
    assert info.size == 10 and info.etag
    assert await objects.get(f"{ns}/raw/video.mp4") == b"0123456789"
    head = await objects.head(f"{ns}/raw/video.mp4")
    assert head is not None
    assert (head.size, head.etag, head.content_type) == (10, info.etag, "video/mp4")


async def test_missing_objects(objects: ObjectStore, ns: str) -> None:
    assert await objects.head(f"{ns}/nothing") is None
    with pytest.raises(NotFound):
        await objects.get(f"{ns}/nothing")
    await objects.delete(f"{ns}/nothing")  # deleting a missing key is fine


async def test_ranged_get(objects: ObjectStore, ns: str) -> None:
    await objects.put(f"{ns}/r", b"0123456789abcdef")
    assert await objects.get(f"{ns}/r", ByteRange(5, 9)) == b"56789"
    assert await objects.get(f"{ns}/r", ByteRange(10)) == b"abcdef"
    assert await objects.get(f"{ns}/r", ByteRange(14, 100)) == b"ef"
    with pytest.raises(RangeNotSatisfiable):
        await objects.get(f"{ns}/r", ByteRange(16))


async def test_stream_yields_the_whole_object_in_chunks(objects: ObjectStore, ns: str) -> None:
    data = os.urandom(300_000)
    await objects.put(f"{ns}/big", data)
    chunks = [c async for c in objects.stream(f"{ns}/big", chunk_size=64 * 1024)]
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= 64 * 1024
    ranged = b"".join([c async for c in objects.stream(f"{ns}/big", ByteRange(1000, 1999))])
    assert ranged == data[1000:2000]


async def test_multipart_upload_joins_parts_in_order(objects: ObjectStore, ns: str) -> None:
    key = f"{ns}/multi.bin"
    parts_data = [os.urandom(MIN_PART_SIZE), os.urandom(MIN_PART_SIZE), os.urandom(1234)]
    upload_id = await objects.create_multipart(key, content_type="video/mp4")
    # Uploaded out of order: the number decides the position.
    parts = [await objects.upload_part(key, upload_id, n, parts_data[n - 1]) for n in (2, 1, 3)]
    listed = await objects.list_parts(key, upload_id)
    assert [(p.number, p.size) for p in listed] == [
        (1, MIN_PART_SIZE),
        (2, MIN_PART_SIZE),
        (3, 1234),
    ]
    assert await objects.head(key) is None  # nothing visible before completion
    info = await objects.complete_multipart(key, upload_id, parts)
    whole = b"".join(parts_data)
    assert info.size == len(whole)
    got = await objects.get(key)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(whole).hexdigest()


async def test_multipart_rejects_a_small_part_before_the_last(
    objects: ObjectStore, ns: str
) -> None:
    key = f"{ns}/small-parts.bin"
    upload_id = await objects.create_multipart(key)
    p1 = await objects.upload_part(key, upload_id, 1, b"too small")
    p2 = await objects.upload_part(key, upload_id, 2, b"last")
    with pytest.raises(InvalidInput):
        await objects.complete_multipart(key, upload_id, [p1, p2])
    await objects.abort_multipart(key, upload_id)
    assert await objects.head(key) is None


async def test_aborted_upload_is_gone(objects: ObjectStore, ns: str) -> None:
    key = f"{ns}/aborted.bin"
    upload_id = await objects.create_multipart(key)
    await objects.upload_part(key, upload_id, 1, b"data")
    await objects.abort_multipart(key, upload_id)
    with pytest.raises(NotFound):
        await objects.list_parts(key, upload_id)
    with pytest.raises(NotFound):
        await objects.upload_part(key, upload_id, 2, b"more")
    assert await objects.head(key) is None


async def test_list_by_prefix_in_key_order_and_delete(objects: ObjectStore, ns: str) -> None:
    for key in (f"{ns}/v/2/seg.m4s", f"{ns}/v/1/b.m4s", f"{ns}/v/1/a.m4s", f"{ns}/w/x"):
        await objects.put(key, b"x")
    listed = [o.key async for o in objects.list_objects(f"{ns}/v/")]
    assert listed == [f"{ns}/v/1/a.m4s", f"{ns}/v/1/b.m4s", f"{ns}/v/2/seg.m4s"]
    await objects.delete(f"{ns}/v/1/a.m4s")
    assert [o.key async for o in objects.list_objects(f"{ns}/v/1/")] == [f"{ns}/v/1/b.m4s"]


async def test_overwrite_replaces_the_object(objects: ObjectStore, ns: str) -> None:
    await objects.put(f"{ns}/k", b"old")
    await objects.put(f"{ns}/k", b"newer")
    assert await objects.get(f"{ns}/k") == b"newer"
