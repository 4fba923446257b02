"""Feed items: everything a client needs to show a video, in one response.

`load_videos` reads the ready videos (with creator and asset) in one query;
`media_urls` is the one place that turns an asset into playback and thumbnail
URLs (the upload service's `playback_urls`); `hydrate` adds counters and the
viewer's likes.

A cached page keeps what stays the same for its viewer over the session (the
cards) and what the viewer likes, as of a likes version
(`reelplane.engagement.likes_version`): `page_template` renders the page with
a gap where each item's counters and `viewer_liked` go, and `fill_page` fills
them in at read time, counters from the values of `COUNTER_TEMPLATES` (the edge
reads them in the same cache round trip as the page).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select

from reelplane.backends import Backends
from reelplane.engagement.core import COUNTER_KINDS, counter_key
from reelplane.engagement.counters import read_counters
from reelplane.engagement.store import liked_among
from reelplane.ports.gate import ITEM_PLACEHOLDER
from reelplane.schema import users, video_assets, videos
from reelplane.settings import load_section
from reelplane.upload.playback import playback_urls
from reelplane.upload.settings import UploadSettings
from reelplane.videos.model import VideoState


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


class FeedCard(BaseModel):
    """What a feed item says that is the same for every viewer, at any moment."""

    video_id: str
    playback_url: str | None
    thumbnail_url: str | None
    caption: str
    hashtags: list[str]
    duration_ms: int | None
    ready_at: datetime
    creator: Creator


class FeedItem(FeedCard):
    # Last in the JSON: `page_template` relies on it.
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
        .where(videos.c.id.in_(set(video_ids)), videos.c.state == VideoState.READY)
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


def feed_card(card: VideoCard) -> FeedCard:
    playback, thumbnail = media_urls(card)
    return FeedCard(
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
    )


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
        c = counters[card.video_id]
        items.append(
            FeedItem(
                **dict(feed_card(card)),
                counters=ItemCounters(likes=c.likes, comments=c.comments, views=c.views),
                viewer_liked=card.video_id in liked,
            )
        )
    return items


# -- cached pages: the cards cached, the counters and the viewer's likes filled in -

#: The keys whose values fill one item of a page template, in `fill_page`'s
#: order: the video's likes, comments and views.
COUNTER_TEMPLATES: tuple[str, ...] = tuple(
    counter_key(ITEM_PLACEHOLDER, kind) for kind in COUNTER_KINDS
)
_PER_ITEM = len(COUNTER_TEMPLATES)
#: A template is %-format bytes (one C call fills it): the page's own "%" are
#: doubled, and each value goes where a "%s" is.
_ITEM_STATE = b',"counters":{"likes":%s,"comments":%s,"views":%s},"viewer_liked":%s}'
_FLAGS = {ord("1"): b"true", ord("0"): b"false"}
#: Counters as INCR writes them, after a space each: the fast path of `fill_page`.
_CANONICAL_COUNTS = re.compile(rb"(?: (?:0|[1-9][0-9]*))+")


def page_template(cards: Sequence[VideoCard], next_cursor: str | None) -> bytes:
    """A `FeedPage`'s JSON with a gap for each item's counters and viewer_liked;
    `fill_page` makes it the bytes pydantic would write for the whole page."""
    items = [
        feed_card(card).model_dump_json().encode()[:-1].replace(b"%", b"%%") + _ITEM_STATE
        for card in cards
    ]
    empty = FeedPage(items=[], next_cursor=next_cursor).model_dump_json().encode()
    head = b'{"items":['
    return head + b",".join(items) + empty[len(head) :].replace(b"%", b"%%")


def _count(raw: bytes) -> bytes:
    """A cached counter as the counters endpoint shows it (`read_counters`)."""
    return str(max(0, int(raw))).encode()


def fill_page(template: bytes, counters: Sequence[bytes | None], liked: bytes) -> bytes | None:
    """The page's JSON: `template` filled with each item's counters (the values
    of `COUNTER_TEMPLATES`, item by item) and whether the viewer likes it
    (`liked`: b"1" or b"0" per item); None when they do not match the template.
    A counter that is not an integer raises ValueError, as `read_counters` does."""
    n = len(liked)
    if len(counters) != n * _PER_ITEM:
        return None
    counts = [b"0" if v is None else v for v in counters]
    if counts and not _CANONICAL_COUNTS.fullmatch(b" " + b" ".join(counts)):
        counts = [_count(v) for v in counts]  # negative, or not written by INCR
    try:
        flags = [_FLAGS[c] for c in liked]
    except KeyError:
        return None
    values: list[bytes] = flags * (_PER_ITEM + 1)
    for k in range(_PER_ITEM):
        values[k :: _PER_ITEM + 1] = counts[k::_PER_ITEM]
    values[_PER_ITEM :: _PER_ITEM + 1] = flags
    try:
        return template % tuple(values)
    except TypeError:  # as many values as gaps, or it is not this page's state
        return None


def counter_keys(video_ids: Sequence[str]) -> list[str]:
    """The keys of `COUNTER_TEMPLATES` for these videos, video by video."""
    return [t.replace(ITEM_PLACEHOLDER, vid) for vid in video_ids for t in COUNTER_TEMPLATES]


async def liked_flags(backends: Backends, viewer_id: str, video_ids: Sequence[str]) -> bytes:
    """Whether the viewer likes each video, as `fill_page` takes it (one query)."""
    liked = await liked_among(backends.database, viewer_id, list(video_ids)) if video_ids else set()
    return b"".join(b"1" if vid in liked else b"0" for vid in video_ids)
