"""The For You feed: assemble a session of videos once, cache it and its pages.

A first request assembles a session: candidates (the recommender's, or
trending + fresh + followed creators'), scored and ranked, then picked under
the diversity rules with exploration slots (`reelplane.feed.core`). The
session (ids only) and each page's cards (a template: what is the same for the
reader all session) are cached for `feed_page_cache_ttl_s`; the counters and
whether the reader likes each video are filled in on every read
(`reelplane.feed.items.fill_page`), so they are never older than the counters
endpoint. A cursor names (session, offset), so pages of one session never
repeat a video. When a session expires, is used up, or is dropped because the
reader completed one of its videos, the next page comes from a new session that
leaves out what was already served or completed; the feed ends only when no
ready video is left that the reader has not been served.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field
from sqlalchemy import select

from reelplane.backends import Backends
from reelplane.engagement.history import completed_video_ids
from reelplane.engagement.trending import top_trending
from reelplane.feed.core import (
    Candidate,
    DiversityRules,
    diversify,
    exploration_pool,
    mix_scores,
    rank,
)
from reelplane.feed.items import (
    ITEM_STATE_TEMPLATES,
    fill_page,
    item_state,
    load_videos,
    page_template,
)
from reelplane.feed.recommender import Recommender
from reelplane.gateway.cursors import decode_cursor, encode_cursor
from reelplane.graph import store as graph_store
from reelplane.ports.cache import Cache, Expansion
from reelplane.schema import videos

if TYPE_CHECKING:  # avoids an import cycle (consumers imports this module)
    from reelplane.feed.consumers import FeedContext

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
    """The cache keys that hold the page a request asks for (see `cached_page`);
    the last one holds the page itself, its first line the ids of its videos."""
    if position is None:
        return [first_page_key(user_id)]
    return [current_key(user_id), page_key(user_id, position.s, position.o, limit)]


def page_state_expansion(position: ForYouCursor | None) -> Expansion:
    """What the edge reads with a cached page (`cached_page_keys`), in the same
    round trip: each of its videos' counters and the viewer's like state."""
    return Expansion(0 if position is None else 1, ITEM_STATE_TEMPLATES)


def _stored(ids: list[str], template: bytes) -> bytes:
    """A page as cached: the ids of its videos on the first line, then the template."""
    return " ".join(ids).encode() + b"\n" + template


def cached_template(
    position: ForYouCursor | None, limit: int, values: Sequence[bytes | None]
) -> tuple[list[str], bytes] | None:
    """The cached page's (video ids, template) from the values of
    `cached_page_keys`, or None when it is not cached (or belongs to a session
    that is no longer current)."""
    if position is None:
        raw = values[0] if values else None
        if raw is None:
            return None
        ids, _, rest = raw.partition(b"\n")
        header, newline, template = rest.partition(b"\n")
        if header.split(b" ")[-1] != str(limit).encode():
            return None
    else:
        current, cached = values[:2] if len(values) >= 2 else (None, None)
        if cached is None or current != position.s.encode():
            return None
        ids, newline, template = cached.partition(b"\n")
    if not newline:  # not a page as `_stored` writes it
        return None
    return ids.decode().split(), template


def cached_page(
    position: ForYouCursor | None, limit: int, values: tuple[bytes | None, ...]
) -> bytes | None:
    """The page's bytes from what the edge read: the values of
    `cached_page_keys`, then those of `page_state_expansion`. None when the page
    is not cached, or the viewer's like state of one of its videos is not."""
    reads = 1 if position is None else 2
    found = cached_template(position, limit, values[:reads])
    if found is None:
        return None
    try:
        return fill_page(found[1], values[reads:])
    except ValueError:  # a counter that is not a number: the route's error to give
        return None


def session_key(user_id: str) -> str:
    return f"fy:{user_id}:session"


def current_key(user_id: str) -> str:
    """The id of the reader's current session (small: checked on every cursor read)."""
    return f"fy:{user_id}:current"


def first_page_key(user_id: str) -> str:
    """The current session's first page as `b"<session> <limit>\n" + bytes`: a
    request without a cursor is one cache read."""
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
        videos.c.state == "ready", videos.c.ready_at >= since
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
            .where(videos.c.state == "ready", videos.c.owner_id != user_id)
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
    # The cached path: the page's cards in one cache round trip, then its videos'
    # counters and the viewer's likes (the edge reads both in one, before this).
    values = await backends.cache.get_many(cached_page_keys(user_id, position, limit))
    found = cached_template(position, limit, values)
    session = await _load_session(backends.cache, user_id) if found is None else None
    if session is not None and position is None:
        raw = await backends.cache.get(page_key(user_id, session.id, 0, limit))
        if raw is not None:
            listed, _, cached = raw.partition(b"\n")
            found = listed.decode().split(), cached
    if found is not None:
        return await _filled(backends, user_id, *found)
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
    template = page_template(shown, next_cursor)
    if not picked:  # the end, for now: not cached (see `_new_session`)
        return await _filled(backends, user_id, ids, template)
    ttl_s = ctx.feed.feed_page_cache_ttl_s
    stored = _stored(ids, template)
    await backends.cache.set(page_key(user_id, session.id, offset, limit), stored, ttl_s=ttl_s)
    if offset == 0:
        ids_line, _, rest = stored.partition(b"\n")
        first = ids_line + f"\n{session.id} {limit}\n".encode() + rest
        await backends.cache.set(first_page_key(user_id), first, ttl_s=ttl_s)
    await _append_ids(
        backends.cache, served_key(user_id), [i.v for i in picked], SERVED_CAP, SERVED_TTL_S
    )
    return await _filled(backends, user_id, ids, template)


async def _filled(backends: Backends, user_id: str, ids: list[str], template: bytes) -> bytes:
    """A page's bytes: its template filled with the viewer's state and counters now."""
    body = fill_page(template, await item_state(backends, user_id, ids))
    if body is None:  # item_state knows every like state
        raise RuntimeError("a For You page template does not match its video ids")
    return body
