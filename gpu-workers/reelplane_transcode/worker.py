"""The transcode worker: a consumer of `uploads` (group `transcode`; both set by
`REELPLANE_TRANSCODE_TOPIC`/`_GROUP`, e.g. to a TranscodePool's).

`run_worker(backends, stop)` is the BackgroundTask that `reelplane dev` and
`reelplane worker transcode` run. Each `video.uploaded` is handled by
`TranscodeJob`; the offset is committed only after the video is ready or
failed, one event at a time, so a killed worker's job is redelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from reelplane.backends import Backends
from reelplane.events.dedup import RelationalDeduplicator
from reelplane.events.envelope import Event, VideoUploaded
from reelplane.events.runner import ConsumerRunner, RetryPolicy
from reelplane_transcode.job import TranscodeJob
from reelplane_transcode.settings import TranscodeSettings

log = logging.getLogger(__name__)


def worker_id() -> str:
    """A name for this worker's leases: host, pid and a random suffix (<= 64 chars)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class TranscodeWorker:
    """Consumes the uploads topic in its group and runs one transcode job at a time."""

    def __init__(self, backends: Backends, settings: TranscodeSettings | None = None) -> None:
        self.backends = backends
        self.settings = settings or TranscodeSettings()
        self.job = TranscodeJob(backends, self.settings, worker_id())
        self.runner = ConsumerRunner(
            backends.bus,
            topics=[self.settings.transcode_topic],
            group=self.settings.transcode_group,
            handler=self.handle,
            dedup=RelationalDeduplicator(backends.database),
            retry=RetryPolicy(max_attempts=backends.settings.consumer_max_attempts),
            batch_size=1,
        )

    async def handle(self, event: Event) -> None:
        if isinstance(event, VideoUploaded):
            await self.job.handle(event)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; a job in progress is then abandoned (its
        lease released, its event left uncommitted for another worker)."""
        consuming = asyncio.ensure_future(self.runner.run(stop))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({consuming, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not consuming.done():
                # Give the runner one poll cycle to leave cleanly between events.
                done, _ = await asyncio.wait({consuming}, timeout=1.0)
                if not done:
                    consuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consuming
        finally:
            stopping.cancel()
            if not consuming.done():
                consuming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consuming


async def run_worker(backends: Backends, stop: asyncio.Event) -> None:
    """BackgroundTask entry point (see `reelplane.http.services.WORKERS`)."""
    from reelplane.media.ffprobe import install_ffmpeg

    settings = TranscodeSettings()
    # Shared with the upload janitor's: one install per process, one across processes.
    await install_ffmpeg(settings.ffmpeg_path, settings.ffprobe_path)
    await TranscodeWorker(backends, settings).run(stop)
