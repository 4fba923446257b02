"""Engagement's relational queries: visible videos, likes, comments, view totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reelplane import keyset
from reelplane.errors import NotFound
from reelplane.events import outbox
from reelplane.events.envelope import Event, utc_now
from reelplane.ports.relational import Database
from reelplane.schema import comments, likes, processed_events, users, video_views, videos
from reelplane.videos.model import VideoState


@dataclass(frozen=True)
class VisibleVideo:
    video_id: str
    owner_id: str
    duration_ms: int | None


@dataclass(frozen=True)
class CommentRow:
    comment_id: str
    video_id: str
    user_id: str
    handle: str
    text: str
    created_at: datetime


async def visible_video(conn: AsyncConnection, video_id: str) -> VisibleVideo:
    """A ready video; NotFound (404) for unknown, unfinished or deleted ones."""
    row = (
        await conn.execute(
            select(videos.c.owner_id, videos.c.duration_ms).where(
                videos.c.id == video_id, videos.c.state == VideoState.READY
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no video {video_id!r}")
    return VisibleVideo(video_id, row.owner_id, row.duration_ms)


async def like(db: Database, user_id: str, video_id: str, event: Event | None = None) -> bool:
    """Record the like (and stage `event` in the outbox with it); True when it is new."""
    async with db.transaction() as conn:
        created = await db.insert_if_absent(
            conn, likes, {"user_id": user_id, "video_id": video_id, "created_at": utc_now()}
        )
        if created and event is not None:
            await outbox.stage(conn, event)
        return created


async def unlike(db: Database, user_id: str, video_id: str, event: Event | None = None) -> bool:
    """Remove the like (and stage `event` with it); True when there was one."""
    async with db.transaction() as conn:
        result = await conn.execute(
            delete(likes).where(likes.c.user_id == user_id, likes.c.video_id == video_id)
        )
        removed = bool(result.rowcount)
        if removed and event is not None:
            await outbox.stage(conn, event)
        return removed


async def liked_among(db: Database, user_id: str, video_ids: list[str]) -> set[str]:
    """Which of video_ids the user likes."""
    if not video_ids:
        return set()
    async with db.connect() as conn:
        rows = await conn.execute(
            select(likes.c.video_id).where(
                likes.c.user_id == user_id, likes.c.video_id.in_(video_ids)
            )
        )
        return {r.video_id for r in rows}


async def add_comment(db: Database, row: dict[str, object], event: Event | None = None) -> None:
    """Store the comment (and stage `event` with it)."""
    async with db.transaction() as conn:
        await conn.execute(comments.insert().values(**row))
        if event is not None:
            await outbox.stage(conn, event)


async def comment_owner(conn: AsyncConnection, comment_id: str) -> tuple[str, str]:
    """(author id, video id) of a live comment; NotFound otherwise."""
    found = (
        await conn.execute(
            select(comments.c.user_id, comments.c.video_id).where(
                comments.c.id == comment_id, comments.c.deleted_at.is_(None)
            )
        )
    ).first()
    if found is None:
        raise NotFound(f"no comment {comment_id!r}")
    return found.user_id, found.video_id


async def soft_delete_comment(conn: AsyncConnection, comment_id: str) -> bool:
    result = await conn.execute(
        update(comments)
        .where(comments.c.id == comment_id, comments.c.deleted_at.is_(None))
        .values(deleted_at=utc_now())
    )
    return bool(result.rowcount)


async def list_comments(
    conn: AsyncConnection, video_id: str, *, before: tuple[datetime, str] | None, limit: int
) -> list[CommentRow]:
    """Live comments of a video, newest first, strictly after the cursor position."""
    query = (
        select(
            comments.c.id,
            comments.c.user_id,
            comments.c.text,
            comments.c.created_at,
            users.c.handle,
        )
        .join(users, users.c.id == comments.c.user_id)
        .where(comments.c.video_id == video_id, comments.c.deleted_at.is_(None))
    )
    if before is not None:
        at, cid = before
        query = query.where(keyset.before(comments.c.created_at, comments.c.id, at, cid))
    query = query.order_by(comments.c.created_at.desc(), comments.c.id.desc()).limit(limit)
    return [
        CommentRow(r.id, video_id, r.user_id, r.handle, r.text, r.created_at)
        for r in await conn.execute(query)
    ]


async def add_view_once(db: Database, ledger: str, event_id: str, video_id: str) -> bool:
    """Add one view to the video's durable total unless this event already did
    (the ledger row and the increment commit together: exactly once)."""
    async with db.transaction() as conn:
        exists = (await conn.execute(select(videos.c.id).where(videos.c.id == video_id))).first()
        if exists is None:
            return False
        first = await db.insert_if_absent(
            conn,
            processed_events,
            {"consumer": ledger, "event_id": event_id, "processed_at": utc_now()},
        )
        if not first:
            return False
        await db.insert_if_absent(conn, video_views, {"video_id": video_id, "views": 0})
        await conn.execute(
            update(video_views)
            .where(video_views.c.video_id == video_id)
            .values(views=video_views.c.views + 1)
        )
        return True


async def true_counts(db: Database, video_ids: list[str] | None) -> dict[str, dict[str, int]]:
    """Counters from the source of truth, for the given videos or every video:
    {video_id: {"likes": n, "comments": n, "views": n}}."""
    async with db.connect() as conn:
        ids_query = select(videos.c.id)
        if video_ids is not None:
            ids_query = ids_query.where(videos.c.id.in_(video_ids))
        ids = [r.id for r in await conn.execute(ids_query)]
        out = {vid: {"likes": 0, "comments": 0, "views": 0} for vid in ids}
        if not ids:
            return out
        like_rows = await conn.execute(
            select(likes.c.video_id, func.count())
            .where(likes.c.video_id.in_(ids))
            .group_by(likes.c.video_id)
        )
        for vid, n in like_rows:
            out[vid]["likes"] = int(n)
        comment_rows = await conn.execute(
            select(comments.c.video_id, func.count())
            .where(comments.c.video_id.in_(ids), comments.c.deleted_at.is_(None))
            .group_by(comments.c.video_id)
        )
        for vid, n in comment_rows:
            out[vid]["comments"] = int(n)
        view_rows = await conn.execute(
            select(video_views.c.video_id, video_views.c.views).where(
                video_views.c.video_id.in_(ids)
            )
        )
        for vid, n in view_rows:
            out[vid]["views"] = int(n)
        return out
