"""Engagement HTTP API: likes, comments, views, watch events, counters,
trending and watch history. Every write publishes its event on `engagement`."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from reelplane.auth import CurrentUser, ensure_owner
from reelplane.backends import Backends
from reelplane.engagement import store
from reelplane.engagement.consumers import consume_engagement
from reelplane.engagement.core import clean_comment
from reelplane.engagement.counters import read_counters
from reelplane.engagement.history import history_page
from reelplane.engagement.likes_version import bump_likes_version
from reelplane.engagement.settings import EngagementSettings
from reelplane.engagement.tables import TABLES
from reelplane.engagement.trending import top_trending
from reelplane.errors import InvalidInput
from reelplane.events import outbox
from reelplane.events.envelope import (
    CommentCreated,
    CommentCreatedPayload,
    CommentDeleted,
    CommentDeletedPayload,
    VideoLiked,
    VideoLikePayload,
    VideoUnliked,
    VideoViewed,
    VideoViewedPayload,
    VideoWatched,
    VideoWatchedPayload,
    utc_now,
)
from reelplane.events.publisher import EventPublisher
from reelplane.http.cursors import decode_cursor, encode_cursor
from reelplane.http.deps import BackendsDep, section
from reelplane.http.services import Service
from reelplane.http.tables import tables_ready
from reelplane.ports.widerow import Clustering

router = APIRouter(prefix="/v1", tags=["engagement"])

PageSize = Annotated[int, Query(ge=1, le=100)]


class LikeState(BaseModel):
    liked: bool
    changed: bool  # False when it already was so (idempotent)


class NewComment(BaseModel):
    # One length rule, checked after cleaning (`clean_comment`); the request
    # body limit (REELPLANE_HTTP_MAX_BODY_BYTES) bounds what is parsed.
    text: str = Field(
        min_length=1,
        description="Plain text, at most REELPLANE_COMMENT_MAX_CHARS characters (default "
        "500) once surrounding whitespace and control characters are removed",
    )


class CommentOut(BaseModel):
    comment_id: str
    video_id: str
    user_id: str
    handle: str
    text: str = Field(
        description="The comment as written (plain text, not HTML: clients render it as "
        "text, never as markup)"
    )
    created_at: datetime


class CommentPage(BaseModel):
    items: list[CommentOut]
    next_cursor: str | None


class Watch(BaseModel):
    watched_ms: int = Field(ge=0, le=24 * 3600 * 1000, description="Milliseconds watched")
    duration_ms: int | None = Field(
        None, gt=0, description="The video's length in ms (default: the video's own)"
    )


class Accepted(BaseModel):
    accepted: bool = True


class CountersOut(BaseModel):
    video_id: str
    likes: int
    comments: int
    views: int


class TrendingItem(BaseModel):
    video_id: str
    points: float


class HistoryItem(BaseModel):
    video_id: str
    watched_at_ms: int
    watched_ms: int
    duration_ms: int
    completed: bool


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_cursor: str | None


class TimeCursor(BaseModel):
    at: datetime
    id: str


class RowCursor(BaseModel):
    ts: int
    item: str


EngagementSettingsDep = Annotated[EngagementSettings, Depends(section(EngagementSettings))]


async def _require_video(backends: Backends, video_id: str) -> store.VisibleVideo:
    async with backends.database.connect() as conn:
        return await store.visible_video(conn, video_id)


@router.put("/videos/{video_id}/like", response_model=LikeState, summary="Like (idempotent)")
async def like(video_id: str, user: CurrentUser, backends: BackendsDep) -> LikeState:
    await _require_video(backends, video_id)
    payload = VideoLikePayload(user_id=user.user_id, video_id=video_id)
    event = VideoLiked(key=user.user_id, payload=payload)
    changed = await store.like(backends.database, user.user_id, video_id, event)
    # Cached feed pages of this user say who likes what: out of date now.
    await bump_likes_version(backends.cache, user.user_id)
    if changed:
        await outbox.flush(backends.database, backends.bus, [event])
    return LikeState(liked=True, changed=changed)


@router.delete("/videos/{video_id}/like", response_model=LikeState, summary="Unlike")
async def unlike(video_id: str, user: CurrentUser, backends: BackendsDep) -> LikeState:
    await _require_video(backends, video_id)
    payload = VideoLikePayload(user_id=user.user_id, video_id=video_id)
    event = VideoUnliked(key=user.user_id, payload=payload)
    changed = await store.unlike(backends.database, user.user_id, video_id, event)
    await bump_likes_version(backends.cache, user.user_id)
    if changed:
        await outbox.flush(backends.database, backends.bus, [event])
    return LikeState(liked=False, changed=changed)


@router.post(
    "/videos/{video_id}/comments", status_code=201, response_model=CommentOut, summary="Comment"
)
async def add_comment(
    video_id: str,
    body: NewComment,
    user: CurrentUser,
    backends: BackendsDep,
    settings: EngagementSettingsDep,
) -> CommentOut:
    """Stored and returned as plain text (length-limited); clients escape it."""
    text = clean_comment(body.text, settings.comment_max_chars)
    await _require_video(backends, video_id)
    comment_id, now = uuid.uuid4().hex, utc_now()
    event = CommentCreated(
        key=user.user_id,
        payload=CommentCreatedPayload(
            comment_id=comment_id, user_id=user.user_id, video_id=video_id, text=text
        ),
    )
    await store.add_comment(
        backends.database,
        {
            "id": comment_id,
            "video_id": video_id,
            "user_id": user.user_id,
            "text": text,
            "created_at": now,
        },
        event,
    )
    await outbox.flush(backends.database, backends.bus, [event])
    return CommentOut(
        comment_id=comment_id,
        video_id=video_id,
        user_id=user.user_id,
        handle=user.handle,
        text=text,
        created_at=now,
    )


@router.get("/videos/{video_id}/comments", response_model=CommentPage, summary="Comments")
async def list_comments(
    video_id: str, backends: BackendsDep, cursor: str | None = None, limit: PageSize = 20
) -> CommentPage:
    position = decode_cursor(TimeCursor, cursor) if cursor else None
    async with backends.database.connect() as conn:
        await store.visible_video(conn, video_id)
        rows = await store.list_comments(
            conn,
            video_id,
            before=(position.at, position.id) if position else None,
            limit=limit + 1,
        )
    page = rows[:limit]
    return CommentPage(
        items=[
            CommentOut(
                comment_id=r.comment_id,
                video_id=r.video_id,
                user_id=r.user_id,
                handle=r.handle,
                text=r.text,
                created_at=r.created_at,
            )
            for r in page
        ],
        next_cursor=(
            encode_cursor(TimeCursor(at=page[-1].created_at, id=page[-1].comment_id))
            if len(rows) > limit
            else None
        ),
    )


@router.delete("/comments/{comment_id}", status_code=204, summary="Delete a comment (author)")
async def delete_comment(comment_id: str, user: CurrentUser, backends: BackendsDep) -> Response:
    async with backends.database.transaction() as conn:
        author, video_id = await store.comment_owner(conn, comment_id)
        ensure_owner(user, author, "comment")
        event = CommentDeleted(
            key=user.user_id,
            payload=CommentDeletedPayload(
                comment_id=comment_id, user_id=user.user_id, video_id=video_id
            ),
        )
        deleted = await store.soft_delete_comment(conn, comment_id)
        if deleted:
            await outbox.stage(conn, event)
    if deleted:
        await outbox.flush(backends.database, backends.bus, [event])
    return Response(status_code=204)


@router.post(
    "/videos/{video_id}/views", status_code=202, response_model=Accepted, summary="Count a view"
)
async def view(video_id: str, user: CurrentUser, backends: BackendsDep) -> Accepted:
    await _require_video(backends, video_id)
    await EventPublisher(backends.bus).publish(
        VideoViewed(
            key=user.user_id, payload=VideoViewedPayload(user_id=user.user_id, video_id=video_id)
        )
    )
    return Accepted()


@router.post(
    "/videos/{video_id}/watch", status_code=202, response_model=Accepted, summary="Watch event"
)
async def watch(video_id: str, body: Watch, user: CurrentUser, backends: BackendsDep) -> Accepted:
    """Report how long the caller watched (`watched_ms` of `duration_ms`)."""
    video = await _require_video(backends, video_id)
    duration_ms = video.duration_ms or body.duration_ms
    if not duration_ms:
        raise InvalidInput("duration_ms is required: the video's length is not known yet")
    payload = VideoWatchedPayload(
        user_id=user.user_id,
        video_id=video_id,
        watched_ms=body.watched_ms,
        duration_ms=duration_ms,
    )
    await EventPublisher(backends.bus).publish(VideoWatched(key=user.user_id, payload=payload))
    return Accepted()


@router.get("/videos/{video_id}/counters", response_model=CountersOut, summary="Counters")
async def counters(video_id: str, backends: BackendsDep) -> CountersOut:
    """Likes, comments and views from the cache (eventually consistent)."""
    await _require_video(backends, video_id)
    c = (await read_counters(backends.cache, [video_id]))[video_id]
    return CountersOut(video_id=video_id, likes=c.likes, comments=c.comments, views=c.views)


@router.get("/trending", response_model=list[TrendingItem], summary="Trending videos")
async def trending(
    backends: BackendsDep, s: EngagementSettingsDep, limit: PageSize = 20
) -> list[TrendingItem]:
    """Likes + completions over the sliding window (30 minutes by default)."""
    top = await top_trending(
        backends.cache,
        now_ms=int(time.time() * 1000),
        window_s=s.trending_window_s,
        bucket_s=s.trending_bucket_s,
        limit=limit,
    )
    return [TrendingItem(video_id=v, points=p) for v, p in top]


@router.get(
    "/me/history",
    response_model=HistoryPage,
    summary="My watch history",
    dependencies=[Depends(tables_ready(TABLES))],
)
async def history(
    user: CurrentUser, backends: BackendsDep, cursor: str | None = None, limit: PageSize = 20
) -> HistoryPage:
    position = decode_cursor(RowCursor, cursor) if cursor else None
    rows = await history_page(
        backends.widerow,
        user.user_id,
        before=Clustering(position.ts, position.item) if position else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    return HistoryPage(
        items=[
            HistoryItem(
                video_id=row.item,
                watched_at_ms=row.ts,
                watched_ms=rec.watched_ms,
                duration_ms=rec.duration_ms,
                completed=rec.completed,
            )
            for row, rec in page
        ],
        next_cursor=(
            encode_cursor(RowCursor(ts=page[-1][0].ts, item=page[-1][0].item))
            if len(rows) > limit
            else None
        ),
    )


SERVICE = Service(
    "engagement",
    routers=[router],
    background=[consume_engagement, outbox.run_relay],
)
