"""No video is ever stuck: a video waiting for a transcode that nobody is doing
is announced to the workers again after a bounded time (the janitor), whatever
became of its first event. Embedded and real backends."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from reelplane.events.envelope import utc_now
from reelplane.schema import uploads, video_assets
from reelplane.settings import Settings
from reelplane.upload.settings import UploadSettings
from reelplane.videos.announce import stable_event_id
from tests.helpers import eventually
from tests.ingest.conftest import Media
from tests.upload_support import (
    events_for,
    fast_transcode_settings,
    running_platform,
    running_worker,
    sha256_of,
    upload_file,
    video_row,
)

#: The bound: long enough that a sweep and its publish (a first send to real
#: Kafka can take over a second) end well within it, so "once per bound" holds.
REANNOUNCE_AFTER_S = 5.0


def stuck_settings(platform_settings: Settings) -> UploadSettings:
    return UploadSettings(
        upload_reannounce_after_s=REANNOUNCE_AFTER_S,
        upload_work_dir=platform_settings.data_dir / "scratch",
    )


async def test_a_video_whose_event_was_lost_is_announced_again_and_becomes_ready(
    platform_settings: Settings, media: Media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reelplane.upload.engine import accept as engine_module

    async def published_then_lost(database: Any, publisher: Any, video_id: str) -> bool:
        # The upload is marked announced, as after a publish into an in-process
        # bus that then restarted: the event is gone, the row says it was sent.
        async with database.transaction() as conn:
            await conn.execute(
                update(uploads).where(uploads.c.id == video_id).values(announced_at=utc_now())
            )
        return True

    async with running_platform(platform_settings, stuck_settings(platform_settings)) as platform:
        monkeypatch.setattr(engine_module, "announce_uploaded", published_then_lost)
        video_id, response = await upload_file(platform, media.small)
        assert response.status_code == 204
        monkeypatch.undo()

        async def row() -> Any:
            return await video_row(platform.backends, video_id)

        assert (await row()).state == "uploaded"
        engine = platform.app.state.upload_engine
        # Within the bound it is left alone (its worker may just be busy).
        assert (await engine.sweep())["reannounced"] == 0
        await asyncio.sleep(REANNOUNCE_AFTER_S + 0.1)
        assert (await engine.sweep())["reannounced"] == 1
        assert (await engine.sweep())["reannounced"] == 0  # once per bound, not every pass
        events = await events_for(platform.backends, "uploads", {video_id}, settle_s=0.5)
        assert [e.type for e in events] == ["video.uploaded"]
        # Its own id: a worker that applied an earlier announcement must not skip it.
        assert events[0].id != stable_event_id("video.uploaded", video_id)
        assert events[0].payload.sha256 == sha256_of(media.small)  # type: ignore[union-attr]

        async with running_worker(platform.backends, fast_transcode_settings(tmp_path)):
            done = await eventually(
                row, until=lambda r: r.state in ("ready", "failed"), timeout_s=300
            )
        assert done.state == "ready", done.failure_reason


async def test_a_video_under_a_live_lease_is_not_announced_again_until_the_lease_runs_out(
    platform_settings: Settings, media: Media
) -> None:
    async with running_platform(platform_settings, stuck_settings(platform_settings)) as platform:
        video_id, response = await upload_file(platform, media.small)
        assert response.status_code == 204
        sha256 = sha256_of(media.small)
        engine = platform.app.state.upload_engine
        # A worker claimed the job and renews its lease (but writes no progress:
        # a long source still being downloaded).
        async with platform.backends.database.transaction() as conn:
            await conn.execute(
                update(video_assets)
                .where(video_assets.c.sha256 == sha256)
                .values(
                    state="transcoding",
                    lease_owner="worker-a",
                    lease_expires_at=utc_now() + timedelta(seconds=60),
                )
            )
        await asyncio.sleep(REANNOUNCE_AFTER_S + 0.1)
        assert (await engine.sweep())["reannounced"] == 0
        # The worker died: its lease ran out.
        async with platform.backends.database.transaction() as conn:
            await conn.execute(
                update(video_assets)
                .where(video_assets.c.sha256 == sha256)
                .values(lease_expires_at=utc_now() - timedelta(seconds=1))
            )
        assert (await engine.sweep())["reannounced"] == 1
        events = await events_for(platform.backends, "uploads", {video_id}, settle_s=0.5)
        assert [e.type for e in events] == ["video.uploaded", "video.uploaded"]
        assert len({e.id for e in events}) == 2
