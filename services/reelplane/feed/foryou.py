"""The For You feed: assemble a session of videos once, cache it and its pages.

A first request assembles a session: candidates (the recommender's, or
trending + fresh + followed creators'), scored and ranked, then picked under
the diversity rules with exploration slots (`reelplane.feed.core`). The
session (ids only) and each page's cards (a template: what is the same for the
reader all session) are cached for `feed_page_cache_ttl_s`, with whether the
reader likes each video as of the reader's likes version; the counters are
filled in on every read (`reelplane.feed.items.fill_page`), so they are never
older than the counters endpoint's, and a page from before a like or unlike is
not served as it is (`reelplane.engagement.likes_version`). A cursor names
(session, offset), so pages of one session never repeat a video. When a
session expires, is used up, or is dropped because the reader completed one of
its videos, the next page comes from a new session that leaves out what was
already served or completed; the feed ends only when no ready video is left
that the reader has not been served.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import select

from reelplane.backends import Backends
from reelplane.engagement.core import likes_version_key
from reelplane.engagement.history import completed_video_ids
from reelplane.engagement.likes_version import likes_version
from reelplane.engagement.trending import top_trending
from reelplane.feed.context import FeedContext
from reelplane.feed.core import (
    Candidate,
    DiversityRules,
    diversify,
    exploration_pool,
    mix_scores,
    rank,
)
from reelplane.feed.items import (
    counter_keys,
    fill_page,
    liked_flags,
    load_videos,
    page_template,
)
from reelplane.graph import store as graph_store
from reelplane.http.cursors import decode_cursor, encode_cursor
from reelplane.ports.cache import Cache
from reelplane.ports.gate import ITEM_PLACEHOLDER, Expansion
from reelplane.ports.recommender import Recommender
from reelplane.schema import videos
from reelplane.videos.model import VideoState

log = logging.getLogger(__name__)

SERVED_TTL_S = 3600.0
SERVED_CAP = 2000
COMPLETED_TTL_S = 7 * 86400.0
COMPLETED_CAP = 500
#: Completions read from watch history per assembly.
COMPLETIONS_READ = 1000
#: Followed creators whose videos are candidates, at most.
FOLLOWED_CREATORS_MAX = 500
#: Pages of the catalog read at most when the other sources run short.
CATALOG_ROUNDS = 8
#: Videos per page: the default, and the most a request may ask for.
FORYOU_LIMIT_DEFAULT = 10
FORYOU_LIMIT_MAX = 50


class SessionItem(BaseModel):
    v: str  # video id
    c: str  # creator id
    t: list[str] = Field(default_factory=list)  # hashtags


class ForYouSession(BaseModel):
    id: str
    items: list[SessionItem]


class ForYouCursor(BaseModel):
    s: str  # session id
    o: int = Field(ge=0, le=100_000)  # offset in the session
    r: list[SessionItem] = Field(default_factory=list, max_length=20)  # the reader's last items


def cached_page_keys(user_id: str, position: ForYouCursor | None, limit: int) -> list[str]:
    """The cache keys a request's page is read from (see `cached_page`): the
    page (for a cursor, after the current session's id) and last the viewer's
    likes version."""
    version = likes_version_key(user_id)
    if position is None:
        return [first_page_key(user_id), version]
    return [current_key(user_id), page_key(user_id, position.s, position.o, limit), version]


def page_counters_expansion(position: ForYouCursor | None) -> Expansion:
    """What the edge reads with a cached page (`cached_page_keys`), in the same
    round trip: the counter keys its first line lists."""
    return Expansion(0 if position is None else 1, (ITEM_PLACEHOLDER,))


@dataclass(frozen=True)
class StoredPage:
    """A page as cached: its videos' ids, whether the viewer likes each (as of
    `version`, the viewer's likes version then), the session line of a first
    page (b"<session> <limit>"), and the template (`page_template`).

    Encoded as lines: the counter keys of its videos (what the edge's gate
    reads with it, so Lua builds no key), b"<version> <liked> <ids...>", the
    session line of a first page, then the template."""

    ids: list[str]
    version: bytes
    liked: bytes
    session_line: bytes | None
    template: bytes

    def encode(self) -> bytes:
        lines = [
            " ".join(counter_keys(self.ids)).encode(),
            b" ".join([self.version, self.liked, *(i.encode() for i in self.ids)]),
        ]
        if self.session_line is not None:
            lines.append(self.session_line)
        return b"\n".join([*lines, self.template])

    @classmethod
    def decode(cls, raw: bytes, *, first: bool) -> StoredPage | None:
        """The page in `raw` (a first page's when `first`); None when it is not one."""
        parts = raw.split(b"\n", 3 if first else 2)
        if len(parts) != (4 if first else 3):
            return None
        version, liked, *ids = parts[1].split(b" ")
        if len(liked) != len(ids):
            return None
        session_line = parts[2] if first else None
        return cls([i.decode() for i in ids], version, liked, session_line, parts[-1])


def cached_stored(
    position: ForYouCursor | None, limit: int, values: Sequence[bytes | None]
) -> StoredPage | None:
    """The cached page from the values of `cached_page_keys`, or None when it
    is not cached (or belongs to a session that is no longer current)."""
    if position is None:
        raw = values[0] if values else None
        page = StoredPage.decode(raw, first=True) if raw is not None else None
        if page is None or (page.session_line or b"").split(b" ")[-1] != str(limit).encode():
            return None
        return page
    current, raw = values[:2] if len(values) >= 2 else (None, None)
    if raw is None or current != position.s.encode():
        return None
    return StoredPage.decode(raw, first=False)


def cached_page(
    position: ForYouCursor | None, limit: int, values: tuple[bytes | None, ...]
) -> bytes | None:
    """The page's bytes from what the edge read: the values of
    `cached_page_keys`, then those of `page_counters_expansion`. None when the
    page is not cached, or the viewer liked or unliked a video since. (What
    `cached_stored` does, without decoding what the edge does not need.)"""
    if len(values) < (2 if position is None else 3):
        return None
    if position is None:
        raw = values[0]
        parts = raw.split(b"\n", 3) if raw is not None else ()
        if len(parts) != 4 or parts[2].rpartition(b" ")[2] != str(limit).encode():
            return None
        reads = 1
    else:
        raw = values[1]
        parts = raw.split(b"\n", 2) if raw is not None and values[0] == position.s.encode() else ()
        if len(parts) != 3:
            return None
        reads = 2
    version, _, rest = parts[1].partition(b" ")
    if version != likes_version(values[reads]):
        return None
    try:
        return fill_page(parts[-1], values[reads + 1 :], rest.partition(b" ")[0])
    except ValueError:  # a counter that is not a number: the route's error to give
        return None


def session_key(user_id: str) -> str:
    return f"fy:{user_id}:session"


def current_key(user_id: str) -> str:
    """The id of the reader's current session (small: checked on every cursor read)."""
    return f"fy:{user_id}:current"


def first_page_key(user_id: str) -> str:
    """The current session's first page, with its session and page size
    (`StoredPage`): a request without a cursor is one cache read."""
    return f"fy:{user_id}:first"


def page_key(user_id: str, session_id: str, offset: int, limit: int) -> str:
    return f"fy:{user_id}:{session_id}:{offset}:{limit}"


def served_key(user_id: str) -> str:
    return f"fy:{user_id}:served"


def completed_key(user_id: str) -> str:
    return f"fy:{user_id}:completed"


def _as_candidate(item: SessionItem) -> Candidate:
    return Candidate(item.v, item.c, tuple(item.t), 0)


def _as_item(c: Candidate) -> SessionItem:
    return SessionItem(v=c.video_id, c=c.creator_id, t=list(c.hashtags))


async def _id_list(cache: Cache, key: str) -> list[str]:
    raw = await cache.get(key)
    return list(json.loads(raw)) if raw else []


async def _append_ids(cache: Cache, key: str, ids: list[str], cap: int, ttl_s: float) -> None:
    """Append to a capped JSON list (one reader's events are handled in order,
    so this read-modify-write has no concurrent writer for the same key)."""
    current = await _id_list(cache, key)
    merged = [*current, *[i for i in ids if i not in set(current)]][-cap:]
    await cache.set(key, json.dumps(merged).encode(), ttl_s=ttl_s)


async def forget_completed(cache: Cache, user_id: str, video_id: str) -> None:
    """The reader watched video_id to completion: never show it again, and drop
    the cached session that may still hold it."""
    await _append_ids(cache, completed_key(user_id), [video_id], COMPLETED_CAP, COMPLETED_TTL_S)
    await drop_session(cache, user_id)


async def drop_session(cache: Cache, user_id: str) -> None:
    """Forget the reader's current session: the next page comes from a new one."""
    await cache.delete(session_key(user_id), current_key(user_id), first_page_key(user_id))


def rules_of(ctx: FeedContext) -> DiversityRules:
    return DiversityRules(
        window=ctx.feed.feed_diversity_window,
        hashtag_max_in_window=ctx.feed.feed_hashtag_max_in_window,
        exploration_every=ctx.feed.feed_exploration_every,
    )


async def _recent_ready(
    backends: Backends, *, owners: list[str] | None, since: datetime, limit: int
) -> dict[str, int]:
    """Ready videos since `since` (of `owners` when given): id -> ready ms."""
    query = select(videos.c.id, videos.c.ready_at).where(
        videos.c.state == VideoState.READY, videos.c.ready_at >= since
    )
    if owners is not None:
        if not owners:
            return {}
        query = query.where(videos.c.owner_id.in_(owners))
    query = query.order_by(videos.c.ready_at.desc()).limit(limit)
    async with backends.database.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {r.id: int(r.ready_at.timestamp() * 1000) for r in rows if r.ready_at}


async def _unseen_ready(
    backends: Backends, user_id: str, *, skip: set[str], need: int
) -> dict[str, int]:
    """Up to `need` ready videos of others that are not in `skip`, newest
    first (id -> ready ms): For You's last source, so that a small or quiet
    instance does not run dry while there are videos the reader has not seen."""
    found: dict[str, int] = {}
    page = max(2 * need, 250)
    for round_ in range(CATALOG_ROUNDS):
        query = (
            select(videos.c.id, videos.c.ready_at)
            .where(videos.c.state == VideoState.READY, videos.c.owner_id != user_id)
            .order_by(videos.c.ready_at.desc(), videos.c.id.desc())
            .limit(page)
            .offset(round_ * page)
        )
        async with backends.database.connect() as conn:
            rows = (await conn.execute(query)).all()
        for r in rows:
            if r.id not in skip and r.ready_at is not None:
                found[r.id] = int(r.ready_at.timestamp() * 1000)
                if len(found) >= need:
                    return found
        if len(rows) < page:
            break
    return found


async def assemble(
    backends: Backends,
    ctx: FeedContext,
    user_id: str,
    *,
    recommender: Recommender | None,
    context: list[Candidate],
    exclude: set[str],
) -> list[Candidate]:
    """A new session's videos, best first under the diversity rules."""
    now_ms = int(time.time() * 1000)
    size = ctx.feed.feed_foryou_list_size
    since = datetime.now(UTC) - timedelta(seconds=ctx.feed.feed_fresh_window_s)
    completed = await completed_video_ids(backends.widerow, user_id, limit=COMPLETIONS_READ)
    completed |= set(await _id_list(backends.cache, completed_key(user_id)))
    recommended: dict[str, float] | None = None
    if recommender is not None:
        try:
            got = await recommender.candidates(
                user_id, limit=size * 2, exclude=sorted(completed)[:COMPLETIONS_READ]
            )
            recommended = {r.video_id: r.score for r in got}
        except Exception as exc:  # any failure: fall back to our own candidates
            log.warning("recommender failed, using fallback candidates: %s", exc)
    fresh = await _recent_ready(backends, owners=None, since=since, limit=size * 2)
    trending: dict[str, float] = {}
    followed: dict[str, int] = {}
    if recommended is None:
        es = ctx.engagement
        trending = dict(
            await top_trending(
                backends.cache,
                now_ms=now_ms,
                window_s=es.trending_window_s,
                bucket_s=es.trending_bucket_s,
                limit=size * 2,
            )
        )
        followees = list(await graph_store.followee_ids(backends.database, user_id))
        followed = await _recent_ready(
            backends, owners=followees[:FOLLOWED_CREATORS_MAX], since=since, limit=size
        )
    ids = {*(recommended or {}), *trending, *fresh, *followed}
    unseen = len(ids - completed - exclude)
    catalog: dict[str, int] = {}
    if unseen < size:
        catalog = await _unseen_ready(
            backends, user_id, skip=ids | completed | exclude, need=size - unseen
        )
        ids |= set(catalog)
    cards = await load_videos(backends, list(ids))
    scores = mix_scores(
        now_ms=now_ms,
        ready_ms={vid: card.ready_ms for vid, card in cards.items()},
        recommended=recommended,
        trending=trending,
        fresh=fresh,
        followed=followed,
        catalog=catalog,
    )
    candidates = [
        Candidate(
            video_id=vid,
            creator_id=card.creator_id,
            hashtags=card.hashtags,
            ready_ms=card.ready_ms,
            score=scores[vid][0],
            sources=scores[vid][1],
        )
        for vid, card in cards.items()
        if vid in scores and card.creator_id != user_id
    ]
    ranked = rank(candidates)
    rules = rules_of(ctx)
    explore = exploration_pool(candidates, limit=size)
    return diversify(
        ranked,
        size=size,
        rules=rules,
        exploration=explore,
        context=context,
        exclude=completed | exclude,
    )


async def _new_session(
    backends: Backends,
    ctx: FeedContext,
    user_id: str,
    recommender: Recommender | None,
    context: list[Candidate],
    *,
    allow_served: bool,
) -> ForYouSession:
    served = set(await _id_list(backends.cache, served_key(user_id)))
    chosen = await assemble(
        backends, ctx, user_id, recommender=recommender, context=context, exclude=served
    )
    if not chosen and allow_served and served:
        chosen = await assemble(
            backends, ctx, user_id, recommender=recommender, context=context, exclude=set()
        )
    session = ForYouSession(id=uuid.uuid4().hex[:16], items=[_as_item(c) for c in chosen])
    if not session.items:
        # Nothing left to show: not cached, so videos that become ready (or,
        # on a first page, those served before) come on the next request.
        return session
    ttl_s = ctx.feed.feed_page_cache_ttl_s
    await backends.cache.set(session_key(user_id), session.model_dump_json().encode(), ttl_s=ttl_s)
    await backends.cache.set(current_key(user_id), session.id.encode(), ttl_s=ttl_s)
    return session


async def _load_session(cache: Cache, user_id: str) -> ForYouSession | None:
    raw = await cache.get(session_key(user_id))
    return ForYouSession.model_validate_json(raw) if raw else None


async def foryou_page(
    backends: Backends,
    ctx: FeedContext,
    user_id: str,
    cursor: str | None,
    limit: int,
    *,
    recommender: Recommender | None = None,
) -> bytes:
    """The JSON bytes of one For You page (a FeedPage), from the page cache when
    it has them."""
    position = decode_cursor(ForYouCursor, cursor) if cursor else None
    # The cached path: the page and the viewer's likes version in one cache
    # round trip, then its counters (the edge reads both in one, before this).
    keys = cached_page_keys(user_id, position, limit)
    values = await backends.cache.get_many(keys)
    version = likes_version(values[-1])  # read before any like is: see likes_version
    found = cached_stored(position, limit, values[:-1])
    where = keys[-2]
    session = await _load_session(backends.cache, user_id) if found is None else None
    if session is not None and position is None:
        where = page_key(user_id, session.id, 0, limit)
        raw = await backends.cache.get(where)
        found = StoredPage.decode(raw, first=False) if raw is not None else None
    if found is not None:
        if found.version != version:  # liked or unliked since: read the likes again
            found = replace(
                found, version=version, liked=await liked_flags(backends, user_id, found.ids)
            )
            left_s = await backends.cache.ttl(where)
            if left_s is not None:
                await backends.cache.set(where, found.encode(), ttl_s=left_s)
        return await _filled(backends, found)
    window = max(0, ctx.feed.feed_diversity_window - 1)
    context = [_as_candidate(i) for i in (position.r if position else [])]
    if session is None or (position is not None and position.s != session.id):
        session = await _new_session(
            backends, ctx, user_id, recommender, context, allow_served=position is None
        )
        offset = 0
    else:
        offset = position.o if position else 0
        if offset >= len(session.items) and offset > 0:  # used up: carry on with a new one
            context = [_as_candidate(i) for i in session.items[-window:]] if window else []
            session = await _new_session(
                backends, ctx, user_id, recommender, context, allow_served=False
            )
            offset = 0
    picked = session.items[offset : offset + limit]
    cards = await load_videos(backends, [i.v for i in picked])
    shown = [cards[i.v] for i in picked if i.v in cards]
    seen = [*context, *(_as_candidate(i) for i in session.items[: offset + len(picked)])]
    next_cursor = (
        encode_cursor(
            ForYouCursor(
                s=session.id,
                o=offset + len(picked),
                r=[_as_item(c) for c in seen[-window:]] if window else [],
            )
        )
        if picked
        else None
    )
    ids = [c.video_id for c in shown]
    page = StoredPage(
        ids=ids,
        version=version,
        liked=await liked_flags(backends, user_id, ids),
        session_line=None,
        template=page_template(shown, next_cursor),
    )
    if not picked:  # the end, for now: not cached (see `_new_session`)
        return await _filled(backends, page)
    ttl_s = ctx.feed.feed_page_cache_ttl_s
    await backends.cache.set(
        page_key(user_id, session.id, offset, limit), page.encode(), ttl_s=ttl_s
    )
    if offset == 0:
        first = replace(page, session_line=f"{session.id} {limit}".encode())
        await backends.cache.set(first_page_key(user_id), first.encode(), ttl_s=ttl_s)
    await _append_ids(
        backends.cache, served_key(user_id), [i.v for i in picked], SERVED_CAP, SERVED_TTL_S
    )
    return await _filled(backends, page)


async def _filled(backends: Backends, page: StoredPage) -> bytes:
    """A page's bytes: its template filled with its videos' counters now."""
    counters = await backends.cache.get_many(counter_keys(page.ids))
    body = fill_page(page.template, counters, page.liked)
    if body is None:
        raise RuntimeError("a For You page template does not match its video ids")
    return body
