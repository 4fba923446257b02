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
    """Consume `uploads` (REELPLANE_TRANSCODE_TOPIC) and transcode each video to its
    HLS ladder until stopped (SIGINT/SIGTERM)."""
    from reelplane.backends import open_backends
    from reelplane.logs import configure_logging
    from reelplane.media.ffprobe import ensure_ffmpeg
    from reelplane.settings import load_section, load_settings
    from reelplane_transcode.settings import TranscodeSettings, load_ladder
    from reelplane_transcode.worker import TranscodeWorker

    settings = load_settings()
    transcode_settings = load_section(TranscodeSettings)
    load_ladder(transcode_settings)  # a bad ladder file is refused before connecting
    configure_logging(settings.log_format, settings.log_level)
    ensure_ffmpeg(transcode_settings.ffmpeg_path, transcode_settings.ffprobe_path)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        backends = await open_backends(settings)
        try:
            topic, group = transcode_settings.transcode_topic, transcode_settings.transcode_group
            click.echo(
                f"reelplane: transcode worker consuming {topic!r} in group {group!r}", err=True
            )
            await TranscodeWorker(backends, transcode_settings).run(stop)
        finally:
            await backends.close()

    asyncio.run(run())
