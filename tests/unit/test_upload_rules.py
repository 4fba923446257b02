"""The upload service's pure rules: tus headers, the parts a PATCH stores,
metadata, ffprobe verdicts, byte ranges and playback URLs."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelplane.errors import ConfigError, InvalidInput, RangeNotSatisfiable
from reelplane.media.probe import SourceLimits, parse_probe, rejection_reason
from reelplane.media.ranges import content_type_for, parse_range
from reelplane.ports.objects import ByteRange
from reelplane.upload.assets import AssetObjects, asset_objects
from reelplane.upload.engine import part_plan
from reelplane.upload.errors import (
    BadTusRequest,
    OffsetMismatch,
    TusVersionUnsupported,
    UnsupportedMediaType,
    UploadTooLarge,
)
from reelplane.upload.metadata import collect_hashtags, normalize_caption, video_metadata
from reelplane.upload.playback import (
    AssetKeys,
    RoutingTable,
    choose_pop,
    parse_routing_table,
    playback_urls,
    pop_base_url,
)
from reelplane.upload.tus import (
    Concat,
    capability_headers,
    check_fits,
    check_offset,
    check_patch_content_type,
    check_resumable,
    concat_header,
    encode_metadata,
    parse_checksum,
    parse_concat,
    parse_metadata,
    parse_upload_length,
)

pytestmark = pytest.mark.unit


# -- tus ---------------------------------------------------------------------------------
def test_tus_resumable_must_be_1_0_0() -> None:
    check_resumable("1.0.0")
    for bad in (None, "0.2.2", "2.0.0"):
        with pytest.raises(TusVersionUnsupported) as err:
            check_resumable(bad)
        assert err.value.status == 412
        assert err.value.headers["Tus-Version"] == "1.0.0"


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True), st.text(max_size=50), max_size=5
    )
)
def test_metadata_round_trips(metadata: dict[str, str]) -> None:
    assert parse_metadata(encode_metadata(metadata)) == metadata


def test_metadata_rules() -> None:
    assert parse_metadata("filename d29ybGQubXA0,is_confidential") == {
        "filename": "world.mp4",
        "is_confidential": "",
    }
    for bad in ("filename ***", "a b c", "dup YQ==,dup Yg==", "bad,key YQ== x"):
        with pytest.raises(BadTusRequest):
            parse_metadata(bad)
    with pytest.raises(BadTusRequest, match="UTF-8"):
        parse_metadata("name " + base64.b64encode(b"\xff\xfe").decode())


def test_upload_length_and_limits() -> None:
    assert parse_upload_length("100", None, max_size=100) == 100
    with pytest.raises(UploadTooLarge):
        parse_upload_length("101", None, max_size=100)
    with pytest.raises(BadTusRequest, match="Defer"):
        parse_upload_length(None, "1", max_size=100)
    for bad in (None, "-1", "1e3", "", "12a"):
        with pytest.raises(BadTusRequest):
            parse_upload_length(bad, None, max_size=100)


def test_checksum_header() -> None:
    digest = hashlib.sha256(b"abc").digest()
    checksum = parse_checksum("sha256 " + base64.b64encode(digest).decode())
    assert checksum is not None
    hasher = checksum.new_hasher()
    hasher.update(b"abc")
    assert checksum.matches(hasher)
    assert parse_checksum(None) is None
    assert parse_checksum(
        "SHA1 " + base64.b64encode(hashlib.sha1(b"", usedforsecurity=False).digest()).decode()
    )
    for bad in ("crc32 AAAA", "sha1 !!!", "sha1 " + base64.b64encode(b"short").decode()):
        with pytest.raises(BadTusRequest):
            parse_checksum(bad)


def test_offsets_content_type_and_capabilities() -> None:
    check_offset(5, 5)
    with pytest.raises(OffsetMismatch) as err:
        check_offset(6, 5)
    assert err.value.status == 409
    assert err.value.headers["Upload-Offset"] == "5"
    check_fits(5, 5, 10)
    with pytest.raises(UploadTooLarge):
        check_fits(5, 6, 10)
    check_patch_content_type("application/offset+octet-stream")
    with pytest.raises(UnsupportedMediaType):
        check_patch_content_type("application/json")
    headers = capability_headers(1024)
    assert headers["Tus-Max-Size"] == "1024"
    assert "checksum" in headers["Tus-Extension"].split(",")
    assert {"sha1", "sha256"} <= set(headers["Tus-Checksum-Algorithm"].split(","))


# -- the parts a PATCH stores ---------------------------------------------------------------
MIB = 1024 * 1024


def test_part_plan_cuts_parts_and_the_last_one_takes_the_remainder() -> None:
    part = 5 * MIB
    assert part_plan(0, 4 * MIB, part) == []  # less than a part: the pending tail
    assert part_plan(3 * MIB, MIB, part) == []
    assert part_plan(0, 5 * MIB, part) == [part]
    assert part_plan(3 * MIB, 5 * MIB, part) == [8 * MIB]  # the tail starts the first part
    assert part_plan(0, 12 * MIB, part) == [part, 7 * MIB]  # off the grid: no tail left
    assert part_plan(2 * MIB, 13 * MIB, part) == [part, part, 5 * MIB]
    assert part_plan(0, 0, part) == []


@given(pending=st.integers(0, 499), body=st.integers(0, 100_000), part_size=st.integers(1, 500))
def test_part_plan_covers_every_byte_in_parts_of_at_least_part_size(
    pending: int, body: int, part_size: int
) -> None:
    plan = part_plan(pending, body, part_size)
    total = pending + body
    if total < part_size:
        assert plan == []
    else:
        assert sum(plan) == total
        assert all(size == part_size for size in plan[:-1])
        assert part_size <= plan[-1] < 2 * part_size


# -- metadata ------------------------------------------------------------------------------
def test_caption_and_hashtags() -> None:
    meta = video_metadata(
        {"caption": "  Sunset \u200b#Beach #beach run #Été ", "hashtags": "travel, #Summer"},
        caption_max_chars=100,
        max_hashtags=10,
    )
    assert meta.caption == "Sunset #Beach #beach run #Été"
    assert meta.hashtags == ["travel", "summer", "beach", "été"]
    with pytest.raises(InvalidInput, match="limit is 5"):
        normalize_caption("x" * 6, max_chars=5)
    with pytest.raises(InvalidInput, match="invalid hashtag"):
        collect_hashtags("", "no-dash", max_tags=5)
    with pytest.raises(InvalidInput, match="limit is 2"):
        collect_hashtags("#a #b #c", "", max_tags=2)
    assert (
        video_metadata(
            {"filename": "../../etc/passwd"}, caption_max_chars=1, max_hashtags=1
        ).filename
        == ".._.._etc_passwd"
    )


# -- probe verdicts ----------------------------------------------------------------------------
def _probe(
    streams: list[dict[str, object]],
    fmt: str = "mov,mp4,m4a,3gp,3g2,mj2",
    duration: str = "3.0",
    stderr: str = "",
) -> str | None:
    stdout = json.dumps({"streams": streams, "format": {"format_name": fmt, "duration": duration}})
    return rejection_reason(parse_probe(stdout, stderr), SourceLimits(max_duration_s=10))


VIDEO = {
    "codec_type": "video",
    "codec_name": "h264",
    "width": 1280,
    "height": 720,
    "avg_frame_rate": "30/1",
    "nb_frames": "90",
    "nb_read_packets": "90",
}


def test_probe_verdicts() -> None:
    assert _probe([VIDEO, {"codec_type": "audio", "codec_name": "aac"}]) is None
    assert "only audio" in (_probe([{"codec_type": "audio", "codec_name": "aac"}]) or "")
    assert "unsupported file format" in (
        _probe([{**VIDEO, "codec_name": "png"}], fmt="png_pipe") or ""
    )
    assert "truncated" in (_probe([{**VIDEO, "nb_read_packets": "17"}]) or "")
    assert "the limit is 10 s" in (_probe([VIDEO], duration="12.0") or "")
    assert "short side" in (_probe([{**VIDEO, "width": 1280, "height": 32}]) or "")
    assert "aspect ratio" in (_probe([{**VIDEO, "width": 2000, "height": 400}]) or "")
    assert "unsupported video codec" in (_probe([{**VIDEO, "codec_name": "gif"}]) or "")
    cover = {**VIDEO, "codec_name": "mjpeg", "disposition": {"attached_pic": 1}}
    assert "only audio" in (_probe([cover, {"codec_type": "audio", "codec_name": "aac"}]) or "")
    unreadable = parse_probe(
        "", "[mov,mp4 @ 0x55] moov atom not found\nx.mp4: Invalid data", exit_code=1
    )
    assert "truncated" in (rejection_reason(unreadable, SourceLimits()) or "")
    garbage = parse_probe("", "<file>: Invalid data found when processing input", exit_code=1)
    assert "not a readable video" in (rejection_reason(garbage, SourceLimits()) or "")


def test_rotation_swaps_the_display_size() -> None:
    stream = {**VIDEO, "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}
    video = parse_probe(json.dumps({"streams": [stream], "format": {"format_name": "mp4"}})).video
    assert video is not None
    assert (video.display_width, video.display_height) == (720, 1280)


# -- ranges ----------------------------------------------------------------------------------
def test_byte_ranges() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == ByteRange(0, 9)
    assert parse_range("bytes=90-", 100) == ByteRange(90, 99)
    assert parse_range("bytes=-10", 100) == ByteRange(90, 99)
    assert parse_range("bytes=50-500", 100) == ByteRange(50, 99)
    assert parse_range("bytes=0-1,5-6", 100) is None  # several ranges: whole object
    assert parse_range("items=0-1", 100) is None
    for bad in ("bytes=100-", "bytes=5-4", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable) as err:
            parse_range(bad, 100)
        assert err.value.headers["Content-Range"] == "bytes */100"
    assert content_type_for("a/index.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type_for("a/seg_00001.m4s") == "video/iso.segment"
    assert content_type_for("a/x.bin", "text/plain") == "text/plain"


# -- playback ------------------------------------------------------------------------------------
def test_playback_urls_at_the_origin_and_through_a_pop() -> None:
    keys = AssetKeys(
        master_playlist_key="assets/ab/r1/master.m3u8",
        poster_key="assets/ab/r1/poster.jpg",
        still_keys=["assets/ab/r1/stills/0001.jpg"],
    )
    origin = playback_urls(keys, origin_base="/v1/objects/")
    assert origin.master_playlist_url == "/v1/objects/assets/ab/r1/master.m3u8"
    assert origin.served_by == "origin"
    row = {"master_playlist_key": keys.master_playlist_key, "poster_key": None, "still_keys": None}
    edge = playback_urls(
        row, origin_base="/v1/objects", pop_base="https://p.example/v1/objects", pop_name="p1"
    )
    assert edge.master_playlist_url == "https://p.example/v1/objects/assets/ab/r1/master.m3u8"
    assert edge.poster_url is None and edge.still_urls == []
    assert edge.served_by == "p1"
    assert playback_urls({}, origin_base="/o").master_playlist_url is None


def test_pop_choice() -> None:
    table = parse_routing_table(
        json.dumps(
            {
                "pops": [
                    {
                        "name": "eu-1",
                        "region": "eu-west",
                        "url": "https://eu1/",
                        "latitude": 53.3,
                        "longitude": -6.3,
                    },
                    {"name": "eu-2", "region": "EU-West", "url": "https://eu2/"},
                    {
                        "name": "us-1",
                        "region": "us-east",
                        "url": "https://us1",
                        "latitude": 39,
                        "longitude": -77.5,
                    },
                    {"name": "ap-1", "region": "ap", "url": "https://ap1", "ready": False},
                ]
            }
        )
    )
    assert choose_pop(table, region="eu-west") is not None
    spread = {choose_pop(table, region="eu-west", spread_key=f"v{i}").name for i in range(50)}  # type: ignore[union-attr]
    assert spread == {"eu-1", "eu-2"}
    assert choose_pop(table, region="ap") is None  # not ready: the origin serves
    near = choose_pop(table, region="sa-east", coordinates=(40.7, -74.0))
    assert near is not None and near.name == "us-1"
    assert choose_pop(RoutingTable(), region="eu-west") is None
    assert pop_base_url(table.pops[0], "/v1/objects") == "https://eu1/v1/objects"
    configmap = "data:\n  routing.yaml: |\n    - {name: x, region: r, url: 'https://x'}\n"
    assert parse_routing_table(configmap).pops[0].name == "x"
    with pytest.raises(ConfigError):
        parse_routing_table("pops: [{name: 1}]")


def test_a_tombstoned_asset_removes_its_source_and_only_its_ready_run() -> None:
    doomed = asset_objects("uploads/v1/source", "assets/abc/run1/master.m3u8")
    assert doomed == AssetObjects(("uploads/v1/source",), ("assets/abc/run1/",))
    # A failed asset never got a run; nothing at all when nothing was stored.
    assert asset_objects("uploads/v1/source", None) == AssetObjects(("uploads/v1/source",))
    assert asset_objects(None, None) == AssetObjects()


def test_upload_concat_header_names_partial_uploads_by_url_or_path() -> None:
    a, b = "a" * 32, "b" * 32
    assert parse_concat(None) is None
    assert parse_concat("partial") == Concat("partial")
    final = parse_concat(f"final;https://x.example/v1/uploads/{a} /v1/uploads/{b}")
    assert final == Concat("final", (a, b))
    assert concat_header("final", (a, b)) == f"final;/v1/uploads/{a} /v1/uploads/{b}"
    assert concat_header("partial", ()) == "partial"
    assert concat_header(None, ()) is None
    for bad in ("", "final", "final;", "partial;x", f"final;/v1/other/{a}", "final;/v1/uploads/x"):
        with pytest.raises(BadTusRequest):
            parse_concat(bad)
    with pytest.raises(BadTusRequest, match="twice"):
        parse_concat(f"final;/v1/uploads/{a} /v1/uploads/{a}")
    assert "concatenation" in capability_headers(10)["Tus-Extension"].split(",")
