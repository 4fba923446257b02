"""Read paths that need no timeline: one creator's videos (the profile grid),
one video as a feed item (a deep link), and the public feed a visitor who is
not signed in browses (trending, then fresh)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import select

from reelplane.backends import Backends
from reelplane.engagement.trending import top_trending
from reelplane.errors import NotFound
from reelplane.feed.context import FeedContext
from reelplane.feed.items import FeedItem, FeedPage, hydrate, load_videos
from reelplane.http.cursors import decode_cursor, encode_cursor
from reelplane.schema import videos
from reelplane.videos.model import VideoState

#: At most this share of a public page's first page is trending videos.
PUBLIC_TRENDING_SHARE = 0.5


class NewestCursor(BaseModel):
    """A position in a newest-first listing of ready videos."""

    ts: int
    id: str


class PublicCursor(NewestCursor):
    #: The trending videos the first page showed (left out of the fresh ones).
    seen: list[str] = Field(default_factory=list, max_length=50)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _before_bound(ts_ms: int) -> datetime:
    # Coarse bound in SQL (stored precision differs per backend), exact one in Python.
    return datetime.fromtimestamp(ts_ms / 1000, UTC) + timedelta(milliseconds=1)


async def newest_ready(
    backends: Backends,
    *,
    owner_id: str | None,
    before: NewestCursor | None,
    limit: int,
    exclude: frozenset[str] = frozenset(),
) -> list[tuple[int, str]]:
    """(ready_ms, video_id) of ready videos (of owner_id, or everyone's), newest
    first, strictly after `before`, at most limit + 1 (the extra one says more exist)."""
    query = select(videos.c.id, videos.c.ready_at).where(videos.c.state == VideoState.READY)
    if owner_id is not None:
        query = query.where(videos.c.owner_id == owner_id)
    if before is not None:
        query = query.where(videos.c.ready_at < _before_bound(before.ts))
    # Slack for the rows the coarse bound lets through (the cursor's own, ties).
    slack = 8 if before is not None else 0
    query = query.order_by(videos.c.ready_at.desc(), videos.c.id.desc()).limit(
        limit + 1 + len(exclude) + slack
    )
    async with backends.database.connect() as conn:
        rows = (await conn.execute(query)).all()
    found = [(_ms(r.ready_at), r.id) for r in rows if r.ready_at is not None]
    if before is not None:
        found = [(ts, vid) for ts, vid in found if (ts, vid) < (before.ts, before.id)]
    return [f for f in found if f[1] not in exclude][: limit + 1]


async def _page(backends: Backends, ids: list[str], viewer_id: str | None) -> list[FeedItem]:
    cards = await load_videos(backends, ids)
    return await hydrate(backends, [cards[v] for v in ids if v in cards], viewer_id)


async def creator_videos(
    backends: Backends, owner_id: str, viewer_id: str | None, cursor: str | None, limit: int
) -> FeedPage:
    """One page of a creator's ready videos, newest first."""
    before = decode_cursor(NewestCursor, cursor) if cursor else None
    found = await newest_ready(backends, owner_id=owner_id, before=before, limit=limit)
    shown = found[:limit]
    next_cursor = (
        encode_cursor(NewestCursor(ts=shown[-1][0], id=shown[-1][1]))
        if len(found) > limit
        else None
    )
    return FeedPage(
        items=await _page(backends, [v for _, v in shown], viewer_id), next_cursor=next_cursor
    )


async def video_item(backends: Backends, video_id: str, viewer_id: str | None) -> FeedItem:
    """A ready video as a feed item (creator, counters, the viewer's like)."""
    items = await _page(backends, [video_id], viewer_id)
    if not items:
        raise NotFound(f"no ready video {video_id}")
    return items[0]


async def public_page(
    backends: Backends, ctx: FeedContext, viewer_id: str | None, cursor: str | None, limit: int
) -> FeedPage:
    """The visitors' feed: the first page opens with trending videos (at most
    half of it), then every page continues with the newest ready videos, never
    repeating a trending one shown before."""
    position = decode_cursor(PublicCursor, cursor) if cursor else None
    trending: list[str] = []
    share = int(limit * PUBLIC_TRENDING_SHARE)
    if position is None and share > 0:
        engagement = ctx.engagement
        top = await top_trending(
            backends.cache,
            now_ms=int(time.time() * 1000),
            window_s=engagement.trending_window_s,
            bucket_s=engagement.trending_bucket_s,
            limit=share,
        )
        cards = await load_videos(backends, [v for v, _ in top])
        trending = [v for v, _ in top if v in cards]
    seen = frozenset(position.seen if position else trending)
    want = limit - len(trending)
    found = await newest_ready(backends, owner_id=None, before=position, limit=want, exclude=seen)
    fresh = found[:want]
    more = len(found) > want
    last = fresh[-1] if fresh else None
    next_cursor = (
        encode_cursor(PublicCursor(ts=last[0], id=last[1], seen=sorted(seen)))
        if more and last is not None
        else None
    )
    ids = trending + [v for _, v in fresh]
    return FeedPage(items=await _page(backends, ids, viewer_id), next_cursor=next_cursor)
