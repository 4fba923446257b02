"""The transcode worker end to end: ladders checked with ffprobe through the
origin, and a worker killed mid-transcode. Embedded and real backends."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from reelplane.settings import Settings
from reelplane_transcode.accel import choose_accel, probe_capabilities
from reelplane_transcode.worker import TranscodeWorker
from tests.conftest import embedded_settings
from tests.helpers import eventually
from tests.ingest.conftest import Media
from tests.upload_support import (
    asset_row,
    events_for,
    fast_transcode_settings,
    object_keys,
    probe_json,
    running_platform,
    running_worker,
    sha256_of,
    upload_file,
    video_row,
)

LADDERS = {
    # source: expected (width, height) per rung, for each of h264 and hevc
    "landscape_1080p": [(640, 360), (1280, 720), (1920, 1080)],
    "portrait_1080x1920": [(360, 640), (720, 1280), (1080, 1920)],
    "sd_480p": [(640, 360), (854, 480)],
}


#: H.264 profile names (as ffprobe prints them) -> profile_idc of the CODECS string.
AVC_PROFILES = {"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}


def _duration(probe: dict[str, Any]) -> float:
    return float(probe["format"]["duration"])


def _video(probe: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in probe["streams"] if s["codec_type"] == "video")


@pytest.mark.parametrize("source_name", list(LADDERS))
async def test_ladder_renditions_match_the_source_and_the_master_playlist(
    platform_settings: Settings, media: Media, tmp_path: Path, source_name: str
) -> None:
    source: Path = getattr(media, source_name)
    source_probe = probe_json(str(source))
    src_w, src_h = _video(source_probe)["width"], _video(source_probe)["height"]
    async with (
        running_platform(platform_settings) as platform,
        running_worker(platform.backends, fast_transcode_settings(tmp_path)),
    ):
        video_id, response = await upload_file(platform, source)
        assert response.status_code == 204, response.text

        async def row() -> Any:
            return await video_row(platform.backends, video_id)

        ready = await eventually(row, until=lambda r: r.state in ("ready", "failed"), timeout_s=240)
        assert ready.state == "ready", ready.failure_reason
        assert (ready.width, ready.height) == (src_w, src_h)
        asset = await asset_row(platform.backends, sha256_of(source))
        origin = f"{platform.base_url}/v1/objects/"
        async with httpx.AsyncClient() as client:
            master_text = (await client.get(origin + asset.master_playlist_key)).text
            master = m3u8.loads(master_text, uri=origin + asset.master_playlist_key)
            assert master.is_variant
            sizes: dict[str, list[tuple[int, int]]] = {"h264": [], "hevc": []}
            grids: list[list[float]] = []
            audio_media = [m for m in master.media if m.type == "AUDIO"]
            assert len(audio_media) == 1
            audio_playlist = await asyncio.to_thread(m3u8.load, audio_media[0].absolute_uri)
            audio_bytes = [
                int((await client.head(seg.absolute_uri)).headers["content-length"])
                for seg in audio_playlist.segments
            ]
            audio_peak = max(
                n * 8 / s.duration
                for n, s in zip(audio_bytes, audio_playlist.segments, strict=True)
            )
            for variant in master.playlists:
                info = variant.stream_info
                url = variant.absolute_uri
                probed = await asyncio.to_thread(probe_json, url)
                stream = _video(probed)
                codec = stream["codec_name"]
                width, height = info.resolution
                # RESOLUTION is what ffprobe reads; durations match the source.
                assert (stream["width"], stream["height"]) == (width, height)
                assert abs(_duration(probed) - _duration(source_probe)) <= 0.1
                # Never upscaled; even sizes; aspect ratio kept.
                assert width <= src_w and height <= src_h
                assert width % 2 == 0 and height % 2 == 0
                assert abs(width / height - src_w / src_h) <= 2 * (1 + src_w / src_h) / height
                # CODECS names the codec, profile and level ffprobe finds.
                video_codec, audio_codec = info.codecs.split(",")
                assert audio_codec == "mp4a.40.2"
                if codec == "h264":
                    profile_idc = AVC_PROFILES[stream["profile"]]
                    assert video_codec.startswith(f"avc1.{profile_idc:02x}")
                    assert int(video_codec[-2:], 16) == stream["level"]
                else:
                    assert codec == "hevc"
                    assert video_codec.startswith("hvc1.1.")  # Main profile
                    assert video_codec.split(".")[3] == f"L{stream['level']}"
                sizes[codec].append((width, height))
                # BANDWIDTH is the peak segment bit rate (plus audio's), measured.
                media_playlist = await asyncio.to_thread(m3u8.load, url)
                seg_bytes = [
                    int((await client.head(seg.absolute_uri)).headers["content-length"])
                    for seg in media_playlist.segments
                ]
                peak = max(
                    n * 8 / s.duration
                    for n, s in zip(seg_bytes, media_playlist.segments, strict=True)
                )
                assert abs(info.bandwidth - (peak + audio_peak)) <= 2
                assert info.average_bandwidth <= info.bandwidth
                grids.append([round(s.duration, 3) for s in media_playlist.segments])
            # Keyframes on one grid: every rendition has the same segment durations,
            # so a player can switch at any boundary.
            assert all(grid == grids[0] for grid in grids)
            assert sorted(sizes["h264"]) == sorted(LADDERS[source_name])
            assert sorted(sizes["hevc"]) == sorted(LADDERS[source_name])
            # Poster and stills are there.
            assert (await client.get(origin + asset.poster_key)).content[:3] == b"\xff\xd8\xff"
            assert len(asset.still_keys) >= 1


async def test_a_worker_killed_mid_transcode_leaves_the_job_to_another_ready_once(
    platform_settings: Settings, backend_kind: str, media: Media, tmp_path: Path
) -> None:
    source = media.long_1080p
    settings = fast_transcode_settings(tmp_path)
    async with running_platform(platform_settings) as platform:
        video_id, response = await upload_file(platform, source)
        assert response.status_code == 204

        async def row() -> Any:
            return await video_row(platform.backends, video_id)

        if backend_kind == "embedded":
            # Worker A runs in this process; killing it = cancelling its task mid-job
            # (its ffmpeg is killed with it), as a SIGTERM'd pod would.
            first = TranscodeWorker(platform.backends, settings)
            task = asyncio.create_task(first.runner.run(asyncio.Event()))
            await eventually(row, until=lambda r: 0 < r.progress_pct < 90, timeout_s=120)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            # Worker A is a separate `reelplane worker transcode` process, killed
            # with SIGKILL: nothing of it runs after, its lease must run out.
            env = {
                **os.environ,
                "REELPLANE_DATABASE_URL": platform_settings.database_url,
                "REELPLANE_BUS_URL": platform_settings.bus_url,
                "REELPLANE_CACHE_URL": platform_settings.cache_url,
                "REELPLANE_WIDEROW_URL": platform_settings.widerow_url,
                "REELPLANE_OBJECTS_URL": platform_settings.objects_url,
                "REELPLANE_TRANSCODE_H264_PRESET": "ultrafast",
                "REELPLANE_TRANSCODE_HEVC_PRESET": "ultrafast",
                "REELPLANE_TRANSCODE_LEASE_S": "3",
                "REELPLANE_TRANSCODE_PROGRESS_INTERVAL_S": "0.2",
            }
            proc = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "reelplane"),
                "worker",
                "transcode",
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                await eventually(row, until=lambda r: 0 < r.progress_pct < 90, timeout_s=180)
            finally:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
        killed_at = (await row()).progress_pct
        assert (await row()).state == "transcoding"

        async with running_worker(platform.backends, settings):
            done = await eventually(
                row, until=lambda r: r.state in ("ready", "failed"), timeout_s=300
            )
        assert done.state == "ready", done.failure_reason
        assert done.progress_pct == 100 and killed_at < 100
        asset = await asset_row(platform.backends, sha256_of(source))
        assert asset.attempts == 2  # A's claim, then B's
        # Complete: every rendition in the master playlist is stored and readable.
        run_prefix = asset.master_playlist_key.rsplit("/", 1)[0]
        keys = set(await object_keys(platform.backends, run_prefix + "/"))
        for rendition in asset.renditions:
            assert rendition["playlist_key"] in keys
        assert len(asset.renditions) == 6
        # Ready was announced once.
        events = await events_for(platform.backends, "videos", {video_id})
        assert [e.type for e in events] == ["video.ready"]


@pytest.mark.embedded
async def test_a_cuda_worker_falls_back_to_what_the_probe_finds_and_still_transcodes(
    media: Media, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a machine without a working NVENC (no GPU here, or an H100) a worker
    configured for CUDA encodes with libx264/libx265 and says why; where NVENC
    works, it uses it. Either way the video becomes ready."""
    codecs = ("h264", "hevc")
    expected = choose_accel("cuda", codecs, await probe_capabilities("ffmpeg", codecs))
    settings = fast_transcode_settings(tmp_path, transcode_accel="cuda")
    async with running_platform(embedded_settings(tmp_path / "platform")) as platform:
        with caplog.at_level(logging.INFO, logger="reelplane_transcode.job"):
            async with running_worker(platform.backends, settings) as worker:
                video_id, _ = await upload_file(platform, media.small)

                async def state() -> str:
                    return str((await video_row(platform.backends, video_id)).state)

                await eventually(state, until=lambda s: s == "ready", timeout_s=120)
                assert await worker.job.accel() == expected
    decided = [r for r in caplog.records if r.getMessage().startswith("transcode accel")]
    assert len(decided) == 1  # probed once per worker
    assert expected.reason in decided[0].getMessage()
    assert decided[0].levelno == (logging.WARNING if expected.fallback else logging.INFO)


async def test_the_encoded_ladder_is_logged_with_its_video_rungs_and_times(
    platform_settings: Settings, media: Media, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reelplane_transcode.job")
    async with (
        running_platform(platform_settings) as platform,
        running_worker(platform.backends, fast_transcode_settings(tmp_path)),
    ):
        video_id, response = await upload_file(platform, media.sd_480p)
        assert response.status_code == 204, response.text

        async def row() -> Any:
            return await video_row(platform.backends, video_id)

        ready = await eventually(row, until=lambda r: r.state in ("ready", "failed"), timeout_s=240)
        assert ready.state == "ready", ready.failure_reason
    [line] = [r for r in caplog.records if r.getMessage() == "ladder encoded"]
    fields = line.__dict__
    assert fields["video_id"] == video_id
    assert fields["sha256"] == sha256_of(media.sd_480p)
    assert set(fields["rungs"].split(",")) == {
        f"{codec}_{min(w, h)}p" for codec in ("h264", "hevc") for w, h in LADDERS["sd_480p"]
    }
    assert abs(fields["duration_s"] - _duration(probe_json(str(media.sd_480p)))) <= 0.1
    assert fields["wall_s"] >= fields["encode_s"] > 0
    assert fields["source"] == "854x480"
