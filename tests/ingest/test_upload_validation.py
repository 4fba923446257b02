"""What happens after the last byte: validation with ffprobe (rejects leave
nothing behind), SHA-256 dedup (one transcode for the same content), and the
playback API with byte-range serving. Embedded and real backends."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from reelplane.ports.objects import ObjectStore
from reelplane.settings import Settings
from reelplane.upload.settings import UploadSettings
from tests.helpers import eventually
from tests.ingest.conftest import Media
from tests.upload_support import (
    MIB,
    asset_row,
    events_for,
    fast_transcode_settings,
    object_keys,
    raw_create,
    running_platform,
    running_worker,
    sha256_of,
    upload_file,
    video_row,
)


async def _no_multipart_left(objects: ObjectStore, key: str, upload_id: str | None) -> bool:
    if upload_id is None:
        return True
    try:
        await objects.list_parts(key, upload_id)
    except Exception:  # NotFound on both adapters once aborted or completed
        return True
    return False


async def test_bad_files_are_rejected_with_a_reason_and_leave_no_objects(
    platform_settings: Settings, media: Media, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reelplane.upload.engine")
    limits = UploadSettings(
        upload_max_duration_s=1.5,  # media.small is 2 s long: over the limit
        upload_max_size_bytes=8 * MIB,
        upload_work_dir=platform_settings.data_dir / "scratch",
    )
    expected = {
        "truncated": "truncated",
        "image": "unsupported file format",
        "audio-only": "only audio",
        "zero-byte": "empty",
        "over-limit": "the limit is 1.5 s",
    }
    files = {**media.bad(), "over-limit": media.small}
    async with running_platform(platform_settings, limits) as platform:
        for name, path in files.items():
            video_id, response = await upload_file(platform, path)
            assert response.status_code == 422, (name, response.text)
            problem = response.json()
            assert response.headers["content-type"] == "application/problem+json"
            assert expected[name] in problem["detail"], (name, problem)
            if name != "zero-byte":  # refused at creation: no upload URL to follow
                row = await video_row(platform.backends, video_id)
                assert row.state == "failed"
                assert expected[name] in row.failure_reason
                assert await object_keys(platform.backends, f"uploads/{video_id}/") == []
            assert await asset_row(platform.backends, sha256_of(path)) is None
            # The log says which upload was rejected and why.
            [logged] = [
                r
                for r in caplog.records
                if r.getMessage() == "upload rejected"
                and (r.__dict__["video_id"] == video_id or name == "zero-byte")
                and expected[name] in r.__dict__["reason"]
            ]
            assert logged.__dict__["owner_id"] == platform.user_id
        # Over Tus-Max-Size: refused before a byte is sent.
        async with httpx.AsyncClient() as client:
            too_big = await raw_create(client, platform, 9 * MIB)
        assert too_big.status_code == 413
        # Every failed video was announced as video.failed, with its reason.
        async with platform.backends.database.connect() as conn:
            from sqlalchemy import select

            from reelplane.schema import uploads, videos

            failed = (
                (await conn.execute(select(videos.c.id).where(videos.c.state == "failed")))
                .scalars()
                .all()
            )
            leftovers = (await conn.execute(select(uploads))).all()
        assert len(failed) == len(files)
        for row in leftovers:
            assert await _no_multipart_left(
                platform.backends.objects, row.object_key, row.multipart_id
            )
        events = await events_for(platform.backends, "videos", set(failed))
        assert sorted(e.payload.video_id for e in events if e.type == "video.failed") == sorted(
            failed
        )


async def test_the_same_content_uploaded_twice_is_transcoded_once(
    platform_settings: Settings, media: Media, tmp_path: Path
) -> None:
    async with (
        running_platform(platform_settings) as platform,
        running_worker(platform.backends, fast_transcode_settings(tmp_path)),
    ):
        sha = sha256_of(media.small)

        async def runs() -> set[str]:
            """Transcode runs stored for this content (a shared S3 bucket may
            hold runs of earlier test sessions)."""
            return {k.split("/")[2] for k in await object_keys(platform.backends, f"assets/{sha}/")}

        runs_before = await runs()
        first, response = await upload_file(platform, media.small, caption="one")
        assert response.status_code == 204

        async def state(video_id: str) -> str:
            return str((await video_row(platform.backends, video_id)).state)

        await eventually(lambda: state(first), until=lambda s: s == "ready", timeout_s=120)
        # A second user uploads the very same bytes: ready at once, no transcode.
        other_id, other_token = await platform.new_user()
        platform.token = other_token
        second, response = await upload_file(platform, media.small, caption="two")
        assert response.status_code == 204
        assert await state(second) == "ready"

        asset = await asset_row(platform.backends, sha)
        assert asset.attempts == 1  # claimed (transcoded) exactly once
        rows = [await video_row(platform.backends, v) for v in (first, second)]
        assert [r.asset_sha256 for r in rows] == [sha, sha]
        assert [r.caption for r in rows] == ["one", "two"]
        assert rows[1].owner_id == other_id
        new_runs = await runs() - runs_before
        assert new_runs == {asset.master_playlist_key.split("/")[2]}
        # One stored source for the two uploads.
        assert await object_keys(platform.backends, f"uploads/{second}/") == []
        events = await events_for(platform.backends, "videos", {first, second})
        ready = sorted(e.payload.video_id for e in events if e.type == "video.ready")
        assert ready == sorted([first, second])


async def test_a_duplicate_uploaded_while_transcoding_becomes_ready_with_it(
    platform_settings: Settings, media: Media, tmp_path: Path
) -> None:
    async with running_platform(platform_settings) as platform:
        first, _ = await upload_file(platform, media.sd_480p)
        second, _ = await upload_file(platform, media.sd_480p)  # before any worker ran
        assert (await video_row(platform.backends, second)).state == "uploaded"
        async with running_worker(platform.backends, fast_transcode_settings(tmp_path)):

            async def states() -> list[str]:
                return [str((await video_row(platform.backends, v)).state) for v in (first, second)]

            await eventually(states, until=lambda s: s == ["ready", "ready"], timeout_s=120)
        asset = await asset_row(platform.backends, sha256_of(media.sd_480p))
        assert asset.attempts == 1
        events = await events_for(platform.backends, "videos", {first, second})
        assert sorted(e.payload.video_id for e in events if e.type == "video.ready") == sorted(
            [first, second]
        )


async def test_playback_api_gives_urls_and_the_origin_serves_byte_ranges(
    platform_settings: Settings, media: Media, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "pops:\n"
        "  - {name: pop-eu-1, region: eu-west, url: 'https://eu1.pop.example', "
        "latitude: 53.3, longitude: -6.3}\n"
        "  - {name: pop-us-1, region: us-east, url: 'https://us1.pop.example', "
        "latitude: 39.0, longitude: -77.5}\n"
    )
    settings = UploadSettings(
        edge_routing_table=routing, upload_work_dir=platform_settings.data_dir / "scratch"
    )
    async with (
        running_platform(platform_settings, settings) as platform,
        running_worker(platform.backends, fast_transcode_settings(tmp_path)),
    ):
        video_id, _ = await upload_file(platform, media.small, caption="hello #World #dance")
        async with httpx.AsyncClient(base_url=platform.base_url, headers=platform.auth) as client:

            async def status() -> dict[str, object]:
                response = await client.get(f"/v1/videos/{video_id}")
                assert response.status_code == 200
                body: dict[str, object] = response.json()
                return body

            seen_progress: list[int] = []

            def ready(body: dict[str, object]) -> bool:
                pct = body["progress_pct"]
                assert isinstance(pct, int)
                seen_progress.append(pct)
                return body["state"] == "ready"

            body = await eventually(status, until=ready, timeout_s=120, interval_s=0.05)
            assert body["hashtags"] == ["world", "dance"]
            assert body["progress_pct"] == 100
            playback = body["playback"]
            assert isinstance(playback, dict)
            assert playback["served_by"] == "origin"
            master_url = playback["master_playlist_url"]
            assert isinstance(master_url, str)
            assert master_url.startswith("/v1/objects/assets/")
            assert playback["poster_url"].endswith("poster.jpg")
            assert playback["still_urls"]
            renditions = body["renditions"]
            assert isinstance(renditions, list)
            assert {r["name"] for r in renditions} == {"h264_360p", "hevc_360p"}

            # The master playlist over HTTP, whole and in ranges.
            whole = await client.get(master_url)
            assert whole.status_code == 200
            assert whole.headers["content-type"] == "application/vnd.apple.mpegurl"
            assert whole.headers["accept-ranges"] == "bytes"
            assert whole.text.startswith("#EXTM3U")
            size = len(whole.content)
            part = await client.get(master_url, headers={"Range": "bytes=1-6"})
            assert part.status_code == 206
            assert part.content == whole.content[1:7]
            assert part.headers["content-range"] == f"bytes 1-6/{size}"
            tail = await client.get(master_url, headers={"Range": "bytes=-5"})
            assert tail.content == whole.content[-5:]
            outside = await client.get(master_url, headers={"Range": f"bytes={size}-"})
            assert outside.status_code == 416
            assert outside.headers["content-range"] == f"bytes */{size}"
            cached = await client.get(master_url, headers={"If-None-Match": whole.headers["etag"]})
            assert cached.status_code == 304
            poster = await client.get(playback["poster_url"])
            assert poster.content[:3] == b"\xff\xd8\xff"  # JPEG
            # Raw uploads are never served.
            raw = await client.get(f"/v1/objects/uploads/{video_id}/source")
            assert raw.status_code == 404

            # A client in a region with a PoP gets URLs through it; else the nearest.
            eu = (
                await client.get(f"/v1/videos/{video_id}", headers={"X-Client-Region": "eu-west"})
            ).json()
            assert eu["playback"]["served_by"] == "pop-eu-1"
            assert eu["playback"]["master_playlist_url"] == ("https://eu1.pop.example" + master_url)
            near = (
                await client.get(f"/v1/videos/{video_id}", headers={"X-Client-Geo": "40.7,-74.0"})
            ).json()
            assert near["playback"]["served_by"] == "pop-us-1"

            # The progress was visible while transcoding (when we looked in time).
            assert all(0 <= p <= 100 for p in seen_progress)

        # ffprobe plays the ladder through the origin (HLS over HTTP with ranges).
        from tests.upload_support import probe_json

        probed = await asyncio.to_thread(probe_json, platform.base_url + master_url)
        assert {s["codec_type"] for s in probed["streams"]} >= {"video", "audio"}


async def test_a_lost_announcement_is_published_by_the_janitor(
    platform_settings: Settings, media: Media, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reelplane.upload.engine import accept as engine_module

    async def lose(*_: object, **__: object) -> bool:
        return False  # the process "died" right after committing, before publishing

    settings = UploadSettings(
        upload_announce_after_s=0.01, upload_work_dir=platform_settings.data_dir / "scratch"
    )
    async with running_platform(platform_settings, settings) as platform:
        monkeypatch.setattr(engine_module, "announce_uploaded", lose)
        video_id, response = await upload_file(platform, media.small)
        assert response.status_code == 204
        monkeypatch.undo()
        assert await events_for(platform.backends, "uploads", {video_id}, settle_s=0.5) == []
        await asyncio.sleep(0.05)
        counts = await platform.app.state.upload_engine.sweep()
        assert counts["announced"] == 1
        events = await events_for(platform.backends, "uploads", {video_id})
        assert [e.type for e in events] == ["video.uploaded"]
        assert (await platform.app.state.upload_engine.sweep())["announced"] == 0
