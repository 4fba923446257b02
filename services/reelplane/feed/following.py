"""The Following feed's read path: the reader's timeline (pushed) merged with
celebrity and recently followed creators' videos (pulled), newest first."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import select

from reelplane.backends import Backends
from reelplane.feed import timelines
from reelplane.feed.context import FeedContext
from reelplane.feed.core import Position, TimelineEntry, merge_following, pull_sources
from reelplane.feed.items import FeedPage, hydrate, load_videos
from reelplane.graph import store as graph_store
from reelplane.http.cursors import decode_cursor, encode_cursor
from reelplane.schema import videos
from reelplane.videos.model import VideoState

#: Timeline reads per page at most (each skips entries of unfollowed creators).
MAX_ROUNDS = 4


class FollowingCursor(BaseModel):
    ts: int
    id: str


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def _pulled(
    backends: Backends, creators: set[str], before: Position | None, limit: int
) -> list[TimelineEntry]:
    if not creators:
        return []
    query = select(videos.c.id, videos.c.owner_id, videos.c.ready_at).where(
        videos.c.owner_id.in_(creators), videos.c.state == VideoState.READY
    )
    if before is not None:
        # Coarse bound in SQL (stored precision differs per backend), exact one in Python.
        bound = datetime.fromtimestamp(before.ts_ms / 1000, UTC) + timedelta(milliseconds=1)
        query = query.where(videos.c.ready_at < bound)
    query = query.order_by(videos.c.ready_at.desc(), videos.c.id.desc()).limit(limit + 1)
    async with backends.database.connect() as conn:
        rows = (await conn.execute(query)).all()
    entries = [TimelineEntry(_ms(r.ready_at), r.id, r.owner_id) for r in rows if r.ready_at]
    return [e for e in entries if before is None or e.position < before]


async def following_page(
    backends: Backends, ctx: FeedContext, user_id: str, cursor: str | None, limit: int
) -> FeedPage:
    """One page of Following for user_id, strictly after the cursor."""
    before: Position | None = None
    if cursor:
        c = decode_cursor(FollowingCursor, cursor)
        before = Position(c.ts, c.id)
    followed_at = await graph_store.followee_ids(backends.database, user_id)
    followees = set(followed_at)
    if not followees:
        return FeedPage(items=[], next_cursor=None)
    counts = await graph_store.follower_counts(backends.database, list(followees))
    pull_from = pull_sources(
        {k: _ms(v) for k, v in followed_at.items()},
        counts,
        celebrity_threshold=ctx.graph.celebrity_follower_threshold,
        now_ms=int(time.time() * 1000),
        recent_follow_ms=ctx.feed.feed_recent_follow_pull_s * 1000,
    )
    pulled = await _pulled(backends, pull_from, before, limit)
    # Read the timeline until the page is full: entries of creators unfollowed
    # since they were pushed are skipped, not shown.
    pushed: list[TimelineEntry] = []
    scanned_to: Position | None = None  # oldest timeline entry read, when not all were
    for _ in range(MAX_ROUNDS):
        chunk = await timelines.read(
            backends.widerow, user_id, before=scanned_to or before, limit=limit * 2
        )
        pushed += chunk
        if len(chunk) < limit * 2:
            scanned_to = None
            break
        scanned_to = chunk[-1].position
        page = merge_following(pushed, pulled, followees=followees, before=before, limit=limit)
        if len(page) >= limit:
            break
    if scanned_to is not None:
        # Older pulled entries wait for the next page, after the rest of the timeline.
        pulled = [e for e in pulled if not e.position < scanned_to]
    chosen = merge_following(pushed, pulled, followees=followees, before=before, limit=limit)
    last: Position | None = None
    if len(chosen) == limit:
        last = chosen[-1].position
    elif scanned_to is not None:
        last = scanned_to
    cards = await load_videos(backends, [e.video_id for e in chosen])
    shown = [cards[e.video_id] for e in chosen if e.video_id in cards]
    items = await hydrate(backends, shown, user_id)
    next_cursor = encode_cursor(FollowingCursor(ts=last.ts_ms, id=last.video_id)) if last else None
    return FeedPage(items=items, next_cursor=next_cursor)
