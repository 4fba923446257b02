"""One transcode job: claim the asset, run the ladder, upload, mark ready.

At-least-once and idempotent. Assets are content-addressed (by the source's
SHA-256), so every `video.uploaded` of the same bytes names the same job. A
worker claims it with a lease in the `video_assets` row and renews the lease
while it works; a killed worker stops renewing, its uncommitted event is
redelivered, and the next worker takes the job over once the lease has run
out. Outputs go under a prefix unique to the run, and the row flips to ready
in one transaction only if the lease is still ours, after every object is
stored: no reader ever sees a ready video with missing renditions, and a late
zombie run can never overwrite a finished one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelplane.backends import Backends
from reelplane.errors import ReelplaneError
from reelplane.events.envelope import VideoUploaded
from reelplane.events.publisher import EventPublisher
from reelplane.media.ffprobe import run_ffprobe
from reelplane.media.ranges import content_type_for
from reelplane.videos import store
from reelplane.videos.announce import announce_outcomes
from reelplane.videos.model import AssetState, Rendition
from reelplane_transcode.accel import AccelChoice, choose_accel, probe_capabilities
from reelplane_transcode.command import (
    INIT_SEGMENT,
    MEDIA_PLAYLIST,
    POSTER_NAME,
    STILLS_DIR,
    EncoderOptions,
    ladder_command,
    output_folders,
)
from reelplane_transcode.ladder import Ladder, plan_ladder
from reelplane_transcode.playlist import (
    AudioMedia,
    Variant,
    codec_string,
    parse_media_playlist,
    render_master_playlist,
    segment_bitrates,
)
from reelplane_transcode.progress import ProgressParser, percent_done
from reelplane_transcode.settings import TranscodeSettings, load_ladder

log = logging.getLogger(__name__)

MASTER_PLAYLIST = "master.m3u8"


class TranscodeFailed(ReelplaneError):
    """The source cannot be transcoded (ffmpeg failed on it): the video fails."""

    status = 422
    slug = "transcode-failed"
    title = "Transcode failed"


class LeaseLost(ReelplaneError):
    """Another worker took the job over (our lease ran out); our run is void."""

    status = 409
    slug = "lease-lost"
    title = "Lease lost"


@dataclass(frozen=True)
class Outputs:
    """What a finished run stored: object keys and the rendition descriptions."""

    master_key: str
    poster_key: str
    still_keys: list[str]
    renditions: list[Rendition]


ProgressHook = Callable[[int], Awaitable[None]]


async def run_ffmpeg(
    args: list[str], *, duration_s: float, timeout_s: float, on_progress: ProgressHook
) -> None:
    """Run ffmpeg with `-progress pipe:1`, reporting percent done; TranscodeFailed
    with ffmpeg's last error lines on a non-zero exit. Killed if cancelled."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    stderr_tail = bytearray()

    async def drain_stderr(stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(4096):
            stderr_tail.extend(chunk)
            del stderr_tail[:-4000]

    async def read_progress(stream: asyncio.StreamReader) -> None:
        parser = ProgressParser()
        while line := await stream.readline():
            update = parser.feed(line.decode(errors="replace"))
            if update is not None:
                await on_progress(percent_done(update, duration_s))

    readers = asyncio.gather(drain_stderr(proc.stderr), read_progress(proc.stdout))
    try:
        await asyncio.wait_for(asyncio.shield(readers), timeout_s)
        code = await proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        readers.cancel()
        with contextlib.suppress(BaseException):
            await readers
        raise
    if code != 0:
        message = stderr_tail.decode(errors="replace").strip().splitlines()[-3:]
        raise TranscodeFailed(f"ffmpeg exited with {code}: {' | '.join(message)[:400]}")


def describe_outputs(ladder: Ladder, out: Path) -> tuple[str, list[Rendition]]:
    """Measure what ffmpeg wrote and render the master playlist. Returns the
    master playlist text and one description per rendition (its `playlist_key`
    relative to `out`)."""
    audio_media: AudioMedia | None = None
    audio_peak = audio_avg = 0
    audio_codec = ""
    if ladder.audio is not None:
        folder = out / ladder.audio.name
        playlist = parse_media_playlist((folder / MEDIA_PLAYLIST).read_text())
        audio_peak, audio_avg = segment_bitrates(
            [(s.duration_s, (folder / s.uri).stat().st_size) for s in playlist.segments]
        )
        audio_codec = codec_string((folder / INIT_SEGMENT).read_bytes())
        audio_media = AudioMedia(
            uri=f"{ladder.audio.name}/{MEDIA_PLAYLIST}", channels=ladder.audio.channels
        )
    variants: list[Variant] = []
    descriptions: list[Rendition] = []
    for r in ladder.renditions:
        folder = out / r.name
        playlist = parse_media_playlist((folder / MEDIA_PLAYLIST).read_text())
        peak, average = segment_bitrates(
            [(s.duration_s, (folder / s.uri).stat().st_size) for s in playlist.segments]
        )
        video_codec = codec_string((folder / INIT_SEGMENT).read_bytes())
        codecs = f"{video_codec},{audio_codec}" if audio_codec else video_codec
        variant = Variant(
            uri=f"{r.name}/{MEDIA_PLAYLIST}",
            bandwidth=peak + audio_peak,
            average_bandwidth=average + audio_avg,
            codecs=codecs,
            width=r.width,
            height=r.height,
            frame_rate=ladder.fps,
            audio_group=audio_media.group_id if audio_media else None,
        )
        variants.append(variant)
        descriptions.append(
            Rendition(
                name=r.name,
                codec=r.codec,
                width=r.width,
                height=r.height,
                bandwidth=variant.bandwidth,
                average_bandwidth=variant.average_bandwidth,
                codecs=codecs,
                playlist_key=variant.uri,
            )
        )
    return render_master_playlist(variants, audio_media), descriptions


def _output_files(out: Path) -> list[Path]:
    """Every file ffmpeg wrote under `out`, the master playlist excepted."""
    return sorted(p for p in out.rglob("*") if p.is_file() and p.name != MASTER_PLAYLIST)


class TranscodeJob:
    """Handles `video.uploaded` events for one worker (`worker_id` names its leases)."""

    def __init__(self, backends: Backends, settings: TranscodeSettings, worker_id: str) -> None:
        self.backends = backends
        self.db = backends.database
        self.objects = backends.objects
        self.settings = settings
        self.worker_id = worker_id
        self.publisher = EventPublisher(backends.bus)
        self.poll_s = min(1.0, settings.transcode_lease_s / 4)
        self.lease = store.asset_lease(settings.transcode_lease_s)
        self.ladder = load_ladder(settings)  # a bad ladder file stops the worker at start
        self._accel: AccelChoice | None = None

    async def accel(self) -> AccelChoice:
        """The hardware mode, decided once from a probe of ffmpeg and the GPU
        (no probe when the CPU is configured)."""
        if self._accel is None:
            requested = self.settings.transcode_accel
            if requested == "none":
                choice = AccelChoice("none", "CPU decode and encode, as configured")
            else:
                codecs = self.ladder.codecs
                caps = await probe_capabilities(self.settings.ffmpeg_path, codecs)
                choice = choose_accel(requested, codecs, caps)
            level = logging.WARNING if choice.fallback else logging.INFO
            log.log(
                level,
                f"transcode accel {choice.accel}: {choice.reason}",
                extra={"requested": requested, "accel": choice.accel},
            )
            self._accel = choice
        return self._accel

    # -- the event -----------------------------------------------------------------------
    async def handle(self, event: VideoUploaded) -> None:
        """Bring the event's video to ready (or failed), transcoding its asset
        unless it is done or another live worker is on it."""
        sha256 = event.payload.sha256
        while True:
            asset = await store.asset(self.db, sha256)
            if asset is None:
                log.warning("video.uploaded for an unknown asset", extra={"sha256": sha256})
                return
            if asset.state == AssetState.DELETED:
                return  # every video on it was deleted (and its objects removed)
            if asset.state in (AssetState.READY, AssetState.FAILED):
                # Whoever changed a video's state announces it (the upload service for
                # a duplicate of a ready asset, _finalize/_fail here); a publication
                # lost in a crash is re-sent by the upload service's janitor.
                settled = await store.settle_waiting_videos(self.db, sha256, asset)
                await announce_outcomes(self.db, self.publisher, settled)
                return
            if asset.attempts >= self.settings.transcode_max_attempts and await self._claim(sha256):
                await self._fail(
                    sha256, f"transcoding failed {asset.attempts} times (worker crashes?)"
                )
                continue
            if await self._claim(sha256):
                await self._run_claimed(sha256, asset.source_key, event.payload.video_id)
                continue
            await asyncio.sleep(self.poll_s)  # a live worker holds it: wait for its outcome

    async def _claim(self, sha256: str) -> bool:
        return await store.claim_asset(self.db, self.lease, sha256, self.worker_id)

    async def _renew(self, sha256: str) -> bool:
        return await store.renew_claim(self.db, self.lease, sha256, self.worker_id)

    async def _release(self, sha256: str) -> None:
        await store.release_claim(self.db, self.lease, sha256, self.worker_id)

    async def _keep_lease(self, sha256: str, owner: asyncio.Task[Any]) -> None:
        """Renew the lease every third of it; cancel the run if it was lost."""
        while True:
            await asyncio.sleep(self.settings.transcode_lease_s / 3)
            if not await self._renew(sha256):
                owner.cancel(LeaseLost.__name__)
                return

    async def _run_claimed(self, sha256: str, source_key: str, video_id: str) -> None:
        run = asyncio.ensure_future(self._transcode(sha256, source_key, video_id))
        keeper = asyncio.ensure_future(self._keep_lease(sha256, run))
        try:
            outputs = await run
        except asyncio.CancelledError:
            if keeper.done():  # the lease was lost: someone else finishes the job
                log.warning("transcode lease lost", extra={"sha256": sha256})
                return
            await self._release(sha256)  # we are being stopped: let another take over now
            raise
        except TranscodeFailed as exc:
            await self._fail(sha256, exc.detail)
            return
        except BaseException:
            await self._release(sha256)
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if not await self._finalize(sha256, outputs):
            await self._delete_prefix(outputs.master_key.rsplit("/", 1)[0] + "/")

    # -- the work ------------------------------------------------------------------------
    async def _transcode(self, sha256: str, source_key: str, video_id: str) -> Outputs:
        """Encode the asset's ladder (for `video_id`, the upload that asked: the
        asset may be shared by duplicates) and store it."""
        job_started = time.monotonic()
        scratch = self.settings.transcode_work_dir
        if scratch is not None:
            scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="reelplane-transcode-", dir=scratch) as folder:
            work = Path(folder)
            source = work / "source"
            with source.open("wb") as sink:
                async for chunk in self.objects.stream(source_key):
                    await asyncio.to_thread(sink.write, chunk)
            probe = await run_ffprobe(source, binary=self.settings.ffprobe_path)
            if probe.video is None or not probe.duration_s:
                raise TranscodeFailed(f"the source has no decodable video ({probe.error})")
            ladder = plan_ladder(
                probe,
                codec_rungs=self.ladder.rungs,
                segment_s=self.ladder.segment_s,
                max_fps=self.settings.transcode_max_fps,
                audio_kbps=self.settings.transcode_audio_kbps,
            )
            out = work / "out"
            for path in output_folders(ladder, out):
                path.mkdir(parents=True, exist_ok=True)
            opts = EncoderOptions(
                accel=(await self.accel()).accel,
                h264_preset=self.settings.transcode_h264_preset,
                hevc_preset=self.settings.transcode_hevc_preset,
                nvenc_preset=self.settings.transcode_nvenc_preset,
                stills_interval_s=self.settings.transcode_stills_interval_s,
                ffmpeg=self.settings.ffmpeg_path,
            )
            started = time.monotonic()
            await run_ffmpeg(
                ladder_command(ladder, source, out, opts),
                duration_s=ladder.duration_s,
                timeout_s=self.settings.transcode_timeout_s,
                on_progress=self._progress_writer(sha256),
            )
            encode_s = time.monotonic() - started
            master, renditions = await asyncio.to_thread(describe_outputs, ladder, out)
            (out / MASTER_PLAYLIST).write_text(master)
            outputs = await self._store(sha256, out, renditions)
            # wall_s: the whole job (fetch, probe, encode, store); encode_s: ffmpeg.
            log.info(
                "ladder encoded",
                extra={
                    "video_id": video_id,
                    "sha256": sha256,
                    "rungs": ",".join(r.name for r in ladder.renditions),
                    "source": f"{ladder.source_width}x{ladder.source_height}",
                    "duration_s": round(ladder.duration_s, 2),
                    "wall_s": round(time.monotonic() - job_started, 2),
                    "encode_s": round(encode_s, 2),
                    "realtime_factor": round(ladder.duration_s / max(1e-6, encode_s), 2),
                    "accel": opts.accel,
                },
            )
            return outputs

    def _progress_writer(self, sha256: str) -> ProgressHook:
        last = {"at": 0.0, "pct": -1}

        async def write(pct: int) -> None:
            now = time.monotonic()
            if pct == last["pct"] or now - last["at"] < self.settings.transcode_progress_interval_s:
                return
            last.update(at=now, pct=pct)
            await store.write_progress(self.db, sha256, pct)

        return write

    async def _store(self, sha256: str, out: Path, renditions: list[Rendition]) -> Outputs:
        """Upload every output under a prefix of this run; the master playlist last."""
        prefix = f"assets/{sha256}/{uuid.uuid4().hex[:12]}/"
        files = await asyncio.to_thread(_output_files, out)
        gate = asyncio.Semaphore(self.settings.transcode_upload_concurrency)

        async def put(path: Path) -> str:
            key = prefix + path.relative_to(out).as_posix()
            async with gate:
                data = await asyncio.to_thread(path.read_bytes)
                await self.objects.put(key, data, content_type=content_type_for(key))
            return key

        try:
            keys = await asyncio.gather(*(put(p) for p in files))
            master_key = await put(out / MASTER_PLAYLIST)
        except BaseException:
            await self._delete_prefix(prefix)
            raise
        stills = sorted(k for k in keys if k.startswith(prefix + STILLS_DIR + "/"))
        return Outputs(
            master_key=master_key,
            poster_key=prefix + POSTER_NAME,
            still_keys=stills,
            renditions=[
                r.model_copy(update={"playlist_key": prefix + r.playlist_key}) for r in renditions
            ],
        )

    async def _delete_prefix(self, prefix: str) -> None:
        with contextlib.suppress(Exception):
            async for info in self.objects.list_objects(prefix):
                await self.objects.delete(info.key)

    # -- outcomes --------------------------------------------------------------------------
    async def _finalize(self, sha256: str, outputs: Outputs) -> bool:
        """Flip the asset and all its waiting videos to ready in one transaction,
        if our lease still holds. Returns False when another worker took over."""
        ids = await store.finalize_asset(
            self.db,
            self.lease,
            sha256,
            self.worker_id,
            master_key=outputs.master_key,
            poster_key=outputs.poster_key,
            still_keys=outputs.still_keys,
            renditions=outputs.renditions,
        )
        if ids is None:
            return False
        await announce_outcomes(self.db, self.publisher, ids)
        return True

    async def _fail(self, sha256: str, reason: str) -> None:
        ids = await store.fail_asset(self.db, self.lease, sha256, self.worker_id, reason)
        log.warning("transcode failed", extra={"sha256": sha256, "videos": ids, "reason": reason})
        await announce_outcomes(self.db, self.publisher, ids)
