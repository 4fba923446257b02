"""Deleting videos removes their stored media once no other video shares it
(dedup makes assets shared). Embedded and real backends."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from reelplane.events.envelope import VideoDeleted
from reelplane.http.app import create_app
from reelplane.settings import Settings
from reelplane.upload.assets import deletions_handler
from tests.helpers import eventually
from tests.upload_support import (
    Platform,
    asset_row,
    events_for,
    fast_transcode_settings,
    ffmpeg,
    object_keys,
    raw_create,
    raw_patch,
    running_platform,
    running_worker,
    sha256_of,
    upload_file,
    video_row,
)


def _unique_clip(path: Path) -> Path:
    """A one-second clip whose bytes (so SHA-256) no other test or run shares."""
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=1",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-metadata", f"comment={uuid.uuid4().hex}", str(path),
    )  # fmt: skip
    return path


async def _delete_through_the_gateway(platform: Platform, video_id: str, token: str) -> None:
    """DELETE /v1/videos/{id} through the gateway (upload's route publishes
    video.deleted), then the upload service's handler for that event."""
    gateway = create_app(
        platform.backends.settings,
        ["gateway", "upload"],
        backends=platform.backends,
        run_background=False,
    )
    gateway.state.backends = platform.backends  # what its lifespan would set
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
    ) as client:
        response = await client.delete(
            f"/v1/videos/{video_id}", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 204, response.text
    events = await events_for(platform.backends, "videos", {video_id})
    deleted = [e for e in events if isinstance(e, VideoDeleted)]
    assert len(deleted) == 1
    handle = deletions_handler(platform.backends)
    await handle(deleted[0])
    await handle(deleted[0])  # at-least-once delivery: a repeat changes nothing


async def test_deleting_the_last_video_on_an_asset_removes_its_objects_and_only_then(
    platform_settings: Settings, tmp_path: Path
) -> None:
    clip = _unique_clip(tmp_path / "clip.mp4")
    sha = sha256_of(clip)
    async with (
        running_platform(platform_settings) as platform,
        running_worker(platform.backends, fast_transcode_settings(tmp_path)),
    ):
        first_token = platform.token
        first, _ = await upload_file(platform, clip)

        async def state(video_id: str) -> str:
            return str((await video_row(platform.backends, video_id)).state)

        await eventually(lambda: state(first), until=lambda s: s == "ready", timeout_s=120)
        _, second_token = await platform.new_user()
        platform.token = second_token
        second, _ = await upload_file(platform, clip)  # the same bytes: the same asset
        assert await state(second) == "ready"

        asset = await asset_row(platform.backends, sha)
        run = asset.master_playlist_key.rsplit("/", 1)[0] + "/"
        stored = await object_keys(platform.backends, run)
        assert asset.master_playlist_key in stored and asset.poster_key in stored
        assert asset.source_key == f"uploads/{first}/source"
        assert await object_keys(platform.backends, asset.source_key) == [asset.source_key]

        # The first owner deletes: the second video still uses the asset, so
        # nothing is removed.
        await _delete_through_the_gateway(platform, first, first_token)
        assert await state(first) == "deleted"
        assert (await asset_row(platform.backends, sha)).state == "ready"
        assert await object_keys(platform.backends, run) == stored
        assert await object_keys(platform.backends, asset.source_key) == [asset.source_key]

        # The last one goes: source and every transcoded object with it.
        await _delete_through_the_gateway(platform, second, second_token)
        tombstone = await asset_row(platform.backends, sha)
        assert tombstone.state == "deleted"
        assert tombstone.master_playlist_key is None
        assert await object_keys(platform.backends, run) == []
        assert await object_keys(platform.backends, asset.source_key) == []

        # The same bytes uploaded again bring the asset back: a new transcode
        # from the new upload's source, in a run folder of its own.
        third, _ = await upload_file(platform, clip)
        await eventually(lambda: state(third), until=lambda s: s == "ready", timeout_s=120)
        revived = await asset_row(platform.backends, sha)
        assert revived.state == "ready"
        assert revived.source_key == f"uploads/{third}/source"
        assert not revived.master_playlist_key.startswith(run)
        assert revived.master_playlist_key in await object_keys(platform.backends, f"assets/{sha}/")


async def test_deleting_a_video_while_it_uploads_drops_the_upload(
    platform_settings: Settings, tmp_path: Path
) -> None:
    clip = _unique_clip(tmp_path / "clip.mp4")
    data = clip.read_bytes()
    async with running_platform(platform_settings) as platform:
        async with httpx.AsyncClient(timeout=60) as client:
            created = await raw_create(client, platform, len(data))
            url = created.headers["location"]
            first = await raw_patch(client, platform, url, 0, data[:1000])
            assert first.status_code == 204
            video_id = url.rsplit("/", 1)[-1]
            assert await object_keys(platform.backends, f"uploads/{video_id}/")  # pending tail
            await _delete_through_the_gateway(platform, video_id, platform.token)
            assert await object_keys(platform.backends, f"uploads/{video_id}/") == []
            resumed = await raw_patch(client, platform, url, 1000, data[1000:])
            assert resumed.status_code == 410
        assert (await video_row(platform.backends, video_id)).state == "deleted"
