"""Ingestion benchmarks: upload ingest rate and the transcode ladder.

    .venv/bin/python e2e/bench/ingest.py [--seconds 30] [--real] [--skip-ladder]
                                         [--out .cache/bench/ingest.json]

1. Ingest: a tus upload (5 MiB PATCHes over HTTP to the upload service) of a
   1080p clip, against a raw write of the same bytes to the same object store
   (multipart, 5 MiB parts). Goal: ingest / raw >= 0.7. The finishing step
   (read back, SHA-256 if needed, ffprobe, dedup) is timed apart.
2. Ladder of the same 30 s 1080p clip (6 renditions + audio + poster + stills):
   our one-process command, a hand-written ffmpeg command producing the same
   outputs (goal: ours <= 1.1x its time), and one ffmpeg process per output
   (goal: ours faster). Realtime factor = clip duration / wall time.

Prints a table and writes JSON. Not run by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import embedded_settings  # noqa: E402
from tests.upload_support import ffmpeg, running_platform  # noqa: E402

from reelplane.cli import run_on_fast_loop  # noqa: E402
from reelplane.ports.objects import MIN_PART_SIZE  # noqa: E402
from reelplane.settings import Settings  # noqa: E402
from reelplane.upload.ffprobe import run_ffprobe  # noqa: E402
from reelplane_transcode.command import (  # noqa: E402
    EncoderOptions,
    ladder_command,
    output_folders,
    per_rendition_commands,
)
from reelplane_transcode.ladder import plan_ladder  # noqa: E402
from reelplane_transcode.settings import TranscodeSettings  # noqa: E402

CHUNK = 5 * 1024 * 1024


def make_clip(path: Path, seconds: int) -> None:
    """A 1080p30 H.264/AAC clip with moving detail (about 8 Mbit/s)."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-b:v", "8M", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-shortest", str(path),
    )  # fmt: skip


# -- 1. ingest ---------------------------------------------------------------------------------
async def bench_ingest(settings: Settings, clip: Path, rounds: int) -> dict[str, Any]:
    """Median of `rounds` interleaved runs of the raw write and the tus upload
    (the disk and the servers are noisy on a small machine)."""
    data = await asyncio.to_thread(clip.read_bytes)
    size = len(data)
    raw: list[float] = []
    ingest: list[float] = []
    single: list[float] = []
    finish: list[float] = []
    async with running_platform(settings) as platform:
        objects = platform.backends.objects
        for _ in range(rounds):
            # Raw: the same bytes as multipart parts straight into the store.
            started = time.perf_counter()
            key = f"bench/raw-{os.getpid()}-{time.time_ns()}"
            upload_id = await objects.create_multipart(key)
            parts = []
            for i, offset in enumerate(range(0, size, CHUNK)):
                part = data[offset : offset + CHUNK]
                parts.append(await objects.upload_part(key, upload_id, i + 1, part))
            await objects.complete_multipart(key, upload_id, parts)
            raw.append(time.perf_counter() - started)
            await objects.delete(key)
            # tus from another process (a client is another machine, not a
            # coroutine sharing the server's event loop): every byte but the last
            # through PATCHes, then the last one, which finishes the upload (read
            # back, ffprobe, dedup, publish).
            for chunk, sink in ((CHUNK, ingest), (0, single)):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--client",
                    json.dumps(
                        {
                            "endpoint": platform.tus_endpoint,
                            "token": platform.token,
                            "file": str(clip),
                            "chunk": chunk,
                        }
                    ),
                    stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await proc.communicate()
                timings = json.loads(out.decode().strip().splitlines()[-1])
                sink.append(timings["ingest_s"])
                finish.append(timings["finish_s"])
    raw_s, ingest_s, single_s, finish_s = (
        statistics.median(v) for v in (raw, ingest, single, finish)
    )
    assert CHUNK >= MIN_PART_SIZE
    mb = size / 1e6
    return {
        "bytes": size,
        "rounds": rounds,
        "raw_write_s": raw,
        "tus_ingest_s": ingest,
        "tus_single_patch_s": single,
        "finish_s": finish,
        "raw_write_mb_s": mb / raw_s,
        "tus_ingest_mb_s": mb / ingest_s,
        "ingest_vs_raw": raw_s / ingest_s,
        "tus_single_patch_mb_s": mb / single_s,
        "single_patch_vs_raw": raw_s / single_s,
        "finish_median_s": finish_s,
        "end_to_end_mb_s": mb / (ingest_s + finish_s),
    }


# -- 2. ladder ---------------------------------------------------------------------------------
def hand_written_command(src: Path, out: Path) -> list[str]:
    """What an engineer would type for the same outputs as our ladder of a
    1920x1080 30 fps source (veryfast/superfast presets, 2 s segments)."""
    hls = "-f hls -hls_time 2 -hls_playlist_type vod -hls_segment_type fmp4 -hls_flags independent_segments -hls_fmp4_init_filename init.mp4"  # noqa: E501
    kf = "-force_key_frames expr:gte(t,n_forced*2)"
    x264 = "-c:v libx264 -preset veryfast -profile:v high -g 60 -keyint_min 60 -sc_threshold 0"
    x265 = "-c:v libx265 -preset superfast -profile:v main -tag:v hvc1 -x265-params keyint=60:min-keyint=60:scenecut=0:open-gop=0:log-level=error"  # noqa: E501
    graph = (
        "[0:v]split=8[a][b][c][d][e][f][p][s];"
        "[a]scale=640:360[a1];[b]scale=1280:720[b1];[c]scale=1920:1080[c1];"
        "[d]scale=640:360[d1];[e]scale=1280:720[e1];[f]scale=1920:1080[f1];"
        "[p]trim=start=1,setpts=PTS-STARTPTS,scale=1280:720,format=yuvj420p[po];"
        "[s]fps=1/3,scale=640:360,format=yuvj420p[st]"
    )
    o = str(out)
    cmd = f"ffmpeg -hide_banner -nostdin -y -loglevel error -i {src} -filter_complex {graph}"
    parts = cmd.split(" ")
    for label, enc, rate, name in (
        ("a1", x264, "800k -maxrate 1200k -bufsize 1600k", "h264_360p"),
        ("b1", x264, "2800k -maxrate 4200k -bufsize 5600k", "h264_720p"),
        ("c1", x264, "5000k -maxrate 7500k -bufsize 10000k", "h264_1080p"),
        ("d1", x265, "500k -maxrate 750k -bufsize 1000k", "hevc_360p"),
        ("e1", x265, "1700k -maxrate 2550k -bufsize 3400k", "hevc_720p"),
        ("f1", x265, "3000k -maxrate 4500k -bufsize 6000k", "hevc_1080p"),
    ):
        parts += f"-map [{label}] -an {enc} -b:v {rate} {kf} {hls}".split(" ")
        parts += ["-hls_segment_filename", f"{o}/{name}/seg_%05d.m4s", f"{o}/{name}/index.m3u8"]
    parts += f"-map 0:a:0 -vn -c:a aac -b:a 128k -ac 2 -ar 48000 {hls}".split(" ")
    parts += ["-hls_segment_filename", f"{o}/audio/seg_%05d.m4s", f"{o}/audio/index.m3u8"]
    parts += ["-map", "[po]", "-frames:v", "1", "-q:v", "3", f"{o}/poster.jpg"]
    parts += ["-map", "[st]", "-q:v", "5", "-f", "image2", f"{o}/stills/%04d.jpg"]
    return parts


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(commands: list[list[str]], *, parallel: bool) -> tuple[float, float]:
    """Wall and CPU seconds of running the commands (all at once, or in turn)."""
    cpu0 = _children_cpu_s()
    started = time.perf_counter()
    if parallel:
        procs = [subprocess.Popen(c) for c in commands]
        codes = [p.wait() for p in procs]
    else:
        codes = [subprocess.run(c, check=False).returncode for c in commands]
    wall = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"ffmpeg failed: exit codes {codes}")
    return wall, _children_cpu_s() - cpu0


def _fresh(out: Path, ladder: Any) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    for folder in output_folders(ladder, out):
        folder.mkdir(parents=True, exist_ok=True)
    return out


def _output_set(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


async def bench_ladder(clip: Path, work: Path, seconds: int) -> dict[str, Any]:
    settings = TranscodeSettings()
    probe = await run_ffprobe(clip)
    ladder = plan_ladder(probe)
    opts = EncoderOptions(
        h264_preset=settings.transcode_h264_preset,
        hevc_preset=settings.transcode_hevc_preset,
        stills_interval_s=settings.transcode_stills_interval_s,
    )
    ours_out = _fresh(work / "ours", ladder)
    ours_wall, ours_cpu = _run(
        [ladder_command(ladder, clip, ours_out, opts, progress=False)], parallel=False
    )
    hand_out = _fresh(work / "hand", ladder)
    hand_wall, hand_cpu = _run([hand_written_command(clip, hand_out)], parallel=False)
    per_out = _fresh(work / "per", ladder)
    per_wall, per_cpu = _run(per_rendition_commands(ladder, clip, per_out, opts), parallel=True)
    same = _output_set(ours_out) == _output_set(hand_out) == _output_set(per_out)
    return {
        "clip_seconds": seconds,
        "renditions": [r.name for r in ladder.renditions],
        "presets": [opts.h264_preset, opts.hevc_preset],
        "same_outputs": same,
        "ours_wall_s": ours_wall,
        "ours_cpu_s": ours_cpu,
        "hand_written_wall_s": hand_wall,
        "hand_written_cpu_s": hand_cpu,
        "per_rendition_wall_s": per_wall,
        "per_rendition_cpu_s": per_cpu,
        "ours_vs_hand_written": ours_wall / hand_wall,
        "ours_vs_per_rendition": ours_wall / per_wall,
        # CPU seconds are what a shared machine cannot distort; wall time is what a
        # dedicated transcode node sees.
        "ours_vs_hand_written_cpu": ours_cpu / hand_cpu,
        "ours_vs_per_rendition_cpu": ours_cpu / per_cpu,
        "realtime_factor": seconds / ours_wall,
    }


def tus_client(options: dict[str, Any]) -> None:
    """The client half of the ingest benchmark (run in its own process): PATCHes
    of `chunk` bytes (0: one PATCH, the tus clients' default)."""
    data = Path(options["file"]).read_bytes()
    chunk = int(options["chunk"]) or len(data)
    size = len(data)
    base = {"Authorization": f"Bearer {options['token']}", "Tus-Resumable": "1.0.0"}
    with httpx.Client(timeout=300) as client:
        started = time.perf_counter()
        created = client.post(options["endpoint"], headers={**base, "Upload-Length": str(size)})
        url = options["endpoint"].rsplit("/v1/", 1)[0] + created.headers["location"]
        offset = 0

        def patch(end: int) -> int:
            response = client.patch(
                url,
                content=data[offset:end],
                headers={
                    **base,
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            assert response.status_code == 204, response.text
            return int(response.headers["upload-offset"])

        while offset < size - 1:
            offset = patch(min(offset + chunk, size - 1))
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        patch(size)
        finish_s = time.perf_counter() - started
    print(json.dumps({"ingest_s": ingest_s, "finish_s": finish_s}))


def real_settings(tmp: Path) -> Settings:
    from reelplane.infra.registry import make_harness

    harness = make_harness()
    harness.up(["mariadb", "kafka", "redis", "s3"])
    return embedded_settings(
        tmp,
        database_url=harness.servers["mariadb"].url,
        bus_url=harness.servers["kafka"].url,
        cache_url=harness.servers["redis"].url,
        objects_url=harness.servers["s3"].url,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="clip length (default 30)")
    parser.add_argument("--real", action="store_true", help="ingest into the real servers")
    parser.add_argument("--rounds", type=int, default=3, help="ingest repetitions (median)")
    parser.add_argument("--skip-ladder", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "bench" / "ingest.json")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: the tus client half
    args = parser.parse_args()
    if args.client:
        tus_client(json.loads(args.client))
        return
    with tempfile.TemporaryDirectory(prefix="reelplane-bench-") as folder:
        tmp = Path(folder)
        clip = tmp / "clip_1080p.mp4"
        make_clip(clip, args.seconds)
        settings = real_settings(tmp) if args.real else embedded_settings(tmp)
        result: dict[str, Any] = {"backends": "real" if args.real else "embedded"}
        # The machine may be shared: the load around the run says how quiet it was.
        result["load_average_before"] = os.getloadavg()
        if not args.skip_ingest:
            result["ingest"] = await bench_ingest(settings, clip, args.rounds)
        result["load_average_after_ingest"] = os.getloadavg()
        if not args.skip_ladder:
            result["ladder"] = await bench_ladder(clip, tmp / "ladder", args.seconds)
    rows: list[tuple[str, str, str, str]] = []
    if "ingest" in result:
        ing = result["ingest"]
        rows += [
            ("ingest", f"raw multipart write ({result['backends']} store)",
             f"{ing['raw_write_mb_s']:.1f} MB/s", ""),
            ("ingest", "tus, 5 MiB PATCHes over HTTP", f"{ing['tus_ingest_mb_s']:.1f} MB/s",
             f"{ing['ingest_vs_raw']:.2f}x raw (goal >= 0.7)"),
            ("ingest", "tus, one PATCH (clients' default)",
             f"{ing['tus_single_patch_mb_s']:.1f} MB/s",
             f"{ing['single_patch_vs_raw']:.2f}x raw (goal >= 0.7)"),
            ("ingest", "finish (read back, ffprobe, dedup)", f"{ing['finish_median_s']:.2f} s",
             f"end to end {ing['end_to_end_mb_s']:.1f} MB/s"),
        ]  # fmt: skip
    if "ladder" in result:
        lad = result["ladder"]
        rows += [
            ("ladder", "ours: one process, one decode", f"{lad['ours_wall_s']:.1f} s",
             f"realtime x{lad['realtime_factor']:.2f}, cpu {lad['ours_cpu_s']:.0f} s"),
            ("ladder", "hand-written ffmpeg command", f"{lad['hand_written_wall_s']:.1f} s",
             f"ours {lad['ours_vs_hand_written']:.2f}x wall, "
             f"{lad['ours_vs_hand_written_cpu']:.2f}x cpu (goal <= 1.1)"),
            ("ladder", "one process per output", f"{lad['per_rendition_wall_s']:.1f} s",
             f"ours {lad['ours_vs_per_rendition']:.2f}x wall, "
             f"{lad['ours_vs_per_rendition_cpu']:.2f}x cpu (goal < 1)"),
        ]  # fmt: skip
    before = ", ".join(f"{v:.2f}" for v in result["load_average_before"])
    after = ", ".join(f"{v:.2f}" for v in result["load_average_after_ingest"])
    print(f"load average (1, 5, 15 min): before {before}; after ingest {after}")
    print(f"{'part':<7} {'what':<44} {'result':>12}  note")
    for part, what, value, note in rows:
        print(f"{part:<7} {what:<44} {value:>12}  {note}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_on_fast_loop(main())  # the loop `reelplane dev` / `serve` run the services on
