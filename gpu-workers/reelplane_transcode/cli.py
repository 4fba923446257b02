"""`reelplane worker transcode`: run the transcode worker alone (as its
Deployment does on a GPU node)."""

from __future__ import annotations

import asyncio
import signal

import click

from reelplane.clitools import one_line_errors


@click.group("worker")
def worker() -> None:
    """Run a worker outside the HTTP services."""


@worker.command("transcode")
@one_line_errors
def transcode() -> None:
    """Consume `uploads` and transcode each video to its HLS ladder until stopped
    (SIGINT/SIGTERM)."""
    from reelplane.backends import open_backends
    from reelplane.logs import configure_logging
    from reelplane.settings import load_settings
    from reelplane.upload.ffprobe import ensure_ffmpeg
    from reelplane_transcode.worker import TranscodeWorker

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    ensure_ffmpeg()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        backends = await open_backends(settings)
        try:
            click.echo("reelplane: transcode worker consuming 'uploads'", err=True)
            await TranscodeWorker(backends).run(stop)
        finally:
            await backends.close()

    asyncio.run(run())
