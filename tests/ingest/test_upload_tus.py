"""The tus 1.0 upload service with off-the-shelf clients (tuspy, tus-js-client
under Node), on the embedded backends and on the real servers (MariaDB, Kafka,
Redis, S3)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from reelplane.events.envelope import utc_now
from reelplane.ports.objects import ObjectStore, Part
from reelplane.schema import uploads
from reelplane.settings import Settings
from reelplane.upload.engine import RequestBody, UploadEngine, part_plan
from reelplane.upload.errors import UploadLocked
from reelplane.upload.settings import UploadSettings
from reelplane.upload.tus import encode_metadata
from tests.helpers import eventually
from tests.ingest.conftest import Media
from tests.upload_support import (
    MIB,
    CuttingProxy,
    Platform,
    node_tus_client,
    object_keys,
    raw_create,
    raw_patch,
    running_platform,
    sha256_of,
    video_row,
)

CHUNK = 5 * MIB
REPO = Path(__file__).resolve().parents[2]


async def _source_bytes(platform: Platform, video_id: str) -> bytes:
    row = await video_row(platform.backends, video_id)
    assert row is not None
    assert row.asset_sha256 is not None
    return await platform.backends.objects.get(f"uploads/{video_id}/source")


async def test_tuspy_upload_with_checksums_resumes_after_the_connection_is_cut(
    platform_settings: Settings, media: Media
) -> None:
    source = media.big
    async with (
        running_platform(platform_settings) as platform,
        CuttingProxy(int(platform.base_url.rsplit(":", 1)[1]), cut_after=8 * MIB) as proxy,
    ):
        client = tus_client.TusClient(f"{proxy.url}/v1/uploads", headers=platform.auth)
        first = client.uploader(
            str(source),
            chunk_size=CHUNK,
            metadata={"filename": source.name, "caption": "first try #Cut"},
            upload_checksum=True,  # sha1 per PATCH: a cut PATCH is discarded whole
        )
        with pytest.raises((TusCommunicationError, TusUploadFailed, OSError)):
            await asyncio.to_thread(first.upload)
        assert proxy.cut
        assert first.url is not None
        video_id = first.url.rsplit("/", 1)[-1]

        # Built in a thread: with a url, tuspy asks the server for the offset (HEAD)
        # at once, and the server answers from this event loop.
        resumed = await asyncio.to_thread(
            client.uploader, str(source), url=first.url, chunk_size=CHUNK, upload_checksum=True
        )
        server_offset = resumed.offset  # tuspy asked the server (HEAD)
        # One whole 5 MiB PATCH got through before the cut; the cut one, carrying a
        # checksum that can no longer be verified, was discarded.
        assert server_offset == CHUNK
        await asyncio.to_thread(resumed.upload)
        assert resumed.offset == source.stat().st_size

        row = await video_row(platform.backends, video_id)
        assert row.state in ("uploaded", "transcoding", "ready")
        assert row.sha256 == sha256_of(source)
        assert row.caption == "first try #Cut"
        assert row.hashtags == ["cut"]
        assert await _source_bytes(platform, video_id) == source.read_bytes()
        # Nothing but the source is left of the upload (no pending tail objects).
        assert await object_keys(platform.backends, f"uploads/{video_id}/") == [
            f"uploads/{video_id}/source"
        ]


async def test_tus_js_client_resumes_from_the_server_offset_after_a_cut(
    platform_settings: Settings, media: Media, tmp_path: Path
) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is required for the tus-js-client test")
    modules = await asyncio.to_thread(node_tus_client, REPO / ".cache")
    script = Path(__file__).with_name("tus_js_upload.mjs")
    source = media.big

    async def node_upload(
        endpoint: str, token: str, upload_url: str | None = None
    ) -> dict[str, object]:
        options = {
            "endpoint": endpoint,
            "token": token,
            "file": str(source),
            "chunkSize": CHUNK,
            "uploadUrl": upload_url,
            "nodeModules": str(modules),
            "metadata": {"filename": source.name, "caption": "from node", "hashtags": "js,Tus"},
        }
        proc = await asyncio.create_subprocess_exec(
            "node", str(script), json.dumps(options), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    async with (
        running_platform(platform_settings) as platform,
        CuttingProxy(int(platform.base_url.rsplit(":", 1)[1]), cut_after=7 * MIB) as proxy,
    ):
        first = await node_upload(f"{proxy.url}/v1/uploads", platform.token)
        assert first["ok"] is False, first
        assert proxy.cut
        assert isinstance(first["url"], str)
        # No checksum: the server kept every byte that arrived before the cut,
        # including the tail shorter than a part (stored as a pending object).
        video_id = first["url"].rsplit("/", 1)[-1]

        async def server_head() -> httpx.Response:
            async with httpx.AsyncClient() as client:
                return await client.head(
                    f"{platform.tus_endpoint}/{video_id}",
                    headers={**platform.auth, "Tus-Resumable": "1.0.0"},
                )

        # The server stores the cut PATCH's bytes once it sees the disconnect,
        # which may be a moment after the client gave up.
        head = await eventually(
            server_head, until=lambda r: int(r.headers["upload-offset"]) > CHUNK, timeout_s=10
        )
        kept = int(head.headers["upload-offset"])
        assert CHUNK < kept < 7 * MIB
        assert head.headers["cache-control"] == "no-store"

        second = await node_upload(f"{proxy.url}/v1/uploads", platform.token, first["url"])
        assert second["ok"] is True, second
        assert second["resumedFrom"] == kept
        patches = second["patches"]
        assert isinstance(patches, list)
        assert patches[0] == [kept, 204]

        row = await video_row(platform.backends, video_id)
        assert row.sha256 == sha256_of(source)
        assert row.hashtags == ["js", "tus"]
        assert await _source_bytes(platform, video_id) == source.read_bytes()


async def test_protocol_errors_get_their_status_codes(
    platform_settings: Settings, media: Media
) -> None:
    data = media.small.read_bytes()
    settings = UploadSettings(
        upload_max_size_bytes=64 * MIB, upload_work_dir=platform_settings.data_dir / "scratch"
    )
    async with (
        running_platform(platform_settings, settings) as platform,
        httpx.AsyncClient(timeout=60) as client,
    ):
        options = await client.options(platform.tus_endpoint)
        assert options.status_code == 204
        assert options.headers["tus-version"] == "1.0.0"
        extensions = options.headers["tus-extension"].split(",")
        for ext in ("creation", "creation-with-upload", "expiration", "checksum", "termination"):
            assert ext in extensions
        assert set(options.headers["tus-checksum-algorithm"].split(",")) >= {"sha1", "sha256"}
        assert options.headers["tus-max-size"] == str(64 * MIB)

        # 401 without a token, with problem+json and the tus header.
        anonymous = await client.post(
            platform.tus_endpoint, headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"}
        )
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        assert anonymous.headers["tus-resumable"] == "1.0.0"

        # 412 for another protocol version, naming the one we speak.
        old = await raw_create(client, platform, len(data), **{"Tus-Resumable": "0.2.2"})
        assert old.status_code == 412
        assert old.headers["tus-version"] == "1.0.0"

        # 413 over Tus-Max-Size at creation.
        huge = await raw_create(client, platform, 65 * MIB)
        assert huge.status_code == 413
        assert "Tus-Max-Size" in huge.json()["detail"]

        # 400 for malformed metadata and an invalid hashtag.
        bad_meta = await raw_create(client, platform, 10, **{"Upload-Metadata": "caption ***"})
        assert bad_meta.status_code == 400
        bad_tag = await raw_create(
            client, platform, 10, **{"Upload-Metadata": encode_metadata({"hashtags": "no-dash"})}
        )
        assert bad_tag.status_code == 422

        created = await raw_create(client, platform, len(data))
        assert created.status_code == 201
        url = created.headers["location"]
        assert "upload-expires" in created.headers

        # 415 for another content type.
        wrong_type = await raw_patch(
            client, platform, url, 0, data[:100], **{"Content-Type": "application/octet-stream"}
        )
        assert wrong_type.status_code == 415

        # 409 when Upload-Offset is not the server's, which the problem names.
        ahead = await raw_patch(client, platform, url, 100, data[100:200])
        assert ahead.status_code == 409
        assert ahead.headers["upload-offset"] == "0"
        assert ahead.headers["content-type"] == "application/problem+json"

        # 460 on a checksum mismatch; nothing is stored.
        import base64
        import hashlib

        wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
        mismatch = await raw_patch(
            client, platform, url, 0, data[:1000], **{"Upload-Checksum": f"sha256 {wrong}"}
        )
        assert mismatch.status_code == 460
        right = base64.b64encode(hashlib.sha1(data[:1000], usedforsecurity=False).digest()).decode()
        matched = await raw_patch(
            client, platform, url, 0, data[:1000], **{"Upload-Checksum": f"sha1 {right}"}
        )
        assert matched.status_code == 204
        assert matched.headers["upload-offset"] == "1000"
        unknown = await raw_patch(
            client, platform, url, 1000, data[1000:1010], **{"Upload-Checksum": f"crc32 {right}"}
        )
        assert unknown.status_code == 400

        # 413 for bytes past Upload-Length.
        past = await raw_patch(client, platform, url, 1000, data[1000:] + b"extra")
        assert past.status_code == 413

        # Another user sees nothing.
        _, other_token = await platform.new_user()
        foreign = await client.head(
            platform.base_url + url,
            headers={"Authorization": f"Bearer {other_token}", "Tus-Resumable": "1.0.0"},
        )
        assert foreign.status_code == 404

        # Termination removes the upload and its objects; afterwards 410.
        video_id = url.rsplit("/", 1)[-1]
        assert await object_keys(platform.backends, f"uploads/{video_id}/")  # the pending tail
        deleted = await client.delete(
            platform.base_url + url, headers={**platform.auth, "Tus-Resumable": "1.0.0"}
        )
        assert deleted.status_code == 204
        gone = await client.head(
            platform.base_url + url, headers={**platform.auth, "Tus-Resumable": "1.0.0"}
        )
        assert gone.status_code == 410
        assert await object_keys(platform.backends, f"uploads/{video_id}/") == []
        assert (await video_row(platform.backends, video_id)).state == "deleted"

        # creation-with-upload: the first bytes ride on the POST.
        with_body = await client.post(
            platform.tus_endpoint,
            content=data[:4096],
            headers={
                **platform.auth,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(len(data)),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert with_body.status_code == 201
        assert with_body.headers["upload-offset"] == "4096"

    # 410 once an upload expired.
    short = UploadSettings(upload_expiry_s=0.5, upload_work_dir=platform_settings.data_dir / "s2")
    async with (
        running_platform(platform_settings, short) as platform,
        httpx.AsyncClient() as client,
    ):
        created = await raw_create(client, platform, len(data))
        await asyncio.sleep(0.7)
        expired = await raw_patch(client, platform, created.headers["location"], 0, data[:10])
        assert expired.status_code == 410
        # The janitor cleans it up: objects gone, video failed with the reason.
        counts = await platform.app.state.upload_engine.sweep()
        assert counts["expired"] == 1
        video_id = created.headers["location"].rsplit("/", 1)[-1]
        row = await video_row(platform.backends, video_id)
        assert row.state == "failed"
        assert "expired" in row.failure_reason
        assert await object_keys(platform.backends, f"uploads/{video_id}/") == []


async def test_patches_off_the_part_grid_leave_no_pending_tail_and_resume_on_another_replica(
    platform_settings: Settings, media: Media
) -> None:
    data = media.big.read_bytes()
    assert len(data) > 12 * MIB
    async with (
        running_platform(platform_settings) as platform,
        httpx.AsyncClient(timeout=120) as client,
    ):
        created = await raw_create(client, platform, len(data))
        url = created.headers["location"]
        video_id = url.rsplit("/", 1)[-1]

        # 3 MiB: less than a part, kept as a pending tail.
        first = await raw_patch(client, platform, url, 0, data[: 3 * MIB])
        assert first.headers["upload-offset"] == str(3 * MIB)
        pending = await object_keys(platform.backends, f"uploads/{video_id}/pending/")
        assert len(pending) == 1

        # Another replica (a fresh engine: no running hash, no memory of the
        # upload) takes the next PATCH, 5 MiB off the part grid: the tail and the
        # whole PATCH become one 8 MiB part, and no tail is left.
        platform.app.state.upload_engine = UploadEngine(
            platform.backends, platform.app.state.upload_settings
        )
        second = await raw_patch(client, platform, url, 3 * MIB, data[3 * MIB : 8 * MIB])
        assert second.headers["upload-offset"] == str(8 * MIB)
        assert await object_keys(platform.backends, f"uploads/{video_id}/pending/") == []
        async with platform.backends.database.connect() as conn:
            row = (await conn.execute(select(uploads).where(uploads.c.id == video_id))).one()
        assert [p["size"] for p in row.parts] == [8 * MIB]
        assert row.pending_key is None

        # A stale offset is refused with the server's; the rest finishes it.
        stale = await raw_patch(client, platform, url, 3 * MIB, data[3 * MIB : 4 * MIB])
        assert stale.status_code == 409
        assert stale.headers["upload-offset"] == str(8 * MIB)
        last = await raw_patch(client, platform, url, 8 * MIB, data[8 * MIB :])
        assert last.status_code == 204, last.text
        row = await video_row(platform.backends, video_id)
        assert row.sha256 == sha256_of(media.big)  # hashed while read back for ffprobe
        assert await _source_bytes(platform, video_id) == data
        assert await object_keys(platform.backends, f"uploads/{video_id}/") == [
            f"uploads/{video_id}/source"
        ]


async def test_a_patch_whose_lease_was_taken_over_stores_nothing_more(
    platform_settings: Settings, media: Media
) -> None:
    data = media.big.read_bytes()
    async with running_platform(platform_settings) as platform:
        engine = UploadEngine(
            platform.backends,
            UploadSettings(upload_lock_s=1.0, upload_work_dir=platform_settings.data_dir / "s"),
        )
        upload = await engine.create(platform.user_id, len(data), {})

        async def stalling_body() -> AsyncIterator[bytes]:
            yield data[: 3 * MIB]
            await asyncio.sleep(1.5)  # the lease runs out, and another request takes it
            async with platform.backends.database.transaction() as conn:
                await conn.execute(
                    update(uploads)
                    .where(uploads.c.id == upload.id)
                    .values(lock_owner="another-replica", lock_expires_at=utc_now())
                )
            yield data[3 * MIB : 6 * MIB]

        with pytest.raises(UploadLocked):
            await engine.append(
                platform.user_id,
                upload.id,
                offset=0,
                content_length=6 * MIB,
                checksum=None,
                body=RequestBody(stalling_body(), idle_timeout_s=10),
            )
        # No part went to the store on the lost lease: the new holder's part 1
        # can never be overwritten by this request.
        assert upload.multipart_id is not None
        objects = platform.backends.objects
        assert await objects.list_parts(upload.object_key, upload.multipart_id) == []
        assert (await engine._load(upload.id)).offset == 0


async def test_a_replica_keeps_its_lease_for_the_next_patch_and_others_wait_it_out(
    platform_settings: Settings, media: Media, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = media.big.read_bytes()
    async with running_platform(platform_settings) as platform:
        settings = UploadSettings(
            upload_lease_linger_s=1.0, upload_work_dir=platform_settings.data_dir / "s"
        )
        here, there = (
            UploadEngine(platform.backends, settings),
            UploadEngine(platform.backends, settings),
        )
        upload = await here.create(platform.user_id, len(data), {})

        async def patch(engine: UploadEngine, start: int, end: int) -> int:
            async def body() -> AsyncIterator[bytes]:
                yield data[start:end]

            written = await engine.append(
                platform.user_id,
                upload.id,
                offset=start,
                content_length=end - start,
                checksum=None,
                body=RequestBody(body(), idle_timeout_s=10),
            )
            return written.offset

        locks: list[str] = []
        take_lease = here.leases.lock

        async def counted(upload_id: str) -> Any:
            locks.append(upload_id)
            return await take_lease(upload_id)

        monkeypatch.setattr(here.leases, "lock", counted)
        assert await patch(here, 0, 3 * MIB) == 3 * MIB  # less than a part: a pending tail
        # The next PATCH on this replica takes over the lease its last one kept,
        # with the row as that PATCH left it (the tail goes on in its first part).
        assert await patch(here, 3 * MIB, 10 * MIB) == 10 * MIB
        assert locks == [upload.id]
        # Another replica waits until that lease runs out (not a 423), then goes on.
        assert await patch(there, 10 * MIB, 11 * MIB) == 11 * MIB
        # This replica's kept lease is stale now: it takes the lease again and
        # reads the row the other replica moved on.
        assert await patch(here, 11 * MIB, 12 * MIB) == 12 * MIB
        assert locks == [upload.id, upload.id]
        row = await _upload_row(platform, upload.id)
        assert (row.offset, [p["size"] for p in row.parts]) == (12 * MIB, [5 * MIB, 5 * MIB])
        assert row.pending_size == 2 * MIB


def _no_patch_in_flight(row: Any) -> bool:
    """The upload's lease is free, or only kept a moment after the last PATCH
    (`upload_lease_linger_s`, 2 s), not held by one still writing (30 s)."""
    return row.lock_owner is None or row.lock_expires_at < utc_now() + timedelta(seconds=5)


async def _upload_row(platform: Platform, upload_id: str) -> Any:
    async with platform.backends.database.connect() as conn:
        return (await conn.execute(select(uploads).where(uploads.c.id == upload_id))).one()


async def test_a_patch_cut_inside_a_streamed_part_keeps_what_arrived_and_resumes(
    platform_settings: Settings, media: Media
) -> None:
    data = media.big.read_bytes()
    assert len(data) > 12 * MIB
    async with (
        running_platform(platform_settings) as platform,
        httpx.AsyncClient(timeout=120) as client,
    ):
        port = int(platform.base_url.rsplit(":", 1)[1])
        created = await raw_create(client, platform, len(data))
        url = created.headers["location"]
        video_id = url.rsplit("/", 1)[-1]
        objects = platform.backends.objects

        # One PATCH of the whole file: parts of 5 MiB (the last one takes the
        # rest), each streamed to the store as it arrives; the connection is cut
        # 3 MiB into the second one.
        async with CuttingProxy(port, cut_after=8 * MIB) as proxy:
            with pytest.raises(httpx.TransportError):
                await raw_patch(client, platform, proxy.url + url, 0, data)
        row = await eventually(
            lambda: _upload_row(platform, video_id),
            until=lambda r: r.offset > CHUNK and _no_patch_in_flight(r),
            timeout_s=10,
        )
        # The part cut midway was cancelled: the store recorded nothing of it,
        # and what arrived of it is the pending tail.
        assert CHUNK < row.offset < 8 * MIB
        assert [p["size"] for p in row.parts] == [CHUNK]
        assert row.pending_size == row.offset - CHUNK
        stored = await objects.list_parts(row.object_key, row.multipart_id)
        assert [(p.number, p.size) for p in stored] == [(1, CHUNK)]

        # The next PATCH (6 MiB) makes one part with that tail; cut once more than
        # a part's worth of it arrived, what arrived is stored as a part (no tail).
        cut_at = row.offset
        async with CuttingProxy(port, cut_after=3 * MIB) as proxy:
            with pytest.raises(httpx.TransportError):
                await raw_patch(
                    client, platform, proxy.url + url, cut_at, data[cut_at : cut_at + 6 * MIB]
                )
        row = await eventually(
            lambda: _upload_row(platform, video_id),
            until=lambda r: r.offset > cut_at and _no_patch_in_flight(r),
            timeout_s=10,
        )
        assert cut_at + 2 * MIB < row.offset < cut_at + 3 * MIB
        assert [p["size"] for p in row.parts] == [CHUNK, row.offset - CHUNK]
        assert row.pending_key is None
        assert await object_keys(platform.backends, f"uploads/{video_id}/pending/") == []

        # Resumed from the server's offset, it finishes with the right bytes and hash.
        last = await raw_patch(client, platform, url, row.offset, data[row.offset :])
        assert last.status_code == 204, last.text
        video = await video_row(platform.backends, video_id)
        assert video.sha256 == sha256_of(media.big)  # the running hash survived both cuts
        assert await _source_bytes(platform, video_id) == data
        assert await object_keys(platform.backends, f"uploads/{video_id}/") == [
            f"uploads/{video_id}/source"
        ]


class _FirstStreamFails:
    """An objects store whose first streamed part fails after reading a little
    of its stream, as when the store drops a stalled connection."""

    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._objects, name)

    async def upload_part_stream(
        self, key: str, upload_id: str, number: int, size: int, chunks: AsyncIterable[bytes]
    ) -> Part:
        if self.failed:
            return await self._objects.upload_part_stream(key, upload_id, number, size, chunks)
        self.failed += 1
        async for _ in chunks:
            break
        await asyncio.sleep(0.1)  # the PATCH's bytes keep coming meanwhile
        raise ConnectionError("the store dropped the connection")


async def test_a_part_whose_stream_fails_is_sent_again_whole(
    platform_settings: Settings, media: Media
) -> None:
    data = media.big.read_bytes()
    async with running_platform(platform_settings) as platform:
        objects = _FirstStreamFails(platform.backends.objects)
        backends = dataclasses.replace(platform.backends, objects=objects)
        engine = UploadEngine(backends, platform.app.state.upload_settings)
        upload = await engine.create(platform.user_id, len(data), {})

        async def body() -> AsyncIterator[bytes]:
            for offset in range(0, len(data), 64 * 1024):
                yield data[offset : offset + 64 * 1024]
                await asyncio.sleep(0)

        done = await engine.append(
            platform.user_id,
            upload.id,
            offset=0,
            content_length=len(data),
            checksum=None,
            body=RequestBody(body(), idle_timeout_s=10),
        )
        assert objects.failed == 1
        assert (done.state, done.offset) == ("done", len(data))
        assert [p.size for p in done.parts] == part_plan(0, len(data), CHUNK)
        assert await _source_bytes(platform, upload.id) == data
        assert (await video_row(platform.backends, upload.id)).sha256 == sha256_of(media.big)


async def test_a_patch_without_content_length_is_stored_part_by_part(
    platform_settings: Settings, media: Media
) -> None:
    data = media.big.read_bytes()
    async with (
        running_platform(platform_settings) as platform,
        httpx.AsyncClient(timeout=120) as client,
    ):
        created = await raw_create(client, platform, len(data))
        url = created.headers["location"]
        video_id = url.rsplit("/", 1)[-1]

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
            for offset in range(0, 12 * MIB, 256 * 1024):
                yield data[offset : offset + 256 * 1024]

        first = await client.patch(
            platform.base_url + url,
            content=chunked(),
            headers={
                **platform.auth,
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert first.status_code == 204, first.text
        assert first.headers["upload-offset"] == str(12 * MIB)
        row = await _upload_row(platform, video_id)
        # Parts are cut as they fill up; what is left is the pending tail.
        assert [p["size"] for p in row.parts] == [CHUNK, CHUNK]
        assert row.pending_size == 2 * MIB
        last = await raw_patch(client, platform, url, 12 * MIB, data[12 * MIB :])
        assert last.status_code == 204, last.text
        assert (await video_row(platform.backends, video_id)).sha256 == sha256_of(media.big)
        assert await _source_bytes(platform, video_id) == data


async def test_a_patch_carrying_bytes_to_a_complete_upload_is_refused_as_too_large(
    platform_settings: Settings,
) -> None:
    # A partial upload (tus concatenation) is complete on its last byte without
    # a media check, so no ffmpeg is needed to finish it. Its PATCH is larger
    # than the JSON API's body limit, which tus bodies are exempt from.
    data = b"0123456789" * 10_000
    async with (
        running_platform(platform_settings) as platform,
        httpx.AsyncClient(timeout=60) as client,
    ):
        created = await raw_create(client, platform, len(data), **{"Upload-Concat": "partial"})
        url = created.headers["location"]
        done = await raw_patch(client, platform, url, 0, data)
        assert done.status_code == 204
        assert done.headers["upload-offset"] == str(len(data))

        # Bytes past Upload-Length: 413 with the reason, whether the body has a
        # Content-Length or is chunked; nothing is appended.
        extra = await raw_patch(client, platform, url, len(data), b"more")
        assert extra.status_code == 413, extra.text
        assert extra.headers["content-type"] == "application/problem+json"
        assert extra.headers["tus-resumable"] == "1.0.0"
        assert "exceed" in extra.json()["detail"]

        async def chunked() -> AsyncIterator[bytes]:
            yield b""
            yield b"more"

        chunked_extra = await client.patch(
            platform.base_url + url,
            content=chunked(),
            headers={
                **platform.auth,
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": str(len(data)),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert chunked_extra.status_code == 413, chunked_extra.text
        assert "past its Upload-Length" in chunked_extra.json()["detail"]

        # An empty PATCH at the final offset stays a no-op (tus clients send one
        # to learn that the upload is complete).
        empty = await raw_patch(client, platform, url, len(data), b"")
        assert empty.status_code == 204
        assert empty.headers["upload-offset"] == str(len(data))
        head = await client.head(
            platform.base_url + url, headers={**platform.auth, "Tus-Resumable": "1.0.0"}
        )
        assert head.headers["upload-offset"] == str(len(data))
        assert head.headers["upload-length"] == str(len(data))
