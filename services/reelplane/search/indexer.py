"""The search indexer: keeps the index in step with `videos`, `accounts`, `graph`
and `engagement`.

Each event names what changed; the handler reads that thing's current state
from the relational store (and its counters from the cache) and writes it to
the index whole. So replays, duplicates and out-of-order delivery converge on
the same index: a deleted or never-ready video is removed, whatever came first.
Likes and comments refresh a video's counters (its popularity) at once. Views
are the bulk of engagement, so they are coalesced: a viewed video is noted and
re-read once per `COUNTER_REFRESH_S`, however many views it got. Counter events
also note their video for that later re-read, because the counters live in the
cache, written by the engagement consumer, which may not have counted the event
yet when the indexer reads them. (The API shows counters read from the cache at
request time; the index's copy only ranks.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass

from sqlalchemy import select

from reelplane.backends import Backends, open_search
from reelplane.engagement.counters import read_counters
from reelplane.events.envelope import (
    CommentCreated,
    CommentDeleted,
    Event,
    UserCreated,
    UserFollowed,
    UserUnfollowed,
    UserUpdated,
    VideoDeleted,
    VideoFailed,
    VideoLiked,
    VideoReady,
    VideoUnliked,
    VideoViewed,
)
from reelplane.events.runner import Handler
from reelplane.ports.search import SearchIndex, UserDoc, VideoDoc
from reelplane.schema import users, videos
from reelplane.videos.model import VideoState

log = logging.getLogger(__name__)

INDEXER_GROUP = "search-indexer"
INDEXER_TOPICS = ["videos", "accounts", "graph", "engagement"]
#: How often videos whose counters changed are re-read into the index (seconds).
COUNTER_REFRESH_S = 10.0
#: Videos re-read per refresh round at most (the rest wait for the next round).
COUNTER_REFRESH_BATCH = 500


@dataclass(frozen=True)
class Change:
    """What an event asks of the index: re-read a video or a user (by id)."""

    kind: str  # "video" or "user"
    id: str


def changes_of(event: Event) -> list[Change]:
    """The documents an event touches (pure); none for events search ignores."""
    if isinstance(event, VideoReady | VideoDeleted | VideoFailed):
        return [Change("video", event.payload.video_id)]
    if isinstance(event, VideoLiked | VideoUnliked | CommentCreated | CommentDeleted):
        return [Change("video", event.payload.video_id)]
    if isinstance(event, UserCreated | UserUpdated):
        return [Change("user", event.payload.user_id)]
    if isinstance(event, UserFollowed | UserUnfollowed):
        return [Change("user", event.payload.followee_id)]
    return []


def counter_refreshes(event: Event) -> list[str]:
    """Videos whose counters an event changes (pure): re-read them later, once the
    engagement consumer has counted it."""
    if isinstance(event, VideoViewed | VideoLiked | VideoUnliked | CommentCreated | CommentDeleted):
        return [event.payload.video_id]
    return []


class DueRefreshes:
    """Videos due a counter re-read, each once however often it was noted, oldest
    first. In memory: after a restart, a video's views wait for its next event."""

    def __init__(self) -> None:
        self._due: dict[str, None] = {}

    def note(self, video_ids: list[str]) -> None:
        for video_id in video_ids:
            self._due.setdefault(video_id, None)

    def take(self, limit: int) -> list[str]:
        """Up to `limit` videos, no longer due."""
        taken = list(itertools.islice(self._due, limit))
        for video_id in taken:
            del self._due[video_id]
        return taken

    def __len__(self) -> int:
        return len(self._due)


async def load_video(backends: Backends, video_id: str) -> VideoDoc | None:
    """The video as the index should hold it; None unless it is ready."""
    async with backends.database.connect() as conn:
        row = (
            await conn.execute(
                select(
                    videos.c.id,
                    videos.c.owner_id,
                    videos.c.caption,
                    videos.c.hashtags,
                    videos.c.state,
                    videos.c.ready_at,
                    videos.c.created_at,
                    users.c.handle,
                )
                .join(users, users.c.id == videos.c.owner_id)
                .where(videos.c.id == video_id)
            )
        ).first()
    if row is None or row.state != VideoState.READY:
        return None
    counters = (await read_counters(backends.cache, [video_id]))[video_id]
    ready_at = row.ready_at or row.created_at
    return VideoDoc(
        video_id=row.id,
        owner_id=row.owner_id,
        handle=row.handle,
        caption=row.caption,
        hashtags=tuple(row.hashtags or ()),
        ready_at_ms=int(ready_at.timestamp() * 1000),
        likes=counters.likes,
        comments=counters.comments,
        views=counters.views,
    )


async def load_user(backends: Backends, user_id: str) -> UserDoc | None:
    async with backends.database.connect() as conn:
        row = (
            await conn.execute(
                select(
                    users.c.id, users.c.handle, users.c.display_name, users.c.follower_count
                ).where(users.c.id == user_id)
            )
        ).first()
    if row is None:
        return None
    return UserDoc(
        user_id=row.id,
        handle=row.handle,
        display_name=row.display_name,
        followers=int(row.follower_count),
    )


async def apply_change(backends: Backends, index: SearchIndex, change: Change) -> None:
    """Write one document's current state to the index (or remove it)."""
    if change.kind == "video":
        video = await load_video(backends, change.id)
        if video is None:
            await index.delete_video(change.id)
        else:
            await index.upsert_videos([video])
    else:
        user = await load_user(backends, change.id)
        if user is not None:
            await index.upsert_users([user])


def indexer_handler(
    backends: Backends, index: SearchIndex, due: DueRefreshes | None = None
) -> Handler:
    async def handle(event: Event) -> None:
        for change in changes_of(event):
            await apply_change(backends, index, change)
        if due is not None:
            due.note(counter_refreshes(event))

    return handle


async def refresh_due(
    backends: Backends, index: SearchIndex, due: DueRefreshes, *, limit: int = COUNTER_REFRESH_BATCH
) -> int:
    """Re-read up to `limit` due videos into the index; returns how many."""
    video_ids = due.take(limit)
    for done, video_id in enumerate(video_ids):
        try:
            await apply_change(backends, index, Change("video", video_id))
        except BaseException:
            due.note(video_ids[done:])  # still due: the next round re-reads them
            raise
    return len(video_ids)


async def _refresh_loop(
    backends: Backends, index: SearchIndex, due: DueRefreshes, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=COUNTER_REFRESH_S)
        try:
            await refresh_due(backends, index, due)
        except asyncio.CancelledError:
            raise
        except Exception:  # a backend hiccup: the next round re-reads what is still due
            log.exception("counter refresh failed", extra={"due": len(due)})


async def run_indexer(backends: Backends, stop: asyncio.Event) -> None:
    """The indexer's consumer-group member, until `stop` is set."""
    from reelplane.events.consumer import run_consumer

    index = await open_search(backends.settings)
    due = DueRefreshes()
    refresher = asyncio.create_task(_refresh_loop(backends, index, due, stop))
    try:
        await run_consumer(
            backends,
            stop,
            topics=INDEXER_TOPICS,
            group=INDEXER_GROUP,
            handler=indexer_handler(backends, index, due),
        )
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await index.close()


async def reindex_all(
    backends: Backends, index: SearchIndex, *, batch: int = 500
) -> tuple[int, int]:
    """Write every ready video and every user to the index (a backfill: what
    happened before the indexer ran, or an index rebuilt from scratch).
    Returns (videos, users) written."""
    counts = [0, 0]
    last = ""
    while True:  # users, by id
        async with backends.database.connect() as conn:
            rows = (
                await conn.execute(
                    select(users.c.id, users.c.handle, users.c.display_name, users.c.follower_count)
                    .where(users.c.id > last)
                    .order_by(users.c.id)
                    .limit(batch)
                )
            ).all()
        if not rows:
            break
        await index.upsert_users(
            [UserDoc(r.id, r.handle, r.display_name, int(r.follower_count)) for r in rows]
        )
        counts[1] += len(rows)
        last = rows[-1].id
    last = ""
    while True:  # ready videos, by id
        async with backends.database.connect() as conn:
            clips = (
                await conn.execute(
                    select(
                        videos.c.id,
                        videos.c.owner_id,
                        videos.c.caption,
                        videos.c.hashtags,
                        videos.c.ready_at,
                        videos.c.created_at,
                        users.c.handle,
                    )
                    .join(users, users.c.id == videos.c.owner_id)
                    .where(videos.c.id > last, videos.c.state == VideoState.READY)
                    .order_by(videos.c.id)
                    .limit(batch)
                )
            ).all()
        if not clips:
            break
        counters = await read_counters(backends.cache, [r.id for r in clips])
        await index.upsert_videos(
            [
                VideoDoc(
                    video_id=r.id,
                    owner_id=r.owner_id,
                    handle=r.handle,
                    caption=r.caption,
                    hashtags=tuple(r.hashtags or ()),
                    ready_at_ms=int((r.ready_at or r.created_at).timestamp() * 1000),
                    likes=counters[r.id].likes,
                    comments=counters[r.id].comments,
                    views=counters[r.id].views,
                )
                for r in clips
            ]
        )
        counts[0] += len(clips)
        last = clips[-1].id
    await index.refresh()
    return counts[0], counts[1]
