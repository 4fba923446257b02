"""`reelplane notify ...`: notify's batch jobs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import click

from reelplane.clitools import one_line_errors
from reelplane.errors import ConfigError, ReelplaneError
from reelplane.settings import load_section, load_settings


@click.group("notify")
def notify_group() -> None:
    """Notifications: digests by mail (REELPLANE_MAIL_URL)."""


def _instant(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError("--at", f"not an ISO 8601 time: {value!r}") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@notify_group.command("digest")
@click.option(
    "--period",
    type=click.Choice(["daily", "weekly"]),
    default=None,
    help="What the digest covers (REELPLANE_DIGEST_PERIOD; default weekly).",
)
@click.option(
    "--at",
    "at",
    default=None,
    metavar="TIME",
    help="Run as if it were this ISO 8601 time (UTC unless it says): the digest covers "
    "the last complete period before it. Default now.",
)
@click.option(
    "--shards",
    type=click.IntRange(1, 65_536),
    default=None,
    help="Split the users over this many runs, by user id (REELPLANE_DIGEST_SHARDS; default 1).",
)
@click.option(
    "--shard-index",
    type=click.IntRange(0),
    default=0,
    envvar="JOB_COMPLETION_INDEX",
    show_default=True,
    help="Which of the --shards runs this is, from 0 (an Indexed Job's JOB_COMPLETION_INDEX).",
)
@one_line_errors
def digest(period: str | None, at: str | None, shards: int | None, shard_index: int) -> None:
    """Send each user (with an e-mail address and digests on) the digest of the
    last complete period: new followers, their top videos, creators to follow.
    A rerun within the same period sends nothing twice."""
    from reelplane.backends import make_mailer, open_backends
    from reelplane.logs import configure_logging
    from reelplane.notify.digest import DigestPeriod
    from reelplane.notify.digest_job import DigestRun, run_digests
    from reelplane.notify.settings import NotifySettings

    settings = load_settings()
    notify = load_section(NotifySettings)
    when = _instant(at)
    shards = shards or notify.digest_shards
    if shard_index >= shards:
        raise ConfigError("--shard-index", f"{shard_index} is not below --shards {shards}")
    configure_logging(settings.log_format, settings.log_level)

    async def go() -> DigestRun:
        backends = await open_backends(settings)
        mailer = make_mailer(settings)
        try:
            return await run_digests(
                backends,
                mailer,
                notify,
                at=when,
                period=DigestPeriod(period) if period else None,
                shard=(shard_index, shards),
            )
        finally:
            await mailer.close()
            await backends.close()

    run = asyncio.run(go())
    click.echo(f"reelplane: {run.summary()}")
    if run.failed:
        raise ReelplaneError(
            f"{len(run.failed)} digests were not accepted by the mail server "
            "(REELPLANE_MAIL_URL); the next run tries them again"
        )
