"""Graph HTTP API: profiles with counts and tier, follow / unfollow, listings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from reelplane.auth import CurrentUser, MaybeUser
from reelplane.backends import Backends
from reelplane.events import outbox
from reelplane.events.envelope import FollowPayload, UserFollowed, UserUnfollowed
from reelplane.graph import store
from reelplane.graph.core import CreatorTier, check_follow, creator_tier
from reelplane.graph.settings import GraphSettings
from reelplane.http.cursors import decode_cursor, encode_cursor
from reelplane.http.deps import BackendsDep, section
from reelplane.http.services import Service

router = APIRouter(prefix="/v1/users", tags=["graph"])

PageSize = Annotated[int, Query(ge=1, le=100)]


class Profile(BaseModel):
    user_id: str
    handle: str
    display_name: str
    followers: int
    following: int
    tier: CreatorTier
    viewer_follows: bool | None = None  # None when the caller is anonymous


class FollowState(BaseModel):
    following: bool
    changed: bool  # False when the call found it already so (idempotent)


class UserItem(BaseModel):
    user_id: str
    handle: str
    display_name: str
    followed_at: datetime


class UserPage(BaseModel):
    items: list[UserItem]
    next_cursor: str | None


class EdgeCursor(BaseModel):
    at: datetime
    id: str


GraphSettingsDep = Annotated[GraphSettings, Depends(section(GraphSettings))]


@router.get("/{ref}", response_model=Profile, summary="A user's profile, counts and tier")
async def profile(
    ref: str, viewer: MaybeUser, backends: BackendsDep, graph: GraphSettingsDep
) -> Profile:
    """`ref` is a user id or a handle."""
    async with backends.database.connect() as conn:
        user = await store.find_user(conn, ref)
        follows = await store.is_following(conn, viewer.user_id, user.user_id) if viewer else None
    threshold = graph.celebrity_follower_threshold
    return Profile(
        user_id=user.user_id,
        handle=user.handle,
        display_name=user.display_name,
        followers=user.follower_count,
        following=user.following_count,
        tier=creator_tier(user.follower_count, threshold),
        viewer_follows=follows,
    )


@router.put("/{ref}/follow", response_model=FollowState, summary="Follow (idempotent)")
async def follow(ref: str, user: CurrentUser, backends: BackendsDep) -> FollowState:
    async with backends.database.connect() as conn:
        target = await store.find_user(conn, ref)
    check_follow(user.user_id, target.user_id)
    event = UserFollowed(
        key=user.user_id,
        payload=FollowPayload(follower_id=user.user_id, followee_id=target.user_id),
    )
    changed = await store.follow(backends.database, user.user_id, target.user_id, event)
    if changed:
        await outbox.flush(backends.database, backends.bus, [event])
    return FollowState(following=True, changed=changed)


@router.delete("/{ref}/follow", response_model=FollowState, summary="Unfollow (idempotent)")
async def unfollow(ref: str, user: CurrentUser, backends: BackendsDep) -> FollowState:
    async with backends.database.connect() as conn:
        target = await store.find_user(conn, ref)
    check_follow(user.user_id, target.user_id)
    event = UserUnfollowed(
        key=user.user_id,
        payload=FollowPayload(follower_id=user.user_id, followee_id=target.user_id),
    )
    changed = await store.unfollow(backends.database, user.user_id, target.user_id, event)
    if changed:
        await outbox.flush(backends.database, backends.bus, [event])
    return FollowState(following=False, changed=changed)


async def _listing(
    backends: Backends,
    ref: str,
    direction: Literal["followers", "following"],
    cursor: str | None,
    limit: int,
) -> UserPage:
    position = decode_cursor(EdgeCursor, cursor) if cursor else None
    async with backends.database.connect() as conn:
        user = await store.find_user(conn, ref)
        edges = await store.list_edges(
            conn,
            user.user_id,
            direction=direction,
            before=(position.at, position.id) if position else None,
            limit=limit + 1,  # one more tells whether there is a next page
        )
    page, more = edges[:limit], len(edges) > limit
    items = [
        UserItem(
            user_id=e.user.user_id,
            handle=e.user.handle,
            display_name=e.user.display_name,
            followed_at=e.followed_at,
        )
        for e in page
    ]
    next_cursor = (
        encode_cursor(EdgeCursor(at=page[-1].followed_at, id=page[-1].user.user_id))
        if more
        else None
    )
    return UserPage(items=items, next_cursor=next_cursor)


@router.get("/{ref}/followers", response_model=UserPage, summary="Followers, newest first")
async def followers(
    ref: str, backends: BackendsDep, cursor: str | None = None, limit: PageSize = 20
) -> UserPage:
    return await _listing(backends, ref, "followers", cursor, limit)


@router.get("/{ref}/following", response_model=UserPage, summary="Following, newest first")
async def following(
    ref: str, backends: BackendsDep, cursor: str | None = None, limit: PageSize = 20
) -> UserPage:
    return await _listing(backends, ref, "following", cursor, limit)


SERVICE = Service("graph", routers=[router], background=[outbox.run_relay])
