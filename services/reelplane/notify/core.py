"""The rules of notifications, pure: who hears about an event, and how a
user's log reads as groups ("ada and 12 others liked your video").

Nothing here does I/O. The consumer (`reelplane.notify.consumer`) resolves an
event's audience (a video's owner, a creator's followers) and persists; the API
groups what it reads from the log with `group_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from reelplane.events.envelope import (
    CommentCreated,
    Event,
    UserFollowed,
    VideoLiked,
    VideoReady,
)

#: Longest comment excerpt a notification carries (characters).
EXCERPT_CHARS = 140
DAY_MS = 86_400_000


class Kind(StrEnum):
    LIKE = "like"  # someone liked your video
    COMMENT = "comment"  # someone commented on your video
    FOLLOW = "follow"  # someone followed you
    POST = "post"  # a creator you follow posted a video


class Notification(BaseModel):
    """One row of a user's log; `id` is the event's id (replays overwrite it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: Kind
    actor_id: str
    video_id: str | None = None
    comment_id: str | None = None
    text: str = Field("", max_length=EXCERPT_CHARS)
    at_ms: int = Field(ge=0, description="When the event happened, ms since the epoch")


class Audience(StrEnum):
    VIDEO_OWNER = "video_owner"  # the owner of `Notice.subject`
    USER = "user"  # `Notice.subject` itself
    FOLLOWERS = "followers"  # the followers of `Notice.subject`


@dataclass(frozen=True)
class Notice:
    """What an event tells whom: the notification, and the audience to resolve."""

    notification: Notification
    audience: Audience
    subject: str  # a video id (VIDEO_OWNER) or a user id


def notice_of(event: Event) -> Notice | None:
    """The notice an event gives rise to; None for events nobody is told about
    (views, unlikes, deletions, account changes)."""
    at_ms = int(event.occurred_at.timestamp() * 1000)
    if isinstance(event, VideoLiked):
        p = event.payload
        n = Notification(
            id=event.id, kind=Kind.LIKE, actor_id=p.user_id, video_id=p.video_id, at_ms=at_ms
        )
        return Notice(n, Audience.VIDEO_OWNER, p.video_id)
    if isinstance(event, CommentCreated):
        c = event.payload
        n = Notification(
            id=event.id,
            kind=Kind.COMMENT,
            actor_id=c.user_id,
            video_id=c.video_id,
            comment_id=c.comment_id,
            text=excerpt(c.text),
            at_ms=at_ms,
        )
        return Notice(n, Audience.VIDEO_OWNER, c.video_id)
    if isinstance(event, UserFollowed):
        f = event.payload
        n = Notification(id=event.id, kind=Kind.FOLLOW, actor_id=f.follower_id, at_ms=at_ms)
        return Notice(n, Audience.USER, f.followee_id)
    if isinstance(event, VideoReady):
        v = event.payload
        n = Notification(
            id=event.id, kind=Kind.POST, actor_id=v.owner_id, video_id=v.video_id, at_ms=at_ms
        )
        return Notice(n, Audience.FOLLOWERS, v.owner_id)
    return None


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first `limit` characters of a comment, on one line, with an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "\u2026"


def recipients(notification: Notification, audience: list[str]) -> list[str]:
    """Who gets the notification: the audience, once each, never its own actor."""
    return [u for u in dict.fromkeys(audience) if u != notification.actor_id]


# -- reading: groups ---------------------------------------------------------------
def group_key(n: Notification) -> tuple[str, ...]:
    """Rows with one key (in one day) read as one group: likes and comments per
    video, follows together; each post stands alone."""
    day = str(n.at_ms // DAY_MS)
    if n.kind is Kind.POST:
        return (n.kind, n.id)
    if n.kind is Kind.FOLLOW:
        return (n.kind, day)
    return (n.kind, n.video_id or "", day)


@dataclass
class Group:
    """Notifications that read as one line, newest first."""

    members: list[Notification] = field(default_factory=list)
    unread: bool = False

    @property
    def newest(self) -> Notification:
        return self.members[0]

    def actors(self) -> list[str]:
        """Distinct actors, most recent first."""
        return list(dict.fromkeys(m.actor_id for m in self.members))


@dataclass(frozen=True)
class GroupedPage:
    groups: list[Group]
    consumed: int  # how many of the given rows the groups hold (the cursor goes after them)


def group_rows(
    rows: list[Notification], limit: int, is_unread: set[str] | None = None
) -> GroupedPage:
    """Group rows (newest first) into at most `limit` groups. Rows are taken in
    order until one would open group number limit+1: every group then holds
    exactly the rows newer than the page's cursor, and the next page continues
    after the last row taken (an older run of a group reads as its own line)."""
    unread = is_unread or set()
    groups: dict[tuple[str, ...], Group] = {}
    taken = 0
    for row in rows:
        key = group_key(row)
        group = groups.get(key)
        if group is None:
            if len(groups) == limit:
                break
            group = groups[key] = Group()
        group.members.append(row)
        group.unread = group.unread or row.id in unread
        taken += 1
    return GroupedPage(list(groups.values()), taken)


def summary(kind: Kind, actor_names: list[str], actor_count: int) -> str:
    """The group's line: "ada liked your video", "ada and 12 others liked your video"."""
    verb = {
        Kind.LIKE: "liked your video",
        Kind.COMMENT: "commented on your video",
        Kind.FOLLOW: "started following you",
        Kind.POST: "posted a new video",
    }[kind]
    first = actor_names[0] if actor_names else "someone"
    others = actor_count - 1
    if others <= 0:
        return f"{first} {verb}"
    if others == 1 and len(actor_names) > 1:
        return f"{first} and {actor_names[1]} {verb}"
    return f"{first} and {others} others {verb}"
