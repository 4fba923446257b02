"""Ladder planning: properties that hold for every source, and the ladders of
the usual shapes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelplane.upload.probe import AudioStreamInfo, ProbeResult, VideoStreamInfo
from reelplane_transcode.ladder import DEFAULT_RUNGS, parse_rungs, plan_ladder

pytestmark = pytest.mark.unit


def probe(width: int, height: int, *, rotation: int = 0, fps: float = 30.0) -> ProbeResult:
    return ProbeResult(
        readable=True,
        format_names=("mov", "mp4"),
        duration_s=12.5,
        video=VideoStreamInfo(
            codec="h264", width=width, height=height, rotation_deg=rotation, fps=fps
        ),
        audio=AudioStreamInfo(codec="aac"),
    )


sides = st.integers(min_value=64, max_value=4096)


@given(width=sides, height=sides, rotation=st.sampled_from([0, 90, 180, 270]))
def test_ladder_never_upscales_keeps_even_sizes_and_the_aspect_ratio(
    width: int, height: int, rotation: int
) -> None:
    ladder = plan_ladder(probe(width, height, rotation=rotation))
    shown_w, shown_h = (height, width) if rotation % 180 == 90 else (width, height)
    assert ladder.renditions
    for r in ladder.renditions:
        assert r.width <= shown_w and r.height <= shown_h  # never upscaled
        assert r.width % 2 == 0 and r.height % 2 == 0  # 4:2:0 needs even sizes
        # Aspect kept to within the rounding to even pixels.
        ratio = shown_w / shown_h
        assert abs(r.width / r.height - ratio) <= 2 * (1 + ratio) / r.height
        assert (r.width >= r.height) == (shown_w >= shown_h) or abs(shown_w - shown_h) < 4
        assert min(r.width, r.height) <= 1080
        assert r.maxrate_kbps > r.bitrate_kbps > 0


@given(width=sides, height=sides)
def test_every_rung_comes_in_both_codecs_and_sizes_grow_with_bitrate(
    width: int, height: int
) -> None:
    ladder = plan_ladder(probe(width, height))
    h264 = [(r.width, r.height) for r in ladder.renditions if r.codec == "h264"]
    hevc = [(r.width, r.height) for r in ladder.renditions if r.codec == "hevc"]
    assert h264 == hevc
    assert len(set(h264)) == len(h264)
    for codec in ("h264", "hevc"):
        rates = [r.bitrate_kbps for r in ladder.renditions if r.codec == codec]
        assert rates == sorted(rates)


@pytest.mark.parametrize(
    ("width", "height", "rotation", "expected"),
    [
        (1920, 1080, 0, [(640, 360), (1280, 720), (1920, 1080)]),
        (1080, 1920, 0, [(360, 640), (720, 1280), (1080, 1920)]),  # 9:16 portrait
        (1920, 1080, 90, [(360, 640), (720, 1280), (1080, 1920)]),  # phone, rotated
        (854, 480, 0, [(640, 360), (854, 480)]),  # 480p: no upscale, native top rung
        (3840, 2160, 0, [(640, 360), (1280, 720), (1920, 1080)]),  # 4K capped at 1080p
        (320, 240, 0, [(320, 240)]),  # below the lowest rung: the source size only
        (640, 362, 0, [(636, 360)]),  # 362p is too close to 360p for its own rung
    ],
)
def test_ladders_of_common_sources(
    width: int, height: int, rotation: int, expected: list[tuple[int, int]]
) -> None:
    ladder = plan_ladder(probe(width, height, rotation=rotation))
    assert [(r.width, r.height) for r in ladder.renditions if r.codec == "h264"] == expected
    assert [r.name for r in ladder.renditions][: len(expected)] == [
        f"h264_{min(w, h)}p" for w, h in expected
    ]


def test_gop_follows_the_segment_length_and_fps_is_capped() -> None:
    ladder = plan_ladder(probe(1280, 720, fps=120.0), segment_s=2.0, max_fps=60.0)
    assert ladder.fps == 60.0
    assert ladder.cap_fps
    assert ladder.gop_frames == 120
    assert plan_ladder(probe(1280, 720, fps=25.0)).gop_frames == 50


def test_ladder_without_audio_has_no_audio_rendition() -> None:
    silent = probe(1280, 720).model_copy(update={"audio": None})
    assert plan_ladder(silent).audio is None


def test_rungs_parse_from_the_pool_setting() -> None:
    assert parse_rungs("360:800:500,720:2800:1700,1080:5000:3000") == DEFAULT_RUNGS
    assert [r.short_side for r in parse_rungs("720:1:1, 360:2:2")] == [360, 720]
    for bad in ("", "360", "361:1:1", "360:0:1", "a:b:c"):
        with pytest.raises(ValueError, match=r"."):
            parse_rungs(bad)
