"""Digests, the pure part: which period a run covers, whom to suggest, which
videos lead, and the message itself. Plain data in, plain data out; the job
(`reelplane.notify.digest_job`) gathers the data and sends.

A run covers the last complete period before its time (a day from midnight
UTC, or a week from Monday 00:00 UTC), so every run within the same period
builds the same digest, and the send record makes a rerun a no-op.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from enum import StrEnum

from reelplane.ports.mail import MailMessage


class DigestPeriod(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


#: The word a subject uses for each period ("Your Reelplane week").
_PERIOD_WORD = {DigestPeriod.DAILY: "day", DigestPeriod.WEEKLY: "week"}
#: Longest caption (characters) a digest quotes.
CAPTION_CHARS = 60


@dataclass(frozen=True)
class Window:
    """A digest's period: `start` <= t < `end`, aware UTC datetimes."""

    kind: DigestPeriod
    start: datetime
    end: datetime


def window_before(at: datetime, kind: DigestPeriod) -> Window:
    """The last complete period that ends at or before `at` (aware), in UTC: for
    a daily digest the UTC day before `at`'s day, for a weekly one the
    Monday-to-Monday UTC week before `at`'s week."""
    if at.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    midnight = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind is DigestPeriod.DAILY:
        return Window(kind, midnight - timedelta(days=1), midnight)
    monday = midnight - timedelta(days=midnight.weekday())
    return Window(kind, monday - timedelta(days=7), monday)


#: Hex digits of the user id that shards split on (65,536 slices).
SHARD_DIGITS = 4


def shard_bounds(index: int, count: int) -> tuple[str | None, str | None]:
    """The user ids shard `index` of `count` takes: lo <= id < hi (None: no bound).
    Ids are lowercase hex (uuid4), so equal slices of their first digits give
    shards of about the same size; together the shards cover every id once."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in 0..{count - 1}")
    space = 16**SHARD_DIGITS
    if count > space:
        raise ValueError(f"at most {space} shards")

    def edge(i: int) -> str:
        return f"{i * space // count:0{SHARD_DIGITS}x}"

    return (edge(index) if index > 0 else None, edge(index + 1) if index < count - 1 else None)


@dataclass(frozen=True)
class Person:
    handle: str
    display_name: str = ""


@dataclass(frozen=True)
class VideoStats:
    """One of the user's videos: likes it got in the period, views in all (views
    carry no time, so they are the running total)."""

    video_id: str
    caption: str
    likes_in_period: int
    views: int


@dataclass(frozen=True)
class Suggestion:
    """A creator to suggest; `followed_by` people the user follows follow them
    (0: suggested for being popular)."""

    creator: Person
    followed_by: int


@dataclass(frozen=True)
class DigestData:
    """Everything one user's digest says, gathered by the job."""

    user: Person
    window: Window
    new_followers: Sequence[Person]
    new_follower_count: int
    top_videos: Sequence[VideoStats]
    suggestions: Sequence[Suggestion]


@dataclass(frozen=True)
class DigestContent:
    subject: str
    text: str


def top_videos(stats: Sequence[VideoStats], limit: int) -> list[VideoStats]:
    """The `limit` videos with the most likes in the period, then the most views;
    a video with neither is not a top video."""
    active = [s for s in stats if s.likes_in_period > 0 or s.views > 0]
    ranked = sorted(active, key=lambda s: (-s.likes_in_period, -s.views, s.video_id))
    return ranked[:limit]


def suggest_creators(
    user_id: str,
    followees: set[str],
    followees_follow: Mapping[str, set[str]],
    popular: Sequence[str],
    limit: int,
) -> list[tuple[str, int]]:
    """Creators to suggest, as (creator id, how many of the user's followees follow
    them): first those the user's followees follow most (friends of friends), then
    `popular` ones (most followed first) to fill up. Never the user, never someone
    the user already follows, never twice."""
    counts: Counter[str] = Counter()
    for followee in followees:
        for creator in followees_follow.get(followee, set()):
            if creator != user_id and creator not in followees:
                counts[creator] += 1
    picked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    chosen = {c for c, _ in picked}
    for creator in popular:
        if len(picked) >= limit:
            break
        if creator != user_id and creator not in followees and creator not in chosen:
            picked.append((creator, 0))
            chosen.add(creator)
    return picked


def _clean(text: str) -> str:
    """One line of user text: control characters and newlines become spaces."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def _person(p: Person) -> str:
    name = _clean(p.display_name)
    return f"@{p.handle} ({name})" if name and name.lower() != p.handle else f"@{p.handle}"


def _caption(v: VideoStats) -> str:
    caption = _clean(v.caption)
    if not caption:
        return f"Untitled video {v.video_id[:8]}"
    if len(caption) > CAPTION_CHARS:
        caption = caption[: CAPTION_CHARS - 1].rstrip() + "…"
    return f'"{caption}"'


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def build_digest(data: DigestData) -> DigestContent | None:
    """The digest's subject and plain-text body; None when nothing happened to the
    user in the period (no new follower, no video liked or viewed): suggestions
    alone are no reason to write."""
    videos = list(data.top_videos)
    if data.new_follower_count == 0 and not videos:
        return None
    word = _PERIOD_WORD[data.window.kind]
    likes = sum(v.likes_in_period for v in videos)
    news = []
    if data.new_follower_count:
        news.append(_plural(data.new_follower_count, "new follower"))
    if likes:
        news.append(_plural(likes, "new like"))
    subject = f"Your Reelplane {word}: {', '.join(news) or 'your videos are being watched'}"

    last_day = data.window.end - timedelta(days=1)
    span = (
        f"{data.window.start:%a %d %b %Y}"
        if data.window.kind is DigestPeriod.DAILY
        else f"{data.window.start:%d %b} to {last_day:%d %b %Y}"
    )
    hello = _clean(data.user.display_name) or f"@{data.user.handle}"
    lines = [f"Hi {hello},", "", f"Here is your Reelplane {word} ({span}, UTC).", ""]
    if data.new_follower_count:
        lines.append(f"New followers ({data.new_follower_count})")
        lines += [f"  {_person(p)}" for p in data.new_followers]
        more = data.new_follower_count - len(data.new_followers)
        if more > 0:
            lines.append(f"  and {more} more")
        lines.append("")
    if videos:
        lines.append("Your top videos")
        for i, v in enumerate(videos, 1):
            lines.append(
                f"  {i}. {_caption(v)}: {_plural(v.likes_in_period, 'new like')}, "
                f"{_plural(v.views, 'view')} in all"
            )
        lines.append("")
    if data.suggestions:
        lines.append("Creators you might like")
        for s in data.suggestions:
            people = "person" if s.followed_by == 1 else "people"
            why = (
                f"followed by {s.followed_by} {people} you follow"
                if s.followed_by
                else "popular on Reelplane"
            )
            lines.append(f"  {_person(s.creator)}: {why}")
        lines.append("")
    lines += [
        "--",
        "You get this digest because digests are on for your account.",
        'To stop them, set "digest_enabled": false in your account settings (PATCH /v1/me).',
    ]
    return DigestContent(subject=subject, text="\n".join(lines) + "\n")


def digest_message(
    content: DigestContent, *, user_id: str, to: str, sender: str, window: Window
) -> MailMessage:
    """The mail for one user's digest of `window`. Its Message-ID is fixed by user
    and period, so a resent digest is recognisably the same message."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "reelplane.local"
    return MailMessage(
        sender=sender,
        to=to,
        subject=content.subject,
        text=content.text,
        message_id=f"digest.{window.kind}.{window.end:%Y%m%d}.{user_id}@{domain}",
        headers=(("Auto-Submitted", "auto-generated"),),
    )
