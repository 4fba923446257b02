"""Ingestion benchmarks: upload ingest rate and the transcode ladder.

    .venv/bin/python e2e/bench/ingest.py [--seconds 30] [--real] [--skip-ladder]
                                         [--rounds 3] [--warmup 1]
                                         [--patterns 5mib,one]
                                         [--peers reelplane,tusd,tusd-nohash]
                                         [--out .cache/bench/ingest.json]

1. Ingest: tus uploads of a 1080p clip over HTTP, interleaved round by round
   with a raw write of the same bytes to the same object store (multipart,
   5 MiB parts; goal: Reelplane's ingest / raw >= 0.7) and, with --real, with
   tusd v2.9.1 (the reference tus server; `reelplane.infra.tusd`) storing in
   the same versitygw bucket, as shipped and with -s3-disable-content-hashes
   (goal: Reelplane >= 1.0x tusd without hashing). Two client patterns: 5 MiB
   PATCHes, and one PATCH whose body is streamed in slices. Each server runs in
   its own process and so does each client; the CPU of the server, of the
   stores (versitygw; MariaDB and Redis, which only Reelplane uses) and of the
   client is read from /proc around each upload. The last byte, which finishes
   the upload (for Reelplane: read back, SHA-256 if needed, ffprobe, dedup),
   is timed apart. Starting Reelplane empties its database's tables, as the
   upload tests do.
2. Ladder of the same 30 s 1080p clip (6 renditions + audio + poster + stills):
   our one-process command, a hand-written ffmpeg command producing the same
   outputs (goal: ours <= 1.1x its time), and one ffmpeg process per output
   (goal: ours faster). Realtime factor = clip duration / wall time.

Prints a table and writes JSON. Not run by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import embedded_settings  # noqa: E402
from tests.upload_support import ffmpeg, free_port, running_platform  # noqa: E402

from reelplane.backends import make_objects  # noqa: E402
from reelplane.cli import run_on_fast_loop  # noqa: E402
from reelplane.infra.harness import port_open  # noqa: E402
from reelplane.infra.tusd import install_tusd  # noqa: E402
from reelplane.logs import configure_logging  # noqa: E402
from reelplane.media.ffprobe import run_ffprobe  # noqa: E402
from reelplane.ports.objects import MIN_PART_SIZE, ObjectStore  # noqa: E402
from reelplane.settings import Settings  # noqa: E402
from reelplane.upload.settings import UploadSettings  # noqa: E402
from reelplane.urls import query_params  # noqa: E402
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
SLICE = 1024 * 1024
"""Every PATCH body goes out as an async generator of slices of this size, for
every server alike: given one `bytes` body, httpx copies the rest of it after
every socket send (4.5-6.3 ms of client CPU per MB on a 100 MB body, against
0.3-0.4 streamed), and the one-PATCH figure would measure the client."""

#: Bytes per PATCH in each client pattern (0: the whole body in one PATCH).
PATTERNS = {"5mib": CHUNK, "one": 0}
PATTERN_TITLES = {"5mib": "5 MiB PATCHes", "one": "one PATCH, streamed"}
#: The contenders: Reelplane, and tusd on the same store as shipped (it signs
#: every part's SHA-256 on a plain-http store) and with -s3-disable-content-hashes
#: (what it sends on https, where the payload is not signed).
REELPLANE, TUSD, TUSD_NOHASH = "reelplane", "tusd", "tusd-nohash"
PEERS = (REELPLANE, TUSD, TUSD_NOHASH)
#: Processes whose CPU is read around each upload, besides the tus server:
#: the object store (every server's), the relational store and cache (Reelplane's).
HELPERS = {"versitygw": "s3", "mariadb": "mariadb", "redis": "redis"}
#: Where this run's tusd servers keep their uploads (removed afterwards).
TUSD_PREFIX = f"bench/tusd-{os.getpid()}/"
#: The line the Reelplane server process prints when it serves (then JSON).
SERVING = "serving "


@dataclass(frozen=True)
class Peer:
    """A tus server under test: where to POST, the headers of every request, the
    process whose CPU is its own, and whether a finished upload is DELETEd
    afterwards (tus termination, outside the timed span)."""

    name: str
    endpoint: str
    headers: dict[str, str]
    pid: int
    terminate: bool = False


def process_cpu_s(pid: int) -> float:
    """CPU seconds a process has run so far: its threads' run time in ns from
    /proc/<pid>/task/*/schedstat (a thread that exited no longer counts; the
    servers here keep theirs), plus its reaped children's (ffprobe) in 10 ms
    ticks from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is the state (field 3)
    children_s = sum(int(v) for v in fields[13:15]) / os.sysconf("SC_CLK_TCK")  # cutime, cstime
    run_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            run_ns += int((task / "schedstat").read_text().split()[0])
    return run_ns / 1e9 + children_s


def listening_pid(port: int) -> int | None:
    """The process listening on TCP `port` (found through /proc), if any."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{f[9]}]")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                    return int(proc.name)
    return None


async def serve_reelplane(options: dict[str, Any]) -> None:
    """The Reelplane half (run in its own process, so its CPU is its own): the
    upload service on uvicorn as the bench set it up, until stdin closes."""
    # As `reelplane serve` sets logging up, at "warning": no access log (tusd
    # runs without one too), and a request that fails says why, on stderr
    # (structlog's default would print it on stdout, which nobody reads).
    configure_logging("console", "warning")
    settings = embedded_settings(Path(options["data_dir"]), **options["urls"])
    async with running_platform(settings) as platform:
        ready = {"endpoint": platform.tus_endpoint, "token": platform.token, "pid": os.getpid()}
        print(SERVING + json.dumps(ready), flush=True)
        await asyncio.to_thread(sys.stdin.read)


@contextlib.asynccontextmanager
async def reelplane_server(settings: Settings) -> AsyncIterator[Peer]:
    urls = {
        name: getattr(settings, name)
        for name in ("database_url", "bus_url", "cache_url", "widerow_url", "objects_url")
    }
    options = {"data_dir": str(settings.data_dir), "urls": urls}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", json.dumps(options),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = ""
        while not line.startswith(SERVING):  # whatever it prints before, it prints on stderr
            read = await asyncio.wait_for(proc.stdout.readline(), 180)
            if not read:
                raise RuntimeError("the Reelplane server exited before serving")
            line = read.decode()
        ready = json.loads(line[len(SERVING) :])
        yield Peer(
            REELPLANE,
            ready["endpoint"],
            {"Authorization": f"Bearer {ready['token']}"},
            ready["pid"],
        )
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def tusd_server(
    binary: Path, objects_url: str, name: str, *, hashing: bool, part_size: int, logs: Path
) -> AsyncIterator[Peer]:
    """tusd with its S3 store on the bucket of `objects_url`, under its own prefix."""
    params = query_params(objects_url)
    port = free_port()
    cmd = [
        str(binary), "-host", "127.0.0.1", "-port", str(port),
        "-s3-bucket", urlsplit(objects_url).netloc, "-s3-endpoint", params["endpoint"],
        "-s3-disable-ssl", "-s3-object-prefix", f"{TUSD_PREFIX}{name}/",
        # Parts the size of Reelplane's (tusd's default is 50 MiB): alike on both sides.
        "-s3-part-size", str(part_size), "-s3-min-part-size", str(MIN_PART_SIZE),
        "-verbose=false",  # no line per request, as the Reelplane server logs none
    ]  # fmt: skip
    if not hashing:
        cmd.append("-s3-disable-content-hashes")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": params["access_key"],
        "AWS_SECRET_ACCESS_KEY": params["secret_key"],
        "AWS_REGION": params.get("region", "us-east-1"),
    }
    log_file = logs / f"{name}.log"
    with log_file.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_file.read_text()[-2000:]}")
            await asyncio.sleep(0.1)
        yield Peer(name, f"http://127.0.0.1:{port}/files/", {}, proc.pid, terminate=True)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def _slices(data: memoryview, start: int, end: int) -> AsyncIterator[bytes]:
    for at in range(start, end, SLICE):
        yield data[at : min(at + SLICE, end)]  # type: ignore[misc]  # bytes-like


async def tus_client(options: dict[str, Any]) -> dict[str, Any]:
    """The client half (run in its own process: a client is another machine,
    not a coroutine sharing a server's event loop). OPTIONS (untimed), POST,
    then every byte but the last in PATCHes of `chunk` bytes (0: one PATCH),
    timed from the POST ("ingest"); then the last byte, which finishes the upload (for Reelplane:
    read back, ffprobe, dedup, publish), timed apart. The CPU of the processes
    in `pids` is read at each step."""
    data = memoryview(await asyncio.to_thread(Path(options["file"]).read_bytes))
    size = len(data)
    chunk = int(options["chunk"]) or size
    pids: dict[str, int] = options["pids"]
    base = {**options["headers"], "Tus-Resumable": "1.0.0"}
    patch_s: list[float] = []

    def cpu() -> dict[str, float]:
        times = os.times()
        return {"client": times.user + times.system} | {
            name: process_cpu_s(pid) for name, pid in pids.items()
        }

    async with httpx.AsyncClient(timeout=300) as client:

        async def patch(url: str, offset: int, end: int) -> int:
            started = time.perf_counter()
            response = await client.patch(
                url,
                content=_slices(data, offset, end),
                headers={
                    **base,
                    "Upload-Offset": str(offset),
                    "Content-Length": str(end - offset),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            patch_s.append(time.perf_counter() - started)
            assert response.status_code == 204, response.text
            return int(response.headers["upload-offset"])

        # Untimed: the first request of a client process costs it ~0.1 s of
        # CPU (lazy imports, the connection), which is no server's doing.
        await client.options(options["endpoint"], headers=base)
        cpu_start = cpu()
        started = time.perf_counter()
        created = await client.post(
            options["endpoint"], headers={**base, "Upload-Length": str(size)}
        )
        post_s = time.perf_counter() - started
        assert created.status_code == 201, created.text
        url = urljoin(options["endpoint"], created.headers["location"])
        offset = 0
        while offset < size - 1:
            offset = await patch(url, offset, min(offset + chunk, size - 1))
        ingest_s = time.perf_counter() - started
        cpu_ingested = cpu()
        started = time.perf_counter()
        await patch(url, offset, size)
        finish_s = time.perf_counter() - started
        cpu_finished = cpu()
        if options["terminate"]:
            await client.delete(url, headers=base)
    return {
        "post_s": post_s,
        "ingest_s": ingest_s,
        "finish_s": finish_s,
        "patch_s": patch_s[:-1],  # the last byte's PATCH is `finish_s`
        "ingest_cpu_s": {k: cpu_ingested[k] - v for k, v in cpu_start.items()},
        "finish_cpu_s": {k: cpu_finished[k] - cpu_ingested[k] for k in cpu_start},
    }


async def _upload(peer: Peer, clip: Path, chunk: int, helpers: dict[str, int]) -> dict[str, Any]:
    options = {
        "endpoint": peer.endpoint,
        "headers": peer.headers,
        "file": str(clip),
        "chunk": chunk,
        "terminate": peer.terminate,
        "pids": {"server": peer.pid, **helpers},
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", json.dumps(options), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"the tus client failed against {peer.name} (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def _raw_write(objects: ObjectStore, data: bytes) -> float:
    """Seconds to write `data` straight into the store: multipart, 5 MiB parts
    one after another (the baseline every tus server's ingest is held to)."""
    started = time.perf_counter()
    key = f"bench/raw-{os.getpid()}-{time.time_ns()}"
    upload_id = await objects.create_multipart(key)
    parts = []
    for i, offset in enumerate(range(0, len(data), CHUNK)):
        parts.append(
            await objects.upload_part(key, upload_id, i + 1, data[offset : offset + CHUNK])
        )
    await objects.complete_multipart(key, upload_id, parts)
    elapsed = time.perf_counter() - started
    await objects.delete(key)
    return elapsed


async def bench_ingest(
    settings: Settings,
    clip: Path,
    *,
    rounds: int,
    warmup: int,
    real: bool,
    tmp: Path,
    patterns: list[str],
    peers: list[str],
) -> dict[str, Any]:
    """Rounds of the raw write, then each pattern against each server, the
    servers' order turning by one each round (the disk and the servers are
    noisy on a small machine: a round's results are compared with each other)."""
    data = await asyncio.to_thread(clip.read_bytes)
    objects = make_objects(settings)
    part_size = UploadSettings().upload_part_size_bytes
    helpers: dict[str, int] = {}
    if real:
        from reelplane.infra.registry import make_harness

        servers = make_harness().servers
        for name, server in HELPERS.items():
            pid = listening_pid(servers[server].port)
            if pid is not None:
                helpers[name] = pid
    records: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(objects.close)
        running: list[Peer] = []
        if REELPLANE in peers:
            running.append(await stack.enter_async_context(reelplane_server(settings)))
        if real and {TUSD, TUSD_NOHASH} & set(peers):
            binary = await asyncio.to_thread(install_tusd)
            for name in (TUSD, TUSD_NOHASH):
                if name in peers:
                    tusd = tusd_server(
                        binary, settings.objects_url, name,
                        hashing=name == TUSD, part_size=part_size, logs=tmp,
                    )  # fmt: skip
                    running.append(await stack.enter_async_context(tusd))
            stack.push_async_callback(_remove_prefix, objects, TUSD_PREFIX)
        for index in range(warmup + rounds):
            record: dict[str, Any] = {
                "round": index - warmup,
                "load1": os.getloadavg()[0],
                "raw_s": await _raw_write(objects, data),
            }
            turn = index % len(running)
            order = running[turn:] + running[:turn]
            for pattern in patterns:
                for peer in order:
                    upload = await _upload(peer, clip, PATTERNS[pattern], helpers)
                    record[f"{pattern}/{peer.name}"] = upload
            label = "warm-up" if index < warmup else f"round {index - warmup + 1}/{rounds}"
            print(f"ingest {label} done (load {record['load1']:.2f})", file=sys.stderr)
            if index >= warmup:
                records.append(record)
    return summarize_ingest(records, len(data), patterns, [p.name for p in running])


async def _remove_prefix(objects: ObjectStore, prefix: str) -> None:
    """What a tusd run left in the store (uploads a failed round did not DELETE)."""
    keys = [info.key async for info in objects.list_objects(prefix)]
    for key in keys:
        await objects.delete(key)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize_ingest(
    records: list[dict[str, Any]], size: int, patterns: list[str], servers: list[str]
) -> dict[str, Any]:
    """Medians per pattern and server (MB/s, request times, CPU ms per MB) and
    the ratios of Reelplane's ingest rate to each baseline, each the median of
    the rounds' own ratios."""
    mb = size / 1e6
    raw = [r["raw_s"] for r in records]
    out: dict[str, Any] = {
        "bytes": size,
        "rounds": len(records),
        "slice_bytes": SLICE,
        "raw_write_s": raw,
        "raw_write_mb_s": mb / _median(raw),
        "per_round": records,
        "patterns": {},
    }
    for pattern in patterns:
        stats: dict[str, Any] = {}
        for server in servers:
            runs = [r[f"{pattern}/{server}"] for r in records]
            ingest_s = _median([u["ingest_s"] for u in runs])
            finish_s = _median([u["finish_s"] for u in runs])
            per_mb = {
                name: _median([u["ingest_cpu_s"][name] * 1e3 / mb for u in runs])
                for name in runs[0]["ingest_cpu_s"]
            }
            stats[server] = {
                "ingest_mb_s": _median([mb / u["ingest_s"] for u in runs]),
                "post_ms": _median([u["post_s"] * 1e3 for u in runs]),
                "patch_ms": _median([s * 1e3 for u in runs for s in u["patch_s"]]),
                "finish_s": finish_s,
                "finish_server_cpu_s": _median([u["finish_cpu_s"]["server"] for u in runs]),
                "end_to_end_mb_s": mb / (ingest_s + finish_s),
                "cpu_ms_per_mb": per_mb,  # while ingesting; "server" is the tus server
            }
        ratios: dict[str, float] = {}
        if REELPLANE in servers:
            ours = [r[f"{pattern}/{REELPLANE}"]["ingest_s"] for r in records]
            for base in (TUSD_NOHASH, TUSD):
                if base in servers:
                    theirs = [r[f"{pattern}/{base}"]["ingest_s"] for r in records]
                    pairs = zip(theirs, ours, strict=True)
                    ratios[f"{REELPLANE}/{base}"] = _median([t / o for t, o in pairs])
            ratios[f"{REELPLANE}/raw"] = _median([t / o for t, o in zip(raw, ours, strict=True)])
        out["patterns"][pattern] = {"servers": stats, "ratios": ratios}
    # The figures this bench reported before tusd joined it (Reelplane's).
    for pattern, rate, vs_raw in (
        ("5mib", "tus_ingest_mb_s", "ingest_vs_raw"),
        ("one", "tus_single_patch_mb_s", "single_patch_vs_raw"),
    ):
        ours_stats = out["patterns"].get(pattern, {}).get("servers", {}).get(REELPLANE)
        if ours_stats is not None:
            out[rate] = ours_stats["ingest_mb_s"]
            out[vs_raw] = out["patterns"][pattern]["ratios"][f"{REELPLANE}/raw"]
            if pattern == "5mib":
                out["finish_median_s"] = ours_stats["finish_s"]
                out["end_to_end_mb_s"] = ours_stats["end_to_end_mb_s"]
    return out


def ingest_tables(ing: dict[str, Any]) -> list[str]:
    """The rounds (ingest MB/s) with their medians and ratios, then each
    server's request times and CPU, as lines of text."""
    mb = ing["bytes"] / 1e6
    patterns = list(ing["patterns"])
    servers = list(next(iter(ing["patterns"].values()))["servers"]) if patterns else []
    short = {REELPLANE: "rp", TUSD: "tusd", TUSD_NOHASH: "tusd-nh"}
    cols = [(p, s) for p in patterns for s in servers]
    names = [f"{'5M' if p == '5mib' else '1P'} {short.get(s, s)}" for p, s in cols]
    lines = [
        f"ingest MB/s per round ({mb:.1f} MB; 5M: 5 MiB PATCHes, 1P: one PATCH streamed in "
        f"{SLICE // 1024} KiB slices; rp: Reelplane, tusd-nh: tusd -s3-disable-content-hashes)",
        f"{'round':>6} {'load1':>6} {'raw':>7} " + " ".join(f"{n:>10}" for n in names),
    ]
    for r in ing["per_round"]:
        cells = [f"{mb / r[f'{p}/{s}']['ingest_s']:>10.1f}" for p, s in cols]
        lines.append(
            f"{r['round'] + 1:>6} {r['load1']:>6.2f} {mb / r['raw_s']:>7.1f} " + " ".join(cells)
        )
    medians = [f"{ing['patterns'][p]['servers'][s]['ingest_mb_s']:>10.1f}" for p, s in cols]
    lines.append(f"{'median':>6} {'':>6} {ing['raw_write_mb_s']:>7.1f} " + " ".join(medians))
    lines.append("")
    lines.append("Reelplane's ingest rate / each baseline's (median of the rounds' ratios)")
    for p in patterns:
        ratios = ing["patterns"][p]["ratios"]
        said = "  ".join(f"{k}: {v:.2f}x" for k, v in ratios.items())
        lines.append(f"  {PATTERN_TITLES[p]:<22} {said}")
    lines.append("")
    measured = ing["patterns"][cols[0][0]]["servers"][cols[0][1]]["cpu_ms_per_mb"] if cols else {}
    helpers = [k for k in measured if k not in ("server", "client")]
    head = (
        f"  {'pattern':<22} {'server':<12} {'POST ms':>8} {'PATCH ms':>9} {'finish s':>9} "
        f"{'server cpu ms/MB':>17} "
        + " ".join(f"{h + ' ms/MB':>15}" for h in helpers)
        + f" {'client ms/MB':>13}"
    )
    lines.append("Medians per upload (CPU while ingesting, from /proc)")
    lines.append(head)
    for p, s in cols:
        st = ing["patterns"][p]["servers"][s]
        cpu = st["cpu_ms_per_mb"]
        lines.append(
            f"  {PATTERN_TITLES[p]:<22} {s:<12} {st['post_ms']:>8.1f} {st['patch_ms']:>9.1f} "
            f"{st['finish_s']:>9.3f} {cpu['server']:>17.2f} "
            + " ".join(f"{cpu[h]:>15.2f}" for h in helpers)
            + f" {cpu['client']:>13.2f}"
        )
    return lines


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
    parser.add_argument(
        "--rounds", type=int, default=3, help="measured ingest rounds (medians; default 3)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="rounds run first and left out (default 1)"
    )
    parser.add_argument(
        "--patterns", default=",".join(PATTERNS), help=f"of {', '.join(PATTERNS)} (default all)"
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"of {', '.join(PEERS)} (default all; tusd needs --real: it stores in S3)",
    )
    parser.add_argument("--skip-ladder", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "bench" / "ingest.json")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: the tus client half
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: the Reelplane server
    args = parser.parse_args()
    if args.client:
        print(json.dumps(await tus_client(json.loads(args.client))))
        return
    if args.serve:
        await serve_reelplane(json.loads(args.serve))
        return
    patterns = [p for p in args.patterns.split(",") if p]
    peers = [p for p in args.peers.split(",") if p]
    if not set(patterns) <= set(PATTERNS) or not set(peers) <= set(PEERS) or not peers:
        parser.error(f"--patterns takes {', '.join(PATTERNS)}; --peers takes {', '.join(PEERS)}")
    if not args.real and set(peers) - {REELPLANE}:
        print("tusd needs an S3 store (--real): measuring Reelplane alone", file=sys.stderr)
        peers = [REELPLANE]
    with tempfile.TemporaryDirectory(prefix="reelplane-bench-") as folder:
        tmp = Path(folder)
        clip = tmp / "clip_1080p.mp4"
        make_clip(clip, args.seconds)
        settings = real_settings(tmp) if args.real else embedded_settings(tmp)
        result: dict[str, Any] = {"backends": "real" if args.real else "embedded"}
        # The machine may be shared: the load around the run says how quiet it was.
        result["load_average_before"] = os.getloadavg()
        if not args.skip_ingest:
            result["ingest"] = await bench_ingest(
                settings,
                clip,
                rounds=args.rounds,
                warmup=args.warmup,
                real=args.real,
                tmp=tmp,
                patterns=patterns,
                peers=peers,
            )
        result["load_average_after_ingest"] = os.getloadavg()
        if not args.skip_ladder:
            result["ladder"] = await bench_ladder(clip, tmp / "ladder", args.seconds)
    rows: list[tuple[str, str, str, str]] = []
    if "ingest" in result:
        ing = result["ingest"]
        rows.append(("ingest", f"raw multipart write ({result['backends']} store)",
                     f"{ing['raw_write_mb_s']:.1f} MB/s", ""))  # fmt: skip
        for pattern, stats in ing["patterns"].items():
            ours = stats["servers"].get(REELPLANE)
            if ours is None:
                continue
            ratios = stats["ratios"]
            note = f"{ratios[f'{REELPLANE}/raw']:.2f}x raw (goal >= 0.7)"
            if f"{REELPLANE}/{TUSD_NOHASH}" in ratios:
                note += f", {ratios[f'{REELPLANE}/{TUSD_NOHASH}']:.2f}x tusd no-hash (goal >= 1.0)"
            rows.append(("ingest", f"tus, {PATTERN_TITLES[pattern]}",
                         f"{ours['ingest_mb_s']:.1f} MB/s", note))  # fmt: skip
        if "finish_median_s" in ing:
            rows.append(("ingest", "finish (read back, ffprobe, dedup)",
                         f"{ing['finish_median_s']:.2f} s",
                         f"end to end {ing['end_to_end_mb_s']:.1f} MB/s"))  # fmt: skip
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
    if "ingest" in result:
        print("\n".join(ingest_tables(result["ingest"])), end="\n\n")
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
