"""The objects port's contract, run on the local-folder store and on S3 (versitygw)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

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


async def _chunks_of(data: bytes, *, stall: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """`data` in uneven chunks, as a network delivers them (some tiny); with
    `stall`, half of it, then nothing more until `stall` is set."""
    sizes = [1, 100, 7000, 65536, 300_000]
    offset = i = 0
    while offset < len(data):
        if stall is not None and offset >= len(data) // 2:
            await stall.wait()
        end = min(offset + sizes[i % len(sizes)], len(data))
        yield data[offset:end]
        offset, i = end, i + 1
        await asyncio.sleep(0)


async def test_streamed_part_is_the_same_part_as_bytes(objects: ObjectStore, ns: str) -> None:
    key = f"{ns}/streamed.bin"
    first, last = os.urandom(MIN_PART_SIZE + 12345), os.urandom(1000)
    upload_id = await objects.create_multipart(key)
    streamed = await objects.upload_part_stream(key, upload_id, 1, len(first), _chunks_of(first))
    # The same bytes as a bytes part of another upload: same etag and size.
    other_id = await objects.create_multipart(f"{ns}/other.bin")
    as_bytes = await objects.upload_part(f"{ns}/other.bin", other_id, 1, first)
    await objects.abort_multipart(f"{ns}/other.bin", other_id)
    assert (streamed.number, streamed.etag, streamed.size) == (1, as_bytes.etag, len(first))
    assert await objects.list_parts(key, upload_id) == [streamed]
    tail = await objects.upload_part_stream(key, upload_id, 2, len(last), _chunks_of(last))
    info = await objects.complete_multipart(key, upload_id, [streamed, tail])
    assert info.size == len(first) + len(last)
    assert await objects.get(key) == first + last


async def test_a_stream_of_the_wrong_length_is_refused_and_records_nothing(
    objects: ObjectStore, ns: str
) -> None:
    key = f"{ns}/wrong-length.bin"
    data = os.urandom(MIN_PART_SIZE)
    upload_id = await objects.create_multipart(key)
    earlier = await objects.upload_part(key, upload_id, 1, b"an earlier part 1")
    with pytest.raises(InvalidInput):  # ends short
        await objects.upload_part_stream(key, upload_id, 1, len(data), _chunks_of(data[:-1]))
    with pytest.raises(InvalidInput):  # runs past
        await objects.upload_part_stream(key, upload_id, 2, len(data) - 1, _chunks_of(data))
    await asyncio.sleep(0.2)  # let the store see the requests end
    assert await objects.list_parts(key, upload_id) == [earlier]
    with pytest.raises(NotFound):
        await objects.upload_part_stream(key, "nosuchupload", 1, 4, _chunks_of(b"data"))
    await objects.abort_multipart(key, upload_id)


async def test_a_stream_cancelled_midway_records_no_part(objects: ObjectStore, ns: str) -> None:
    key = f"{ns}/cancelled.bin"
    data = os.urandom(MIN_PART_SIZE)
    upload_id = await objects.create_multipart(key)
    stall = asyncio.Event()
    storing = asyncio.ensure_future(
        objects.upload_part_stream(key, upload_id, 1, len(data), _chunks_of(data, stall=stall))
    )
    await asyncio.sleep(0.5)  # half of the part went out; the rest never comes
    assert not storing.done()
    storing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await storing
    await asyncio.sleep(0.2)  # let the store see the connection close
    assert await objects.list_parts(key, upload_id) == []
    # The upload is intact: the part can be sent again.
    again = await objects.upload_part_stream(key, upload_id, 1, len(data), _chunks_of(data))
    info = await objects.complete_multipart(key, upload_id, [again])
    assert (info.size, await objects.get(key)) == (len(data), data)


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


async def test_deleting_leaves_no_empty_folders(objects: ObjectStore, ns: str) -> None:
    keep = f"{ns}/assets/abc/poster.jpg"
    for key in (f"{ns}/uploads/vid/source", f"{ns}/uploads/vid/pending/1", keep):
        await objects.put(key, b"x")
    upload_id = await objects.create_multipart(f"{ns}/uploads/other/source")
    await objects.upload_part(f"{ns}/uploads/other/source", upload_id, 1, b"part")
    await objects.abort_multipart(f"{ns}/uploads/other/source", upload_id)
    for key in (f"{ns}/uploads/vid/pending/1", f"{ns}/uploads/vid/source"):
        await objects.delete(key)
    assert [o.key async for o in objects.list_objects(f"{ns}/")] == [keep]
    # A folder emptied by the deletes can be written to again.
    await objects.put(f"{ns}/uploads/vid/source", b"again")
    assert await objects.get(f"{ns}/uploads/vid/source") == b"again"
    await objects.delete(f"{ns}/uploads/vid/source")

    from reelplane.adapters.objects_file import FileObjectStore

    if isinstance(objects, FileObjectStore):  # the folder layout is this adapter's own
        root = objects.root
        left = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_dir())
        # Only the kept object's folders (and its metadata's) remain, nothing
        # of the upload, the pending tail or the aborted multipart upload.
        assert left == [
            ".meta",
            f".meta/{ns}",
            f".meta/{ns}/assets",
            f".meta/{ns}/assets/abc",
            ns,
            f"{ns}/assets",
            f"{ns}/assets/abc",
        ]
        await objects.delete(keep)
        assert list(root.iterdir()) == []
