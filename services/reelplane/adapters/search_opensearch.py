"""OpenSearch adapter of the search port (`opensearch-py`, async).

URL: `opensearch://[user:password@]host:port[/index_prefix][?tls=true&verify=false]`.
Two indices, `<prefix>-videos` and `<prefix>-users` (prefix `reelplane` by
default), one shard each and no replicas unless the URL's `replicas` says so.

Text fields use one analyzer, `words`: split on anything but letters and digits,
lower case, accents folded; the same split as `reelplane.ports.search_query.words` and
the FTS5 adapter. Text fields are `search_as_you_type`, so a typed prefix is a
term lookup in their edge-n-gram subfield rather than a scan. A query is built
from parsed words only (never `query_string`), so user input is never syntax:
every word must match some field (exactly, with one typo for 4+ letters, or as a
prefix when it is the last word being typed).
"""

from __future__ import annotations

import contextlib
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from opensearchpy import AsyncOpenSearch, NotFoundError
from opensearchpy.helpers import async_bulk

from reelplane.ports.search import HashtagCount, Page, Position, Scored, UserDoc, VideoDoc
from reelplane.ports.search_query import (
    FRESHNESS_HALF_LIFE_MS,
    FRESHNESS_WEIGHT,
    TYPO_MIN_CHARS,
    ParsedQuery,
    engagement,
    popularity,
)

#: Hashtags a prefix search looks at (the most used first), before paging.
MAX_HASHTAG_BUCKETS = 1000
_FUZZINESS = f"AUTO:{TYPO_MIN_CHARS},100"  # one edit from TYPO_MIN_CHARS letters on

_ANALYSIS = {
    "tokenizer": {"words": {"type": "pattern", "pattern": "[^\\p{L}\\p{Nd}]+"}},
    "analyzer": {
        "words": {"type": "custom", "tokenizer": "words", "filter": ["lowercase", "asciifolding"]}
    },
}
_SAYT = {"type": "search_as_you_type", "analyzer": "words"}

_VIDEO_MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "video_id": {"type": "keyword"},
        "owner_id": {"type": "keyword"},
        "handle": {"type": "keyword"},
        "handle_text": _SAYT,
        "caption": _SAYT,
        "hashtags": {"type": "keyword"},
        "hashtags_text": {"type": "text", "analyzer": "words"},
        "ready_at_ms": {"type": "long"},
        "likes": {"type": "long", "index": False},
        "comments": {"type": "long", "index": False},
        "views": {"type": "long", "index": False},
        "popularity": {"type": "float"},
    },
}
_USER_MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "user_id": {"type": "keyword"},
        "handle": {"type": "keyword"},
        "handle_text": _SAYT,
        "display_name": _SAYT,
        "followers": {"type": "long", "index": False},
        "popularity": {"type": "float"},
    },
}

# Per-field weights, as in the FTS5 adapter's bm25: tags and handles over captions.
_VIDEO_FIELDS = {"caption": 1.0, "hashtags_text": 2.0, "handle_text": 1.5}
_USER_FIELDS = {"handle_text": 2.0, "display_name": 1.0}


def _term_clause(term: str, fields: dict[str, float], *, prefix: bool) -> dict[str, Any]:
    """One query word: it must match one of `fields` (as a prefix while typed)."""
    should: list[dict[str, Any]] = []
    for name, boost in fields.items():
        should.append(
            {
                "match": {
                    name: {
                        "query": term,
                        "fuzziness": _FUZZINESS,
                        "prefix_length": 1,
                        "max_expansions": 20,
                        "boost": boost,
                    }
                }
            }
        )
        if prefix:
            should.append({"prefix": {name: {"value": term, "boost": boost * 0.8}}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def _freshness(now_ms: int) -> dict[str, Any]:
    """`(1 - w) + w * 0.5 ** (age / half-life)`, as `reelplane.ports.search_query.freshness`."""
    return {
        "functions": [
            {
                "exp": {
                    "ready_at_ms": {
                        "origin": now_ms,
                        "scale": FRESHNESS_HALF_LIFE_MS,
                        "decay": 0.5,
                    }
                },
                "weight": FRESHNESS_WEIGHT,
            },
            {"filter": {"match_all": {}}, "weight": 1 - FRESHNESS_WEIGHT},
        ],
        "score_mode": "sum",
        "boost_mode": "multiply",
    }


def _popular(query: dict[str, Any], extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "function_score": {
            "query": query,
            "functions": [
                {"field_value_factor": {"field": "popularity", "missing": 1}},
                *(extra or []),
            ],
            "score_mode": "multiply",
            "boost_mode": "multiply",
        }
    }


class OpenSearchIndex:
    """The search port on an OpenSearch (or Elasticsearch-API) cluster."""

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        tls = options.get("tls", "false").lower() in ("1", "true", "yes")
        auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        prefix = parts.path.strip("/") or "reelplane"
        self.videos = f"{prefix}-videos"
        self.users = f"{prefix}-users"
        self.replicas = int(options.get("replicas", "0"))
        self._client = AsyncOpenSearch(
            hosts=[{"host": parts.hostname or "127.0.0.1", "port": parts.port or 9200}],
            http_auth=auth,
            use_ssl=tls,
            verify_certs=options.get("verify", "true").lower() not in ("0", "false", "no"),
            ssl_show_warn=False,
            timeout=connect_timeout_s,
        )

    async def ping(self) -> None:
        info = await self._client.info()
        if "version" not in info:
            raise RuntimeError("not an OpenSearch node (no version in its answer)")

    async def ensure_indices(self) -> None:
        for name, mappings in ((self.videos, _VIDEO_MAPPINGS), (self.users, _USER_MAPPINGS)):
            if await self._client.indices.exists(index=name):
                continue
            body = {
                "settings": {
                    "number_of_shards": 1,
                    "number_of_replicas": self.replicas,
                    "refresh_interval": "1s",
                    "analysis": _ANALYSIS,
                },
                "mappings": mappings,
            }
            try:
                await self._client.indices.create(index=name, body=body)
            except Exception as exc:  # created meanwhile by another replica: fine
                if "resource_already_exists_exception" not in str(exc):
                    raise

    async def refresh(self) -> None:
        await self._client.indices.refresh(index=f"{self.videos},{self.users}")

    async def close(self) -> None:
        await self._client.close()

    async def drop_indices(self) -> None:
        """Delete both indices (tests and benchmarks start clean)."""
        await self._client.indices.delete(
            index=f"{self.videos},{self.users}", ignore_unavailable=True
        )

    # -- writes ----------------------------------------------------------------
    async def upsert_videos(self, docs: list[VideoDoc]) -> None:
        actions = (
            {
                "_op_type": "index",
                "_index": self.videos,
                "_id": d.video_id,
                "_source": {
                    "video_id": d.video_id,
                    "owner_id": d.owner_id,
                    "handle": d.handle,
                    "handle_text": d.handle,
                    "caption": d.caption,
                    "hashtags": list(d.hashtags),
                    "hashtags_text": " ".join(d.hashtags),
                    "ready_at_ms": d.ready_at_ms,
                    "likes": d.likes,
                    "comments": d.comments,
                    "views": d.views,
                    "popularity": popularity(engagement(d.likes, d.comments, d.views)),
                },
            }
            for d in docs
        )
        await async_bulk(self._client, actions, chunk_size=1000, max_retries=3)

    async def delete_video(self, video_id: str) -> None:
        with contextlib.suppress(NotFoundError):  # never indexed, or already deleted
            await self._client.delete(index=self.videos, id=video_id)

    async def upsert_users(self, docs: list[UserDoc]) -> None:
        actions = (
            {
                "_op_type": "index",
                "_index": self.users,
                "_id": d.user_id,
                "_source": {
                    "user_id": d.user_id,
                    "handle": d.handle,
                    "handle_text": d.handle,
                    "display_name": d.display_name,
                    "followers": d.followers,
                    "popularity": popularity(d.followers),
                },
            }
            for d in docs
        )
        await async_bulk(self._client, actions, chunk_size=1000, max_retries=3)

    async def set_followers(self, user_id: str, followers: int) -> None:
        with contextlib.suppress(NotFoundError):  # not indexed yet: its creation carries it
            await self._client.update(
                index=self.users,
                id=user_id,
                body={"doc": {"followers": followers, "popularity": popularity(followers)}},
            )

    # -- reads -----------------------------------------------------------------
    async def _search(
        self, index: str, query: dict[str, Any], limit: int, after: Position | None, id_field: str
    ) -> list[tuple[dict[str, Any], float]]:
        body: dict[str, Any] = {
            "query": query,
            "size": limit,
            "sort": [{"_score": "desc"}, {id_field: "asc"}],
            "track_total_hits": False,
        }
        if after is not None:
            body["search_after"] = [after.score, after.id]
        resp = await self._client.search(index=index, body=body)
        hits = cast(list[dict[str, Any]], resp["hits"]["hits"])
        return [(h["_source"], float(h["sort"][0])) for h in hits]

    async def search_videos(
        self, query: ParsedQuery, *, limit: int, now_ms: int, after: Position | None = None
    ) -> Page[VideoDoc]:
        if not query.terms and not query.hashtags:
            return Page()
        last = len(query.terms) - 1
        must = [
            _term_clause(t, _VIDEO_FIELDS, prefix=i == last and query.prefix_last)
            for i, t in enumerate(query.terms)
        ]
        filters = [{"term": {"hashtags": tag}} for tag in query.hashtags]
        text: dict[str, Any] = (
            {"bool": {"must": must, "filter": filters}}
            if must
            else {"constant_score": {"filter": {"bool": {"filter": filters}}, "boost": 1.0}}
        )
        ranked = {"function_score": {"query": _popular(text), **_freshness(now_ms)}}
        hits = await self._search(self.videos, ranked, limit, after, "video_id")
        return Page([Scored(_video(src), score) for src, score in hits])

    async def search_users(
        self, query: ParsedQuery, *, limit: int, after: Position | None = None
    ) -> Page[UserDoc]:
        if not query.terms:
            return Page()
        last = len(query.terms) - 1
        must = [
            _term_clause(t, _USER_FIELDS, prefix=i == last and query.prefix_last)
            for i, t in enumerate(query.terms)
        ]
        exact = (
            [{"filter": {"term": {"handle": query.exact_handle}}, "weight": 10.0}]
            if query.exact_handle
            else []
        )
        ranked = _popular({"bool": {"must": must}}, exact)
        hits = await self._search(self.users, ranked, limit, after, "user_id")
        return Page([Scored(_user(src), score) for src, score in hits])

    async def search_hashtags(
        self, prefix: str, *, limit: int, after: Position | None = None
    ) -> Page[HashtagCount]:
        if not prefix:
            return Page()
        body = {
            "size": 0,
            "query": {"prefix": {"hashtags": prefix}},
            "aggs": {
                "tags": {
                    "terms": {
                        "field": "hashtags",
                        # A tag is letters, digits and '_': nothing a regexp would read as syntax.
                        "include": f"{prefix}.*",
                        "size": MAX_HASHTAG_BUCKETS,
                        "order": [{"_count": "desc"}, {"_key": "asc"}],
                    }
                }
            },
        }
        resp = await self._client.search(index=self.videos, body=body)
        buckets = resp["aggregations"]["tags"]["buckets"]
        counts = [HashtagCount(str(b["key"]), int(b["doc_count"])) for b in buckets]
        if after is not None:
            counts = [
                c
                for c in counts
                if c.videos < after.score or (c.videos == after.score and c.tag > after.id)
            ]
        return Page([Scored(c, float(c.videos)) for c in counts[:limit]])


def _video(src: dict[str, Any]) -> VideoDoc:
    return VideoDoc(
        video_id=src["video_id"],
        owner_id=src["owner_id"],
        handle=src["handle"],
        caption=src["caption"],
        hashtags=tuple(src["hashtags"]),
        ready_at_ms=int(src["ready_at_ms"]),
        likes=int(src["likes"]),
        comments=int(src["comments"]),
        views=int(src["views"]),
    )


def _user(src: dict[str, Any]) -> UserDoc:
    return UserDoc(
        user_id=src["user_id"],
        handle=src["handle"],
        display_name=src["display_name"],
        followers=int(src["followers"]),
    )
