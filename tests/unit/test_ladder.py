"""Ladder planning: properties that hold for every source, and the ladders of
the usual shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelplane.errors import ConfigError
from reelplane.media.probe import AudioStreamInfo, ProbeResult, VideoStreamInfo
from reelplane_transcode.ladder import (
    DEFAULT_RUNGS,
    CodecRung,
    expand_rungs,
    parse_ladder_document,
    parse_rungs,
    plan_ladder,
)
from reelplane_transcode.settings import TranscodeSettings, load_ladder

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


# -- a TranscodePool's ladder (ladder.json, each rung in its own codec) ----------------
def pool_document(renditions: list[dict[str, object]], segment_s: object = 4) -> str:
    return json.dumps({"segmentSeconds": segment_s, "renditions": renditions})


def rendition(height: int, codec: str, kbps: int) -> dict[str, object]:
    return {
        "name": f"{height}p-{codec}",
        "height": height,
        "codec": codec,
        "videoBitrateKbps": kbps,
    }


#: The TranscodePool's default ladder: 360p in H.264 only, 720p and 1080p in both.
POOL = pool_document(
    [
        rendition(1080, "h264", 5000),
        rendition(1080, "hevc", 3200),
        rendition(720, "h264", 2800),
        rendition(720, "hevc", 1800),
        rendition(360, "h264", 800),
    ]
)
pool_codec = st.sampled_from(["h264", "hevc"])
pool_rungs = st.lists(
    st.tuples(st.integers(min_value=72, max_value=2160).map(lambda v: v * 2), pool_codec),
    min_size=1,
    max_size=8,
    unique=True,
)


def test_a_pool_ladder_file_parses_into_rungs_each_in_its_own_codec() -> None:
    spec = parse_ladder_document(POOL)
    assert spec.segment_s == 4
    assert spec.codecs == ("h264", "hevc")
    assert spec.rungs == (
        CodecRung("h264", 360, 800),
        CodecRung("h264", 720, 2800),
        CodecRung("h264", 1080, 5000),
        CodecRung("hevc", 720, 1800),
        CodecRung("hevc", 1080, 3200),
    )


def test_a_pool_ladder_keeps_every_rendition_for_a_source_that_fits_them_all() -> None:
    spec = parse_ladder_document(POOL)
    ladder = plan_ladder(probe(1080, 1920), codec_rungs=spec.rungs, segment_s=spec.segment_s)
    assert [(r.name, r.width, r.height, r.bitrate_kbps) for r in ladder.renditions] == [
        ("h264_360p", 360, 640, 800),
        ("h264_720p", 720, 1280, 2800),
        ("h264_1080p", 1080, 1920, 5000),
        ("hevc_720p", 720, 1280, 1800),
        ("hevc_1080p", 1080, 1920, 3200),
    ]
    assert ladder.gop_frames == 120  # 4 s segments at 30 fps


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        # between rungs: the native size in each codec that has a rung below it
        (854, 480, ["h264_360p", "h264_480p"]),
        (1600, 900, ["h264_360p", "h264_720p", "h264_900p", "hevc_720p", "hevc_900p"]),
        # below the whole ladder: the source's size in the lowest rung's codec only
        (320, 240, ["h264_240p"]),
    ],
)
def test_a_pool_ladder_fits_small_sources_codec_by_codec(
    width: int, height: int, expected: list[str]
) -> None:
    spec = parse_ladder_document(POOL)
    ladder = plan_ladder(probe(width, height), codec_rungs=spec.rungs)
    assert [r.name for r in ladder.renditions] == expected


@given(width=sides, height=sides, rungs=pool_rungs)
def test_a_pool_ladder_never_upscales_and_makes_only_its_own_rungs_or_the_source_size(
    width: int, height: int, rungs: list[tuple[int, str]]
) -> None:
    spec = parse_ladder_document(
        pool_document([rendition(side, codec, side * 4) for side, codec in rungs])
    )
    ladder = plan_ladder(probe(width, height), codec_rungs=spec.rungs)
    src_short = min(width, height) // 2 * 2
    pool = {(codec, side) for side, codec in rungs}
    made = {(r.codec, min(r.width, r.height)) for r in ladder.renditions}
    assert made  # every upload gets something to play
    assert len(made) == len(ladder.renditions)
    for r in ladder.renditions:
        assert r.width <= width and r.height <= height
        assert r.width % 2 == 0 and r.height % 2 == 0
    # the pool's rungs that fit, and otherwise only the source's own size
    assert {(c, side) for c, side in pool if side <= src_short} <= made
    assert {side for c, side in made - pool} <= {src_short}


def test_a_uniform_pool_ladder_plans_as_the_rungs_and_codecs_settings_do() -> None:
    spec = parse_ladder_document(
        pool_document(
            [
                rendition(r.short_side, c, r.kbps(c))
                for r in DEFAULT_RUNGS
                for c in ("h264", "hevc")
            ],
            segment_s=2,
        )
    )
    for width, height in [(1920, 1080), (854, 480), (320, 240), (3840, 2160)]:
        assert plan_ladder(probe(width, height), codec_rungs=spec.rungs) == plan_ladder(
            probe(width, height)
        )


def test_an_odd_pool_height_is_rounded_down_to_even() -> None:
    spec = parse_ladder_document(pool_document([rendition(721, "h264", 2800)]))
    assert spec.rungs == (CodecRung("h264", 720, 2800),)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ("[]", "document"),
        (pool_document([]), "renditions"),
        (pool_document([rendition(720, "av1", 100)]), "renditions.0.codec"),
        (pool_document([rendition(720, "h264", 0)]), "renditions.0.videoBitrateKbps"),
        (pool_document([rendition(720, "h264", 100)], segment_s=30), "segmentSeconds"),
        (pool_document([rendition(720, "h264", 1), rendition(720, "h264", 2)]), "two renditions"),
        (json.dumps({"renditions": [rendition(720, "h264", 1)]}), "segmentSeconds"),
    ],
)
def test_a_bad_pool_ladder_file_is_one_line_naming_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        parse_ladder_document(text)
    assert "\n" not in str(caught.value)


def test_the_worker_reads_the_ladder_file_when_set_else_the_rung_settings(tmp_path: Path) -> None:
    defaults = TranscodeSettings(_env_file=None)  # type: ignore[call-arg]
    assert load_ladder(defaults).rungs == expand_rungs(DEFAULT_RUNGS, ("h264", "hevc"))
    assert load_ladder(defaults).segment_s == defaults.transcode_segment_s
    (tmp_path / "ladder.json").write_text(POOL)
    pool = defaults.model_copy(update={"transcode_ladder_file": tmp_path / "ladder.json"})
    assert load_ladder(pool) == parse_ladder_document(POOL)


@pytest.mark.parametrize("content", [None, "{not json", pool_document([])])
def test_a_missing_or_bad_ladder_file_is_a_config_error_naming_the_setting(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "ladder.json"
    if content is not None:
        path.write_text(content)
    settings = TranscodeSettings(_env_file=None, transcode_ladder_file=path)  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as caught:
        load_ladder(settings)
    assert caught.value.setting == "REELPLANE_TRANSCODE_LADDER_FILE"
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
