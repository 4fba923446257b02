"""Feed items: everything a client needs to show a video, in one response.

`load_videos` reads the ready videos (with creator and asset) in one query;
`media_urls` is the one place that turns an asset into playback and thumbnail
URLs (the upload service's `playback_urls`); `hydrate` adds counters and the
viewer's likes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select

from reelplane.backends import Backends
from reelplane.engagement.counters import read_counters
from reelplane.engagement.store import liked_among
from reelplane.gateway.settings import load_section
from reelplane.schema import users, video_assets, videos
from reelplane.upload.playback import playback_urls
from reelplane.upload.settings import UploadSettings


@dataclass(frozen=True)
class VideoCard:
    """A ready video's metadata, as the feed reads it from the relational store."""

    video_id: str
    creator_id: str
    creator_handle: str
    creator_display_name: str
    caption: str
    hashtags: tuple[str, ...]
    duration_ms: int | None
    ready_at: datetime
    master_playlist_key: str | None
    poster_key: str | None

    @property
    def ready_ms(self) -> int:
        return int(self.ready_at.timestamp() * 1000)


class Creator(BaseModel):
    user_id: str
    handle: str
    display_name: str


class ItemCounters(BaseModel):
    likes: int
    comments: int
    views: int


class FeedItem(BaseModel):
    video_id: str
    playback_url: str | None
    thumbnail_url: str | None
    caption: str
    hashtags: list[str]
    duration_ms: int | None
    ready_at: datetime
    creator: Creator
    counters: ItemCounters
    viewer_liked: bool


class FeedPage(BaseModel):
    items: list[FeedItem]
    next_cursor: str | None


_origin_base: str | None = None


def media_urls(card: VideoCard) -> tuple[str | None, str | None]:
    """(playback URL of the master playlist, thumbnail URL) of a video, at the
    origin (the edge PoP choice belongs to the upload service's video endpoint)."""
    global _origin_base
    if _origin_base is None:
        _origin_base = load_section(UploadSettings).playback_origin_base
    urls = playback_urls(
        {"master_playlist_key": card.master_playlist_key, "poster_key": card.poster_key},
        origin_base=_origin_base,
    )
    return urls.master_playlist_url, urls.poster_url


async def load_videos(backends: Backends, video_ids: list[str]) -> dict[str, VideoCard]:
    """The ready videos among video_ids (deleted, failed or unknown ones are left out)."""
    if not video_ids:
        return {}
    query = (
        select(
            videos.c.id,
            videos.c.owner_id,
            videos.c.caption,
            videos.c.hashtags,
            videos.c.duration_ms,
            videos.c.ready_at,
            users.c.handle,
            users.c.display_name,
            video_assets.c.master_playlist_key,
            video_assets.c.poster_key,
        )
        .join(users, users.c.id == videos.c.owner_id)
        .outerjoin(video_assets, video_assets.c.sha256 == videos.c.asset_sha256)
        .where(videos.c.id.in_(set(video_ids)), videos.c.state == "ready")
    )
    async with backends.database.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {
        r.id: VideoCard(
            video_id=r.id,
            creator_id=r.owner_id,
            creator_handle=r.handle,
            creator_display_name=r.display_name,
            caption=r.caption,
            hashtags=tuple(str(t).lower() for t in (r.hashtags or [])),
            duration_ms=r.duration_ms,
            ready_at=r.ready_at,
            master_playlist_key=r.master_playlist_key,
            poster_key=r.poster_key,
        )
        for r in rows
        if r.ready_at is not None
    }


async def hydrate(
    backends: Backends, cards: list[VideoCard], viewer_id: str | None
) -> list[FeedItem]:
    """Feed items for cards, in their order: counters from the cache (one round
    trip) and whether the viewer likes each (one query)."""
    ids = [c.video_id for c in cards]
    counters = await read_counters(backends.cache, ids)
    liked = await liked_among(backends.database, viewer_id, ids) if viewer_id else set()
    items = []
    for card in cards:
        playback, thumbnail = media_urls(card)
        c = counters[card.video_id]
        items.append(
            FeedItem(
                video_id=card.video_id,
                playback_url=playback,
                thumbnail_url=thumbnail,
                caption=card.caption,
                hashtags=list(card.hashtags),
                duration_ms=card.duration_ms,
                ready_at=card.ready_at,
                creator=Creator(
                    user_id=card.creator_id,
                    handle=card.creator_handle,
                    display_name=card.creator_display_name,
                ),
                counters=ItemCounters(likes=c.likes, comments=c.comments, views=c.views),
                viewer_liked=card.video_id in liked,
            )
        )
    return items
