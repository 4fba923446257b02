"""The digest job (`reelplane notify digest`): for every user with an e-mail
address and digests on, gather the period's news, build the digest (pure,
`reelplane.notify.digest`) and hand it to the mail port.

Once per user and period: a `digest_sends` row is claimed before the send and
stamped after it, so a rerun of the same period sends nothing again. A send that
fails drops its claim (the next run tries again); a claim a crash left unsent is
taken over after REELPLANE_DIGEST_CLAIM_TTL_S.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import true

from reelplane.backends import Backends
from reelplane.engagement.store import true_counts
from reelplane.events.envelope import utc_now
from reelplane.graph.store import find_user, followee_ids, followees_of, list_edges
from reelplane.notify.digest import (
    DigestData,
    DigestPeriod,
    Person,
    Suggestion,
    VideoStats,
    Window,
    build_digest,
    digest_message,
    shard_bounds,
    suggest_creators,
    top_videos,
    window_before,
)
from reelplane.notify.settings import NotifySettings
from reelplane.ports.mail import Mailer
from reelplane.schema import digest_sends, follows, likes, users, videos
from reelplane.videos.model import VideoState

log = structlog.get_logger("reelplane.notify.digest")

#: Followees whose own follows are read for suggestions (the most recent ones).
SUGGESTION_FOLLOWEES = 200
#: Most followed creators read as the fallback suggestions.
POPULAR_POOL = 50


@dataclass(frozen=True)
class Recipient:
    user_id: str
    handle: str
    display_name: str
    email: str


@dataclass
class DigestRun:
    """What one run did, user by user."""

    window: Window
    shard: tuple[int, int] = (0, 1)
    sent: list[str] = field(default_factory=list)  # user ids
    already_sent: int = 0
    nothing_new: int = 0
    in_progress: int = 0
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        index, count = self.shard
        of = f" (shard {index + 1} of {count})" if count > 1 else ""
        return (
            f"{self.window.kind} digests{of} for {self.window.start:%Y-%m-%d} to "
            f"{self.window.end:%Y-%m-%d} (UTC): {len(self.sent)} sent, "
            f"{self.already_sent} already sent, {self.nothing_new} with nothing new, "
            f"{self.in_progress} claimed by another run, {len(self.failed)} failed"
        )


async def recipient_batches(
    backends: Backends, batch: int, shard: tuple[int, int] = (0, 1)
) -> AsyncIterator[list[Recipient]]:
    """Every user of `shard` (index, count) with an e-mail address and digests on,
    `batch` at a time in id order."""
    lo, hi = shard_bounds(*shard)
    bounds = [users.c.id >= lo] if lo is not None else []
    bounds += [users.c.id < hi] if hi is not None else []
    after = ""
    while True:
        async with backends.database.connect() as conn:
            rows = (
                await conn.execute(
                    select(users.c.id, users.c.handle, users.c.display_name, users.c.email)
                    .where(
                        users.c.email.is_not(None),
                        users.c.digest_enabled == true(),
                        users.c.id > after,
                        *bounds,
                    )
                    .order_by(users.c.id)
                    .limit(batch)
                )
            ).all()
        if rows:
            yield [Recipient(r.id, r.handle, r.display_name, r.email) for r in rows]
        if len(rows) < batch:
            return
        after = rows[-1].id


async def _last_sent_end(conn: AsyncConnection, user_id: str, before: datetime) -> datetime | None:
    """End of the user's last digest sent for a period before `before`."""
    got = await conn.scalar(
        select(func.max(digest_sends.c.period_end)).where(
            digest_sends.c.user_id == user_id,
            digest_sends.c.sent_at.is_not(None),
            digest_sends.c.period_end < before,
        )
    )
    return got if isinstance(got, datetime) else None


async def _new_followers(
    conn: AsyncConnection, user_id: str, since: datetime, end: datetime, shown: int
) -> tuple[list[Person], int]:
    """The newest `shown` followers who followed in [since, end), and how many did."""
    edges = await list_edges(
        conn, user_id, direction="followers", before=(end, ""), limit=max(shown, 1)
    )
    named = [Person(e.user.handle, e.user.display_name) for e in edges if e.followed_at >= since]
    count = await conn.scalar(
        select(func.count()).where(
            follows.c.followee_id == user_id,
            follows.c.created_at >= since,
            follows.c.created_at < end,
        )
    )
    return named[:shown], int(count or 0)


async def _video_stats(backends: Backends, user_id: str, window: Window) -> list[VideoStats]:
    """The user's ready videos that got likes in the window or became ready in it."""
    async with backends.database.connect() as conn:
        liked_rows = await conn.execute(
            select(likes.c.video_id, func.count())
            .join(videos, videos.c.id == likes.c.video_id)
            .where(
                videos.c.owner_id == user_id,
                videos.c.state == VideoState.READY,
                likes.c.created_at >= window.start,
                likes.c.created_at < window.end,
            )
            .group_by(likes.c.video_id)
        )
        liked = {str(video_id): int(n) for video_id, n in liked_rows}
        rows = (
            await conn.execute(
                select(videos.c.id, videos.c.caption).where(
                    videos.c.owner_id == user_id,
                    videos.c.state == VideoState.READY,
                    or_(
                        videos.c.id.in_(list(liked)),
                        and_(videos.c.ready_at >= window.start, videos.c.ready_at < window.end),
                    ),
                )
            )
        ).all()
    if not rows:
        return []
    counts = await true_counts(backends.database, [r.id for r in rows])
    return [
        VideoStats(r.id, r.caption, int(liked.get(r.id, 0)), counts.get(r.id, {}).get("views", 0))
        for r in rows
    ]


async def _suggestions(backends: Backends, user_id: str, limit: int) -> list[Suggestion]:
    if limit <= 0:
        return []
    following = await followee_ids(backends.database, user_id)
    recent = sorted(following, key=lambda f: following[f], reverse=True)[:SUGGESTION_FOLLOWEES]
    their_follows = await followees_of(backends.database, recent)
    async with backends.database.connect() as conn:
        popular = [
            r.id
            for r in await conn.execute(
                select(users.c.id)
                .where(users.c.follower_count > 0)
                .order_by(users.c.follower_count.desc(), users.c.id)
                .limit(POPULAR_POOL)
            )
        ]
        picked = suggest_creators(user_id, set(following), their_follows, popular, limit)
        out = []
        for creator_id, followed_by in picked:
            summary = await find_user(conn, creator_id)
            out.append(Suggestion(Person(summary.handle, summary.display_name), followed_by))
    return out


async def gather(
    backends: Backends, who: Recipient, window: Window, settings: NotifySettings
) -> DigestData:
    """Everything `who`'s digest for `window` says, read from the stores."""
    async with backends.database.connect() as conn:
        since = await _last_sent_end(conn, who.user_id, window.end) or window.start
        followers, count = await _new_followers(
            conn, who.user_id, since, window.end, settings.digest_followers_shown
        )
    stats = await _video_stats(backends, who.user_id, window)
    return DigestData(
        user=Person(who.handle, who.display_name),
        window=window,
        new_followers=followers,
        new_follower_count=count,
        top_videos=top_videos(stats, settings.digest_top_videos),
        suggestions=await _suggestions(backends, who.user_id, settings.digest_suggestions),
    )


async def _claim(backends: Backends, who: Recipient, window: Window, ttl_s: int) -> str:
    """Claim `who`'s digest of `window`: "claimed", "sent" (already) or "busy"
    (another run claimed it less than `ttl_s` ago)."""
    now = utc_now()
    row = {
        "user_id": who.user_id,
        "period_end": window.end,
        "period_start": window.start,
        "claimed_at": now,
        "sent_at": None,
    }
    key = and_(digest_sends.c.user_id == who.user_id, digest_sends.c.period_end == window.end)
    async with backends.database.transaction() as conn:
        if await backends.database.insert_if_absent(conn, digest_sends, row):
            return "claimed"
        held = (
            await conn.execute(select(digest_sends.c.claimed_at, digest_sends.c.sent_at).where(key))
        ).one()
        if held.sent_at is not None:
            return "sent"
        if held.claimed_at > now - timedelta(seconds=ttl_s):
            return "busy"
        taken = await conn.execute(
            update(digest_sends)
            .where(key, digest_sends.c.claimed_at == held.claimed_at)
            .values(claimed_at=now)
        )
        return "claimed" if taken.rowcount == 1 else "busy"


async def _already_sent(backends: Backends, who: Recipient, window: Window) -> bool:
    async with backends.database.connect() as conn:
        sent_at = await conn.scalar(
            select(digest_sends.c.sent_at).where(
                digest_sends.c.user_id == who.user_id, digest_sends.c.period_end == window.end
            )
        )
    return sent_at is not None


async def run_digests(
    backends: Backends,
    mailer: Mailer,
    settings: NotifySettings,
    *,
    at: datetime | None = None,
    period: DigestPeriod | None = None,
    shard: tuple[int, int] = (0, 1),
) -> DigestRun:
    """Send each user's digest of the last complete period before `at` (now); only
    the users of `shard` = (index, count) when the work is split over several runs."""
    window = window_before(at or utc_now(), period or settings.digest_period)
    run = DigestRun(window, shard)
    async for batch in recipient_batches(backends, settings.digest_batch, shard):
        for who in batch:
            await _one(backends, mailer, settings, who, run)
    return run


async def _one(
    backends: Backends, mailer: Mailer, settings: NotifySettings, who: Recipient, run: DigestRun
) -> None:
    """`who`'s digest of `run.window`: built, claimed, sent, recorded in `run`."""
    window = run.window
    key_of = digest_sends.c
    if await _already_sent(backends, who, window):
        run.already_sent += 1
        return
    content = build_digest(await gather(backends, who, window, settings))
    if content is None:
        run.nothing_new += 1
        return
    state = await _claim(backends, who, window, settings.digest_claim_ttl_s)
    if state == "sent":
        run.already_sent += 1
        return
    if state == "busy":
        run.in_progress += 1
        return
    key = and_(key_of.user_id == who.user_id, key_of.period_end == window.end)
    message = digest_message(
        content, user_id=who.user_id, to=who.email, sender=settings.digest_from, window=window
    )
    try:
        await mailer.send(message)
    except Exception as exc:
        log.warning("digest.send_failed", user_id=who.user_id, error=str(exc)[:200])
        async with backends.database.transaction() as conn:
            await conn.execute(delete(digest_sends).where(key, key_of.sent_at.is_(None)))
        run.failed.append(who.user_id)
        return
    async with backends.database.transaction() as conn:
        await conn.execute(update(digest_sends).where(key).values(sent_at=utc_now()))
    run.sent.append(who.user_id)
    log.info("digest.sent", user_id=who.user_id, period_end=window.end.isoformat())
