"""Shared by the upload and transcode tests: test media made with ffmpeg, a
running platform (backends + the upload service on a real socket), a
transcode worker task, and readers of what happened (events, objects, rows).

Media are tiny (2-4 s, low resolution or bit rate) so the suite stays fast on
two cores; the ladders still cover landscape 1080p, portrait 1080x1920 and 480p.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select

from reelplane.auth import SessionStore
from reelplane.backends import Backends, open_backends
from reelplane.events.envelope import Event, decode_event, utc_now
from reelplane.http.app import create_app
from reelplane.schema import metadata, users, video_assets, videos
from reelplane.settings import Settings
from reelplane.upload.settings import UploadSettings
from reelplane_transcode.settings import TranscodeSettings
from reelplane_transcode.worker import TranscodeWorker

MIB = 1024 * 1024


# -- media ---------------------------------------------------------------------------------
def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
        check=True,
        timeout=300,
    )


def red_jpeg() -> bytes:
    """A 64x48 plain red JPEG, as a poster (stdout, no file)."""
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=64x48", "-frames:v", "1",
         "-f", "image2", "-c:v", "mjpeg", "pipe:1"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip


def make_video(
    path: Path,
    *,
    width: int,
    height: int,
    seconds: float = 2.0,
    fps: int = 15,
    audio: bool = True,
    kbps: int = 400,
    faststart: bool = False,
) -> Path:
    """An H.264/AAC MP4 of moving test patterns (and a tone)."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", f"{kbps}k", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k", "-shortest"]
    if faststart:
        args += ["-movflags", "+faststart"]
    ffmpeg(*args, str(path))
    return path


def make_big_video(path: Path, *, min_bytes: int = 12 * MIB) -> Path:
    """A short video of at least `min_bytes` (lossless noise), to cross several
    5 MiB chunks; small picture so that transcoding it stays cheap."""
    seconds = 4
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=320x240:rate=30:duration={seconds},noise=alls=80:allf=t+u",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-qp",
        "0",
        "-pix_fmt",
        "yuv420p",
        str(path),
    )
    if path.stat().st_size < min_bytes:
        raise AssertionError(f"test video is only {path.stat().st_size} bytes")
    return path


def make_bad_files(folder: Path, good: Path) -> dict[str, Path]:
    """The rejects: truncated MP4, image renamed .mp4, audio only, zero bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    image = folder / "image.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240",
        "-frames:v",
        "1",
        "-f",
        "image2",
        "-c:v",
        "png",
        str(image),
    )
    audio = folder / "audio.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", str(audio))
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    return {"truncated": truncated, "image": image, "audio-only": audio, "zero-byte": empty}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def probe_json(path_or_url: str) -> dict[str, Any]:
    """ffprobe's view of a file or URL (format and streams)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", path_or_url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


# -- platform --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Platform:
    """Backends plus the upload service answering on base_url for one user."""

    backends: Backends
    base_url: str
    token: str
    user_id: str
    upload_settings: UploadSettings
    app: Any

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def tus_endpoint(self) -> str:
        return f"{self.base_url}/v1/uploads"

    async def new_user(self) -> tuple[str, str]:
        user_id = uuid.uuid4().hex
        async with self.backends.database.transaction() as conn:
            await conn.execute(
                users.insert().values(id=user_id, handle=f"u{user_id[:12]}", created_at=utc_now())
            )
        return user_id, await SessionStore(self.backends).create(user_id)


async def empty_tables(backends: Backends) -> None:
    async with backends.database.transaction() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())


@contextlib.asynccontextmanager
async def running_platform(
    settings: Settings, upload_settings: UploadSettings | None = None
) -> AsyncIterator[Platform]:
    """Open the backends, create a user and session, and serve the upload
    service with uvicorn on a free loopback port, all in this event loop."""
    backends = await open_backends(settings)
    await empty_tables(backends)
    port = free_port()
    app = create_app(settings, ["upload"], backends=backends, run_background=False)
    app.state.upload_settings = upload_settings or UploadSettings(
        upload_work_dir=settings.data_dir / "scratch"
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        platform = Platform(
            backends, f"http://127.0.0.1:{port}", "", "", app.state.upload_settings, app
        )
        platform.user_id, platform.token = await platform.new_user()
        yield platform
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 10)
        await backends.close()


def fast_transcode_settings(tmp: Path, **overrides: Any) -> TranscodeSettings:
    """Fastest presets and a short lease, for tests on two cores."""
    values: dict[str, Any] = {
        "transcode_h264_preset": "ultrafast",
        "transcode_hevc_preset": "ultrafast",
        "transcode_lease_s": 3.0,
        "transcode_progress_interval_s": 0.2,
        "transcode_work_dir": tmp / "transcode",
    }
    values.update(overrides)
    return TranscodeSettings(**values)


@contextlib.asynccontextmanager
async def running_worker(
    backends: Backends, settings: TranscodeSettings
) -> AsyncIterator[TranscodeWorker]:
    """A transcode worker consuming `uploads` in this event loop."""
    worker = TranscodeWorker(backends, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 20)


# -- uploading without a tus library (for the protocol's error cases) ---------------------------
async def raw_create(
    client: httpx.AsyncClient, platform: Platform, length: int, **headers: str
) -> httpx.Response:
    return await client.post(
        platform.tus_endpoint,
        headers={
            **platform.auth,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(length),
            **headers,
        },
    )


async def raw_patch(
    client: httpx.AsyncClient,
    platform: Platform,
    url: str,
    offset: int,
    data: bytes,
    **headers: str,
) -> httpx.Response:
    return await client.patch(
        url if url.startswith("http") else platform.base_url + url,
        content=data,
        headers={
            **platform.auth,
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            **headers,
        },
    )


async def upload_file(
    platform: Platform, path: Path, *, chunk: int = 5 * MIB, caption: str = ""
) -> tuple[str, httpx.Response]:
    """Upload a whole file with plain tus requests; returns (video id, last response)."""
    from reelplane.upload.tus import encode_metadata

    data = await asyncio.to_thread(path.read_bytes)
    async with httpx.AsyncClient(timeout=120) as client:
        created = await raw_create(
            client,
            platform,
            len(data),
            **{"Upload-Metadata": encode_metadata({"filename": path.name, "caption": caption})},
        )
        if created.status_code != 201:
            return "", created
        url = created.headers["location"]
        offset = 0
        response = created
        while offset < len(data):
            response = await raw_patch(client, platform, url, offset, data[offset : offset + chunk])
            if response.status_code != 204:
                break
            offset = int(response.headers["upload-offset"])
    return url.rsplit("/", 1)[-1], response


# -- observing ----------------------------------------------------------------------------------
async def video_row(backends: Backends, video_id: str) -> Any:
    async with backends.database.connect() as conn:
        return (await conn.execute(select(videos).where(videos.c.id == video_id))).first()


async def asset_row(backends: Backends, sha256: str) -> Any:
    async with backends.database.connect() as conn:
        return (
            await conn.execute(select(video_assets).where(video_assets.c.sha256 == sha256))
        ).first()


async def object_keys(backends: Backends, prefix: str = "") -> list[str]:
    return [info.key async for info in backends.objects.list_objects(prefix)]


async def events_for(
    backends: Backends, topic: str, video_ids: set[str], *, settle_s: float = 1.0
) -> list[Event]:
    """Every event on `topic` about these videos (read with a fresh group from
    the start), after no new one arrived for `settle_s`."""
    consumer = backends.bus.consumer([topic], f"test-reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    found: list[Event] = []
    loop = asyncio.get_running_loop()
    try:
        quiet_since = loop.time()
        give_up = loop.time() + 30
        while loop.time() - quiet_since < settle_s:
            records = await consumer.poll(max_records=500, timeout_s=0.3)
            if not consumer.assignment() and loop.time() < give_up:
                quiet_since = loop.time()  # not in the group yet: nothing to conclude
                continue
            for record in records:
                with contextlib.suppress(Exception):
                    event = decode_event(record.value)
                    if getattr(event.payload, "video_id", None) in video_ids:
                        found.append(event)
                        quiet_since = loop.time()
            if records:
                quiet_since = max(quiet_since, loop.time() - settle_s / 2)
    finally:
        await consumer.stop()
    return found


def node_tus_client(cache: Path) -> Path:
    """tus-js-client installed under `cache` with npm (once; reused after)."""
    folder = cache / "node"
    marker = folder / "node_modules" / "tus-js-client" / "package.json"
    if not marker.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed")
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), "tus-js-client@4"],
            check=True,
            timeout=300,
            capture_output=True,
        )
    return folder / "node_modules"


class CuttingProxy:
    """A loopback TCP proxy that cuts the connection (both ways, abruptly) once
    `cut_after` bytes went from client to server; later connections pass."""

    def __init__(self, target_port: int, cut_after: int) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.forwarded = 0
        self.cut = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        def cut() -> None:
            for writer in (client_w, server_w):
                writer.transport.abort()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if not self.cut and self.forwarded + len(data) > self.cut_after:
                    keep = self.cut_after - self.forwarded
                    server_w.write(data[:keep])
                    await server_w.drain()
                    self.forwarded += keep
                    self.cut = True
                    await asyncio.sleep(0.05)
                    cut()
                    return
                server_w.write(data)
                await server_w.drain()
                self.forwarded += len(data)
            server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        with contextlib.suppress(Exception):
            await asyncio.gather(upstream(), downstream())
