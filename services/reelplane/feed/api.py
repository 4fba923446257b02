"""Feed HTTP API: Following and For You for the signed-in reader, the public
feed for visitors, and a user's videos (the profile grid)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from reelplane.adapters.recommender_http import HttpRecommender
from reelplane.auth import CurrentUser, MaybeUser
from reelplane.engagement.tables import TABLES as ENGAGEMENT_TABLES
from reelplane.errors import InvalidInput, MisdirectedRequest
from reelplane.feed.catalogue import creator_videos, public_page
from reelplane.feed.consumers import consume_completions, consume_fanout, consume_follows
from reelplane.feed.context import FeedContext
from reelplane.feed.following import following_page
from reelplane.feed.foryou import (
    FORYOU_LIMIT_DEFAULT,
    FORYOU_LIMIT_MAX,
    ForYouCursor,
    cached_page,
    cached_page_keys,
    foryou_page,
    page_counters_expansion,
)
from reelplane.feed.items import FeedPage
from reelplane.feed.shards import shard_of
from reelplane.feed.timelines import TIMELINES
from reelplane.graph import store as graph_store
from reelplane.http.cursors import decode_cursor
from reelplane.http.deps import BackendsDep, per_app
from reelplane.http.services import CachedPlan, CachedRead, Service
from reelplane.http.tables import tables_ready
from reelplane.ports.gate import USER_PLACEHOLDER
from reelplane.ports.recommender import Recommender

router = APIRouter(prefix="/v1/feed", tags=["feed"])
users_router = APIRouter(prefix="/v1/users", tags=["feed"])

#: `REELPLANE_RECOMMENDER_URL` for the in-process recommender (`reelplane dev`'s default).
EMBEDDED_RECOMMENDER = "embedded:"


#: The feed's settings (with graph's and engagement's), read once per app.
feed_context = per_app("feed_context", lambda _request: FeedContext.load())
FeedContextDep = Annotated[FeedContext, Depends(feed_context)]


def make_recommender(ctx: FeedContext) -> Recommender | None:
    """The configured recommender client, or None."""
    feed = ctx.feed
    url = feed.recommender_url.strip()
    if url == EMBEDDED_RECOMMENDER:
        from reelplane_ml.embedded import EmbeddedClient

        return EmbeddedClient(timeout_s=feed.recommender_timeout_s)
    return HttpRecommender(url, timeout_s=feed.recommender_timeout_s) if url else None


async def app_recommender(request: Request, ctx: FeedContextDep) -> Recommender | None:
    """The app's recommender client, made once (it keeps its connections)."""
    state = request.app.state
    if not hasattr(state, "recommender"):
        state.recommender = make_recommender(ctx)
    recommender: Recommender | None = state.recommender
    return recommender


RecommenderDep = Annotated[Recommender | None, Depends(app_recommender)]


def ensure_served_here(ctx: FeedContext, user_id: str) -> None:
    """A sharded feed serves only its own users (the gateway routes by the same
    rule); another shard's user gets 421, which says to ask the right one."""
    if not ctx.serves(user_id):
        count = ctx.feed.feed_shard_count
        raise MisdirectedRequest(
            f"this feed is shard {ctx.feed.feed_shard_index} of {count}; the user's feed "
            f"is served by shard {shard_of(user_id, count)}"
        )


@router.get(
    "/following",
    response_model=FeedPage,
    summary="Following feed",
    dependencies=[Depends(tables_ready([TIMELINES]))],
)
async def following(
    user: CurrentUser,
    backends: BackendsDep,
    ctx: FeedContextDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> FeedPage:
    """Videos of the creators you follow, newest first (never cached: a follow
    or unfollow shows on the next read)."""
    ensure_served_here(ctx, user.user_id)
    return await following_page(backends, ctx, user.user_id, cursor, limit)


@router.get(
    "/foryou",
    response_model=FeedPage,
    summary="For You feed",
    responses={200: {"content": {"application/json": {}}}},
    dependencies=[Depends(tables_ready(ENGAGEMENT_TABLES))],
)
async def foryou(
    user: CurrentUser,
    backends: BackendsDep,
    ctx: FeedContextDep,
    recommender: RecommenderDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=FORYOU_LIMIT_MAX)] = FORYOU_LIMIT_DEFAULT,
) -> Response:
    """Recommended videos under the diversity rules; pages are cached for 300 s
    (counters and `viewer_liked` are read fresh every time) and a cursor never
    repeats a video of the pages before it."""
    ensure_served_here(ctx, user.user_id)
    body = await foryou_page(
        backends,
        ctx,
        user.user_id,
        cursor,
        limit,
        recommender=recommender,
    )
    return Response(content=body, media_type="application/json")


@router.get("/public", response_model=FeedPage, summary="Public feed (no sign-in needed)")
async def public(
    viewer: MaybeUser,
    backends: BackendsDep,
    ctx: FeedContextDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> FeedPage:
    """What a visitor who is not signed in browses: the first page opens with
    trending videos (at most half of it), then every page continues with the
    newest ready videos; no video repeats along a cursor. With a session,
    `viewer_liked` is the caller's."""
    return await public_page(
        backends,
        ctx,
        viewer.user_id if viewer else None,
        cursor,
        limit,
    )


@users_router.get("/{ref}/videos", response_model=FeedPage, summary="A user's videos, newest first")
async def user_videos(
    ref: str,
    viewer: MaybeUser,
    backends: BackendsDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 18,
) -> FeedPage:
    """The ready videos of a user (`ref`: a user id or a handle) as feed items,
    newest first, with cursor paging: a profile's grid, and the vertical player
    it opens. No sign-in needed; with a session `viewer_liked` is the caller's."""
    async with backends.database.connect() as conn:
        owner = await graph_store.find_user(conn, ref)
    return await creator_videos(
        backends, owner.user_id, viewer.user_id if viewer else None, cursor, limit
    )


def foryou_cached_plan(query: Mapping[str, str]) -> CachedPlan | None:
    """The edge's plan for a For You request (`CachedRead`): the page-cache keys
    (with the viewer's likes version) and, read with them, the page's counters;
    None for a query the route must answer (bad limit or cursor: its 422/400)."""
    try:
        limit = int(query.get("limit", FORYOU_LIMIT_DEFAULT))
        cursor = query.get("cursor")
        position = decode_cursor(ForYouCursor, cursor) if cursor else None
    except (ValueError, InvalidInput):
        return None
    if not 1 <= limit <= FORYOU_LIMIT_MAX:
        return None
    return CachedPlan(
        keys=cached_page_keys(USER_PLACEHOLDER, position, limit),
        answer=lambda values: cached_page(position, limit, values),
        expand=page_counters_expansion(position),
    )


SERVICE = Service(
    "feed",
    routers=[router, users_router],
    background=[consume_fanout, consume_follows, consume_completions],
    cached_reads=[CachedRead("/v1/feed/foryou", foryou_cached_plan)],
)
