"""Search HTTP API: videos, users and hashtags by typed text; a hashtag's videos.

Handlers are thin: validate, parse the query (`reelplane.ports.search_query`), ask the
search port for one page, and wrap the keyset position in an opaque cursor.
The index itself is kept by the indexer (`reelplane.search.indexer`), which runs
as this service's background task. A video's counters in a response come from
the counter cache as it is now (as in the feed and on profiles); the index's own
copy is a snapshot that only ranks.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from pydantic import BaseModel, Field

from reelplane.backends import open_search
from reelplane.engagement.counters import Counters, read_counters
from reelplane.errors import InvalidInput
from reelplane.http.cursors import decode_cursor, encode_cursor
from reelplane.http.deps import BackendsDep
from reelplane.http.services import Service
from reelplane.ports.cache import Cache
from reelplane.ports.search import (
    HashtagCount,
    Page,
    Position,
    Scored,
    SearchIndex,
    UserDoc,
    VideoDoc,
)
from reelplane.ports.search_query import MAX_QUERY_CHARS, ParsedQuery, hashtag_prefix, parse_query
from reelplane.search.indexer import run_indexer
from reelplane.settings import Settings

router = APIRouter(prefix="/v1", tags=["search"])

SearchType = Literal["videos", "users", "hashtags"]
PageSize = Annotated[int, Query(ge=1, le=50, description="Results per page (1-50). Default 20")]
CursorParam = Annotated[
    str | None, Query(max_length=2048, description="next_cursor of the previous page")
]


class VideoResult(BaseModel):
    kind: Literal["video"] = "video"
    video_id: str
    owner_id: str
    handle: str
    caption: str
    hashtags: list[str]
    likes: int
    comments: int
    views: int
    ready_at: datetime


class UserResult(BaseModel):
    kind: Literal["user"] = "user"
    user_id: str
    handle: str
    display_name: str
    followers: int


class HashtagResult(BaseModel):
    kind: Literal["hashtag"] = "hashtag"
    tag: str
    videos: int = Field(description="Ready videos carrying the tag")


Result = Annotated[VideoResult | UserResult | HashtagResult, Field(discriminator="kind")]


class SearchPage(BaseModel):
    type: SearchType
    items: list[Result]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class HashtagPage(BaseModel):
    tag: str
    items: list[VideoResult]
    next_cursor: str | None


class SearchCursor(BaseModel):
    """A position in one listing: the query it belongs to, the ranking clock, the keyset."""

    q: str  # digest of (type, normalized query): a cursor only continues its own listing
    now: int
    s: float
    id: str


class SearchState:
    """The search index of one app, opened on first use (so a search backend that
    is down at start-up fails requests and readiness, not the whole process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._index: SearchIndex | None = None
        self._lock = asyncio.Lock()

    async def index(self) -> SearchIndex:
        if self._index is None:
            async with self._lock:
                if self._index is None:
                    self._index = await open_search(self.settings)
        return self._index

    async def ping(self) -> None:
        await (await self.index()).ping()

    async def close(self) -> None:
        if self._index is not None:
            await self._index.close()
            self._index = None


async def app_search_index(request: Request) -> SearchIndex:
    """The app's search index (`configure` puts its SearchState in the app's state)."""
    state: SearchState = request.app.state.search
    return await state.index()


SearchIndexDep = Annotated[SearchIndex, Depends(app_search_index)]


def _digest(kind: str, query: object) -> str:
    return hashlib.blake2b(f"{kind}|{query!r}".encode(), digest_size=6).hexdigest()


def _position(kind: str, query: object, cursor: str | None) -> tuple[Position | None, int]:
    """The keyset position and ranking clock a cursor carries (now, for a first page)."""
    if cursor is None:
        return None, int(time.time() * 1000)
    c = decode_cursor(SearchCursor, cursor)
    if c.q != _digest(kind, query):
        raise InvalidInput("the cursor belongs to another search; start without one")
    return Position(c.s, c.id), c.now


def _next(kind: str, query: object, page: Page[object], limit: int, now_ms: int) -> str | None:
    last = page.last
    if last is None or len(page.items) < limit:
        return None
    return encode_cursor(SearchCursor(q=_digest(kind, query), now=now_ms, s=last.score, id=last.id))


def _video_result(v: VideoDoc, counters: Counters) -> VideoResult:
    return VideoResult(
        video_id=v.video_id,
        owner_id=v.owner_id,
        handle=v.handle,
        caption=v.caption,
        hashtags=list(v.hashtags),
        likes=counters.likes,
        comments=counters.comments,
        views=counters.views,
        ready_at=datetime.fromtimestamp(v.ready_at_ms / 1000, UTC),
    )


async def _video_results(cache: Cache, found: list[Scored[VideoDoc]]) -> list[VideoResult]:
    """The page's videos with their current counters (one cache round trip).

    The index's counters are a snapshot taken when a video was last re-indexed
    (views alone do not re-index), so they would show a video's views as 0."""
    docs = [s.item for s in found]
    counters = await read_counters(cache, [d.video_id for d in docs]) if docs else {}
    return [_video_result(d, counters[d.video_id]) for d in docs]


def _user_result(u: UserDoc) -> UserResult:
    return UserResult(
        user_id=u.user_id, handle=u.handle, display_name=u.display_name, followers=u.followers
    )


def _hashtag_result(h: HashtagCount) -> HashtagResult:
    return HashtagResult(tag=h.tag, videos=h.videos)


@router.get(
    "/search",
    response_model=SearchPage,
    summary="Search videos, users or hashtags as you type",
    responses={422: {"description": "Query too long, bad type or cursor (problem+json)"}},
)
async def search(
    index: SearchIndexDep,
    backends: BackendsDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description="Free text: words (the last one may be unfinished), #hashtags, @handles. "
            "Never a query language: punctuation only separates words",
            examples=["dance #fyp", "@ada", "lovela"],
        ),
    ],
    type: Annotated[SearchType, Query(description="What to search. Default videos")] = "videos",
    limit: PageSize = 20,
    cursor: CursorParam = None,
) -> SearchPage:
    """Best first: text relevance (one typo tolerated in words of 4+ letters)
    times popularity (likes, comments, views; followers for users) and, for
    videos, freshness. A query with no words (only punctuation) finds nothing."""
    if type == "hashtags":
        prefix = hashtag_prefix(q)
        after, now_ms = _position(type, prefix, cursor)
        tags = await index.search_hashtags(prefix, limit=limit, after=after)
        return SearchPage(
            type=type,
            items=[_hashtag_result(s.item) for s in tags.items],
            next_cursor=_next(type, prefix, tags, limit, now_ms),  # type: ignore[arg-type]
        )
    parsed = parse_query(q)
    after, now_ms = _position(type, parsed, cursor)
    if type == "users":
        found = await index.search_users(parsed, limit=limit, after=after)
        return SearchPage(
            type=type,
            items=[_user_result(s.item) for s in found.items],
            next_cursor=_next(type, parsed, found, limit, now_ms),  # type: ignore[arg-type]
        )
    clips = await index.search_videos(parsed, limit=limit, now_ms=now_ms, after=after)
    return SearchPage(
        type=type,
        items=await _video_results(backends.cache, clips.items),
        next_cursor=_next(type, parsed, clips, limit, now_ms),  # type: ignore[arg-type]
    )


@router.get(
    "/hashtags/{tag}",
    response_model=HashtagPage,
    summary="A hashtag's videos, most popular and freshest first",
    responses={422: {"description": "Not a hashtag, or a bad cursor (problem+json)"}},
)
async def hashtag_videos(
    index: SearchIndexDep,
    backends: BackendsDep,
    tag: Annotated[str, Path(max_length=101, description="The tag, with or without '#'")],
    limit: PageSize = 20,
    cursor: CursorParam = None,
) -> HashtagPage:
    name = hashtag_prefix(tag)
    if not name or len(name) != len(tag.strip().lstrip("#")):
        raise InvalidInput("a hashtag is 1-100 letters, digits or underscores")
    query = ParsedQuery(hashtags=(name,), prefix_last=False)
    after, now_ms = _position("hashtag", name, cursor)
    clips = await index.search_videos(query, limit=limit, now_ms=now_ms, after=after)
    return HashtagPage(
        tag=name,
        items=await _video_results(backends.cache, clips.items),
        next_cursor=_next("hashtag", name, clips, limit, now_ms),  # type: ignore[arg-type]
    )


def configure(app: FastAPI, settings: Settings) -> None:
    """The app's search index (opened on first use) and its readiness check."""
    state = SearchState(settings)
    app.state.search = state
    app.state.closers.append(state.close)
    probes = getattr(app.state, "readiness_probes", None)
    if probes is None:
        probes = app.state.readiness_probes = {}
    probes["search"] = state.ping


SERVICE = Service("search", routers=[router], background=[run_indexer], configure=[configure])
