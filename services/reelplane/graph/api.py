"""Graph HTTP API: profiles with counts and tier, follow / unfollow, listings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from reelplane.auth import CurrentUser, MaybeUser
from reelplane.backends import Backends
from reelplane.events import outbox
from reelplane.events.envelope import FollowPayload, UserFollowed, UserUnfollowed
from reelplane.graph import store
from reelplane.graph.core import CreatorTier, check_follow, creator_tier
from reelplane.graph.settings import GraphSettings
from reelplane.http.cursors import decode_cursor, encode_cursor
from reelplane.http.services import Service
from reelplane.settings import load_section

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


def _graph_settings(request: Request) -> GraphSettings:
    state = request.app.state
    if not hasattr(state, "graph_settings"):
        state.graph_settings = load_section(GraphSettings)
    settings: GraphSettings = state.graph_settings
    return settings


def _backends(request: Request) -> Backends:
    backends: Backends = request.app.state.backends
    return backends


@router.get("/{ref}", response_model=Profile, summary="A user's profile, counts and tier")
async def profile(ref: str, request: Request, viewer: MaybeUser) -> Profile:
    """`ref` is a user id or a handle."""
    backends = _backends(request)
    async with backends.database.connect() as conn:
        user = await store.find_user(conn, ref)
        follows = await store.is_following(conn, viewer.user_id, user.user_id) if viewer else None
    threshold = _graph_settings(request).celebrity_follower_threshold
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
async def follow(ref: str, user: CurrentUser, request: Request) -> FollowState:
    backends = _backends(request)
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
async def unfollow(ref: str, user: CurrentUser, request: Request) -> FollowState:
    backends = _backends(request)
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
    request: Request,
    ref: str,
    direction: Literal["followers", "following"],
    cursor: str | None,
    limit: int,
) -> UserPage:
    position = decode_cursor(EdgeCursor, cursor) if cursor else None
    async with _backends(request).database.connect() as conn:
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
    ref: str, request: Request, cursor: str | None = None, limit: PageSize = 20
) -> UserPage:
    return await _listing(request, ref, "followers", cursor, limit)


@router.get("/{ref}/following", response_model=UserPage, summary="Following, newest first")
async def following(
    ref: str, request: Request, cursor: str | None = None, limit: PageSize = 20
) -> UserPage:
    return await _listing(request, ref, "following", cursor, limit)


SERVICE = Service("graph", routers=[router], background=[outbox.run_relay])
