"""The ffmpeg command lines, playlists, codec strings and progress parsing."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from reelplane.media.probe import AudioStreamInfo, ProbeResult, VideoStreamInfo
from reelplane_transcode.accel import (
    AccelChoice,
    Capabilities,
    EncoderUnavailable,
    choose_accel,
    decode_check_command,
    encode_check_command,
    parse_encoders,
)
from reelplane_transcode.command import (
    EncoderOptions,
    filter_graph,
    ladder_command,
    per_rendition_commands,
    poster_time_s,
)
from reelplane_transcode.ladder import plan_ladder
from reelplane_transcode.playlist import (
    AudioMedia,
    Variant,
    codec_string,
    parse_media_playlist,
    render_master_playlist,
    segment_bitrates,
)
from reelplane_transcode.progress import Progress, ProgressParser, percent_done

pytestmark = pytest.mark.unit

LADDER = plan_ladder(
    ProbeResult(
        readable=True,
        format_names=("mp4",),
        duration_s=8.0,
        video=VideoStreamInfo(codec="h264", width=1920, height=1080, fps=30.0),
        audio=AudioStreamInfo(codec="aac"),
    )
)


def test_one_process_decodes_once_and_feeds_every_rendition() -> None:
    args = ladder_command(LADDER, Path("/in/source"), Path("/out"), EncoderOptions())
    assert args.count("-i") == 1
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith("[0:v]split=8[v0][v1][v2][v3][v4][v5][vposter][vstills]")
    assert args.count("libx264") == 3
    assert args.count("libx265") == 3
    assert args.count("hls") == 7  # six video renditions and the audio one
    assert "/out/h264_1080p/index.m3u8" in args
    assert "/out/hevc_360p/seg_%05d.m4s" in args
    assert args[args.index("-progress") + 1] == "pipe:1"
    # HEVC in fMP4 tagged hvc1 (what Apple players need); keyframes on the segment grid.
    assert args.count("hvc1") == 3
    assert args.count("expr:gte(t,n_forced*2)") == 6
    assert "fmp4" in args


def test_cuda_uses_nvdec_scale_cuda_and_nvenc() -> None:
    args = ladder_command(LADDER, Path("/s"), Path("/o"), EncoderOptions(accel="cuda"))
    assert args[args.index("-hwaccel") + 1] == "cuda"
    assert "h264_nvenc" in args and "hevc_nvenc" in args
    assert "libx264" not in args
    graph = args[args.index("-filter_complex") + 1]
    assert "scale_cuda=1920:1080" in graph
    assert "hwdownload" in graph  # poster and stills come back to system memory


def test_poster_and_stills_branches() -> None:
    graph = filter_graph(LADDER, EncoderOptions(stills_interval_s=3))
    assert "[vposter]trim=start=1," in graph
    assert "[vstills]fps=1/3," in graph
    assert poster_time_s(2.0) == 0.5
    assert poster_time_s(30.0) == 1.0


def test_per_rendition_baseline_decodes_once_per_output() -> None:
    commands = per_rendition_commands(LADDER, Path("/s"), Path("/o"), EncoderOptions())
    assert len(commands) == 6 + 3  # renditions, audio, poster, stills
    assert all(c.count("-i") == 1 for c in commands)


PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.000000,
seg_00000.m4s
#EXTINF:1.500000,
seg_00001.m4s
#EXT-X-ENDLIST
"""


def test_media_playlist_and_bitrates() -> None:
    playlist = parse_media_playlist(PLAYLIST)
    assert playlist.init_uri == "init.mp4"
    assert [s.uri for s in playlist.segments] == ["seg_00000.m4s", "seg_00001.m4s"]
    assert playlist.duration_s == 3.5
    peak, average = segment_bitrates([(2.0, 250_000), (1.5, 300_000)])
    assert peak == 1_600_000  # 300 kB in 1.5 s
    assert average == round(550_000 * 8 / 3.5)


def test_master_playlist_lists_h264_first_with_audio_group() -> None:
    variants = [
        Variant(
            uri="hevc_720p/index.m3u8",
            bandwidth=2_000_000,
            average_bandwidth=1_500_000,
            codecs="hvc1.1.6.L93.90,mp4a.40.2",
            width=1280,
            height=720,
            frame_rate=30,
            audio_group="audio",
        ),
        Variant(
            uri="h264_720p/index.m3u8",
            bandwidth=3_000_000,
            average_bandwidth=2_500_000,
            codecs="avc1.64001f,mp4a.40.2",
            width=1280,
            height=720,
            frame_rate=30,
            audio_group="audio",
        ),
        Variant(
            uri="h264_360p/index.m3u8",
            bandwidth=900_000,
            average_bandwidth=800_000,
            codecs="avc1.64001e,mp4a.40.2",
            width=640,
            height=360,
            frame_rate=29.97,
            audio_group="audio",
        ),
    ]
    text = render_master_playlist(variants, AudioMedia(uri="audio/index.m3u8"))
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in text
    uris = [line for line in lines if not line.startswith("#")]
    assert uris == ["h264_360p/index.m3u8", "h264_720p/index.m3u8", "hevc_720p/index.m3u8"]
    assert (
        "#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,"
        'CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=29.970,AUDIO="audio"'
    ) in lines


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _init_with(entry: bytes) -> bytes:
    stsd = _box(b"stsd", b"\0\0\0\0" + struct.pack(">I", 1) + entry)
    return _box(b"ftyp", b"iso6") + _box(
        b"moov", _box(b"trak", _box(b"mdia", _box(b"minf", _box(b"stbl", stsd))))
    )


def test_codec_strings_come_from_the_decoder_configuration() -> None:
    avcc = _box(b"avcC", bytes([1, 0x64, 0x00, 0x28, 0xFF]))
    assert codec_string(_init_with(_box(b"avc1", bytes(78) + avcc))) == "avc1.640028"
    # HEVC Main, tier L, level 4.0 (120), compat flag of profile 1 and 2, constraint 0x90.
    hvcc = _box(
        b"hvcC",
        bytes([1, 0x01])
        + struct.pack(">I", 0x60000000)
        + bytes([0x90, 0, 0, 0, 0, 0])
        + bytes([120]),
    )
    assert codec_string(_init_with(_box(b"hvc1", bytes(78) + hvcc))) == "hvc1.1.6.L120.90"
    es = bytes([0x03, 0x19, 0x00, 0x01, 0x00, 0x04, 0x11, 0x40, 0x15]) + bytes(11)
    esds = _box(b"esds", b"\0\0\0\0" + es + bytes([0x05, 0x02, 0x12, 0x10]))
    assert codec_string(_init_with(_box(b"mp4a", bytes(28) + esds))) == "mp4a.40.2"
    with pytest.raises(ValueError, match="no avc1"):
        codec_string(_box(b"ftyp", b"iso6"))


def test_progress_blocks_give_percent_done() -> None:
    parser = ProgressParser()
    updates = [
        parser.feed(line)
        for line in [
            "frame=10",
            "out_time_us=N/A",
            "progress=continue",
            "out_time_us=4000000",
            "progress=continue",
            "out_time_us=9000000",
            "progress=end",
        ]
    ]
    got = [u for u in updates if u is not None]
    assert got == [Progress(0, False), Progress(4_000_000, False), Progress(9_000_000, True)]
    assert [percent_done(p, 8.0) for p in got] == [0, 50, 99]  # 100 only once ready
    assert percent_done(Progress(1, False), 0.0) == 0


# -- hardware choice -----------------------------------------------------------------------
ENCODERS_LISTING = """Encoders:
 V..... = Video
 A..... = Audio
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 V....D libx265              libx265 H.265 / HEVC (codec hevc)
 V....D hevc_nvenc           NVIDIA NVENC hevc encoder (codec hevc)
 A....D aac                  AAC (Advanced Audio Coding)
"""
LISTED = parse_encoders(ENCODERS_LISTING)
BOTH = ("h264", "hevc")


def test_encoder_listing_is_parsed_after_the_legend() -> None:
    assert {"libx264", "h264_nvenc", "libx265", "hevc_nvenc", "aac"} == LISTED
    assert parse_encoders("") == frozenset()


def test_cuda_is_kept_when_nvenc_and_nvdec_work() -> None:
    caps = Capabilities(LISTED, frozenset({"h264_nvenc", "hevc_nvenc"}), cuda_decode=True)
    choice = choose_accel("cuda", BOTH, caps)
    assert choice == AccelChoice("cuda", choice.reason, fallback=False)
    assert "NVENC" in choice.reason


def test_a_gpu_without_nvenc_falls_back_to_cpu_encoders_and_keeps_nvdec() -> None:
    # An H100: ffmpeg lists NVENC, the test encode fails, NVDEC decodes.
    caps = Capabilities(LISTED, frozenset(), cuda_decode=True)
    choice = choose_accel("cuda", BOTH, caps)
    assert choice.accel == "cuda-decode"
    assert choice.fallback
    assert "h264_nvenc, hevc_nvenc failed" in choice.reason
    assert "libx264, libx265" in choice.reason
    # Only the codecs of the ladder count.
    h264_only = Capabilities(LISTED, frozenset({"h264_nvenc"}), cuda_decode=True)
    assert choose_accel("cuda", ("h264",), h264_only).accel == "cuda"
    assert choose_accel("cuda", BOTH, h264_only).accel == "cuda-decode"


def test_ffmpeg_without_nvenc_or_a_machine_without_a_gpu_falls_back_to_the_cpu() -> None:
    no_nvenc = Capabilities(frozenset({"libx264", "libx265"}), cuda_decode=True)
    choice = choose_accel("cuda", BOTH, no_nvenc)
    assert (choice.accel, choice.fallback) == ("cuda-decode", True)
    assert "this ffmpeg has no h264_nvenc, hevc_nvenc" in choice.reason
    no_gpu = Capabilities(LISTED)
    choice = choose_accel("cuda", BOTH, no_gpu)
    assert (choice.accel, choice.fallback) == ("none", True)
    assert "NVDEC decode failed too" in choice.reason
    # NVENC works but NVDEC does not: NVENC is fed by the GPU decoder, so all CPU.
    nvenc_only = Capabilities(LISTED, frozenset({"h264_nvenc", "hevc_nvenc"}))
    assert choose_accel("cuda", BOTH, nvenc_only).accel == "none"
    assert choose_accel("cuda-decode", BOTH, no_gpu).accel == "none"
    assert choose_accel("cuda-decode", BOTH, nvenc_only).fallback


def test_cpu_as_configured_and_no_encoder_at_all() -> None:
    choice = choose_accel("none", BOTH, Capabilities(LISTED))
    assert (choice.accel, choice.fallback) == ("none", False)
    assert choose_accel("cuda-decode", BOTH, Capabilities(LISTED, cuda_decode=True)) == (
        AccelChoice("cuda-decode", "NVDEC decode, CPU encode (libx264, libx265), as configured")
    )
    with pytest.raises(EncoderUnavailable, match="no libx265"):
        choose_accel("cuda", BOTH, Capabilities(frozenset({"libx264", "h264_nvenc"})))
    with pytest.raises(EncoderUnavailable, match="no libx264"):
        choose_accel("none", ("h264",), Capabilities(frozenset()))


def test_cuda_decode_decodes_on_the_gpu_and_encodes_on_the_cpu() -> None:
    args = ladder_command(LADDER, Path("/s"), Path("/o"), EncoderOptions(accel="cuda-decode"))
    assert args[args.index("-hwaccel") + 1] == "cuda"
    assert "-hwaccel_output_format" not in args  # frames come back to memory
    assert args.count("libx264") == 3 and args.count("libx265") == 3
    assert "nvenc" not in " ".join(args)
    graph = args[args.index("-filter_complex") + 1]
    assert "scale_cuda" not in graph and "hwdownload" not in graph


def test_probe_commands_test_encode_and_nvdec_decode() -> None:
    encode = encode_check_command("ffmpeg", "hevc_nvenc")
    assert encode[encode.index("-c:v") + 1] == "hevc_nvenc"
    assert encode[-3:] == ["-f", "null", "-"]
    decode = decode_check_command("ffmpeg", Path("/tmp/s.mp4"))
    assert decode[decode.index("-hwaccel_output_format") + 1] == "cuda"
    # hwdownload fails on CPU frames: a silent software-decode fallback fails the test.
    assert decode[decode.index("-vf") + 1] == "hwdownload,format=nv12"
