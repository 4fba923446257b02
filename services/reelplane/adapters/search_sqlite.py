"""SQLite FTS5 adapter of the search port: the embedded default (one file).

Tables: `search_videos` / `search_users` hold the documents (and their
precomputed popularity); `*_fts` are FTS5 indices over their text (unicode61
with accents removed, the same word split as `reelplane.ports.search_query.words`,
prefix indices for 2 and 3 letters); `search_video_tags` maps each hashtag to
its videos; `search_terms` is the vocabulary, for typo tolerance: a query word
the index has never seen is widened to its one-edit variants that it has.

One connection guarded by a lock, used from a worker thread so the event loop
never blocks on disk; WAL, so an indexer and an API in other processes can
share the file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from reelplane.ports.search import HashtagCount, Page, Position, Scored, UserDoc, VideoDoc
from reelplane.ports.search_query import (
    FRESHNESS_HALF_LIFE_MS,
    FRESHNESS_WEIGHT,
    ParsedQuery,
    engagement,
    popularity,
    typo_variants,
    words,
)

R = TypeVar("R")

_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS search_videos (
  rid INTEGER PRIMARY KEY,
  video_id TEXT NOT NULL UNIQUE,
  owner_id TEXT NOT NULL,
  handle TEXT NOT NULL,
  caption TEXT NOT NULL,
  hashtags TEXT NOT NULL,
  ready_at_ms INTEGER NOT NULL,
  likes INTEGER NOT NULL,
  comments INTEGER NOT NULL,
  views INTEGER NOT NULL,
  popularity REAL NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_videos_fts
  USING fts5(caption, hashtags, handle, {_TOKENIZE});
CREATE TABLE IF NOT EXISTS search_video_tags (
  tag TEXT NOT NULL, video_id TEXT NOT NULL, PRIMARY KEY (tag, video_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_users (
  rid INTEGER PRIMARY KEY,
  user_id TEXT NOT NULL UNIQUE,
  handle TEXT NOT NULL,
  display_name TEXT NOT NULL,
  followers INTEGER NOT NULL,
  popularity REAL NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_users_fts USING fts5(handle, display_name, {_TOKENIZE});
CREATE TABLE IF NOT EXISTS search_terms (term TEXT PRIMARY KEY) WITHOUT ROWID;
"""

# bm25 column weights: a hashtag or handle word counts more than a caption word.
_VIDEO_BM25 = "bm25(search_videos_fts, 1.0, 2.0, 1.5)"
_USER_BM25 = "bm25(search_users_fts, 2.0, 1.0)"
_FRESHNESS = (
    f"({1 - FRESHNESS_WEIGHT} + {FRESHNESS_WEIGHT} * "
    f"pow(0.5, max(0, :now - v.ready_at_ms) / {float(FRESHNESS_HALF_LIFE_MS)}))"
)
_VIDEO_COLUMNS = (
    "v.video_id, v.owner_id, v.handle, v.caption, v.hashtags, v.ready_at_ms, "
    "v.likes, v.comments, v.views"
)
_USER_COLUMNS = "u.user_id, u.handle, u.display_name, u.followers"
_KEYSET = (
    "WHERE :has_after = 0 OR score < :after_score OR (score = :after_score AND id > :after_id)"
)


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _video(row: sqlite3.Row) -> VideoDoc:
    return VideoDoc(
        video_id=row["video_id"],
        owner_id=row["owner_id"],
        handle=row["handle"],
        caption=row["caption"],
        hashtags=tuple(json.loads(row["hashtags"])),
        ready_at_ms=row["ready_at_ms"],
        likes=row["likes"],
        comments=row["comments"],
        views=row["views"],
    )


def _user(row: sqlite3.Row) -> UserDoc:
    return UserDoc(
        user_id=row["user_id"],
        handle=row["handle"],
        display_name=row["display_name"],
        followers=row["followers"],
    )


def _keyset(after: Position | None) -> dict[str, Any]:
    return {
        "has_after": 0 if after is None else 1,
        "after_score": after.score if after else 0.0,
        "after_id": after.id if after else "",
    }


class SqliteSearchIndex:
    """FTS5 tables in one SQLite file (or in memory when `path` is None)."""

    def __init__(self, path: Path | None) -> None:
        target = ":memory:" if path is None else str(path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._lock = asyncio.Lock()
        self._ready = False

    async def _run(self, fn: Callable[[], R]) -> R:
        async with self._lock:
            return await asyncio.to_thread(fn)

    def _write(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            fn(self._db)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    async def ping(self) -> None:
        await self._run(lambda: self._db.execute("SELECT 1").fetchone())

    async def ensure_indices(self) -> None:
        if not self._ready:
            await self._run(lambda: self._db.executescript(_SCHEMA))
            self._ready = True

    async def refresh(self) -> None:
        """Writes are visible once committed: nothing to do."""

    async def close(self) -> None:
        await self._run(self._db.close)

    # -- writes ----------------------------------------------------------------
    async def upsert_videos(self, docs: list[VideoDoc]) -> None:
        def write(db: sqlite3.Connection) -> None:
            terms: set[str] = set()
            for d in docs:
                _delete_video(db, d.video_id)
                pop = popularity(engagement(d.likes, d.comments, d.views))
                cur = db.execute(
                    "INSERT INTO search_videos (video_id, owner_id, handle, caption, hashtags, "
                    "ready_at_ms, likes, comments, views, popularity) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        d.video_id,
                        d.owner_id,
                        d.handle,
                        d.caption,
                        json.dumps(list(d.hashtags)),
                        d.ready_at_ms,
                        d.likes,
                        d.comments,
                        d.views,
                        pop,
                    ),
                )
                tags = " ".join(d.hashtags)
                db.execute(
                    "INSERT INTO search_videos_fts (rowid, caption, hashtags, handle) "
                    "VALUES (?, ?, ?, ?)",
                    (cur.lastrowid, d.caption, tags, d.handle),
                )
                db.executemany(
                    "INSERT OR IGNORE INTO search_video_tags (tag, video_id) VALUES (?, ?)",
                    [(t, d.video_id) for t in d.hashtags],
                )
                terms.update(words(f"{d.caption} {tags} {d.handle}"))
            _add_terms(db, terms)

        await self._run(lambda: self._write(write))

    async def delete_video(self, video_id: str) -> None:
        await self._run(lambda: self._write(lambda db: _delete_video(db, video_id)))

    async def upsert_users(self, docs: list[UserDoc]) -> None:
        def write(db: sqlite3.Connection) -> None:
            terms: set[str] = set()
            for d in docs:
                row = db.execute(
                    "SELECT rid FROM search_users WHERE user_id = ?", (d.user_id,)
                ).fetchone()
                if row is not None:
                    db.execute("DELETE FROM search_users_fts WHERE rowid = ?", (row["rid"],))
                    db.execute("DELETE FROM search_users WHERE rid = ?", (row["rid"],))
                cur = db.execute(
                    "INSERT INTO search_users (user_id, handle, display_name, followers, "
                    "popularity) VALUES (?, ?, ?, ?, ?)",
                    (d.user_id, d.handle, d.display_name, d.followers, popularity(d.followers)),
                )
                db.execute(
                    "INSERT INTO search_users_fts (rowid, handle, display_name) VALUES (?, ?, ?)",
                    (cur.lastrowid, d.handle, d.display_name),
                )
                terms.update(words(f"{d.handle} {d.display_name}"))
            _add_terms(db, terms)

        await self._run(lambda: self._write(write))

    async def set_followers(self, user_id: str, followers: int) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE search_users SET followers = ?, popularity = ? WHERE user_id = ?",
                (followers, popularity(followers), user_id),
            )

        await self._run(lambda: self._write(write))

    # -- reads -----------------------------------------------------------------
    def _match(self, query: ParsedQuery) -> str:
        """The FTS5 expression for a query's words: each word (quoted, so never
        syntax) or, when the index has never seen it, its one-edit variants it
        has; the last word also as a prefix while it is being typed."""
        groups = []
        last = len(query.terms) - 1
        for i, term in enumerate(query.terms):
            prefix = i == last and query.prefix_last
            options = [_quote(term) + (" *" if prefix else "")]
            if not self._known(term, prefix=prefix):
                options += [_quote(v) for v in self._known_variants(term)]
            groups.append("(" + " OR ".join(options) + ")")
        return " AND ".join(groups)

    def _known(self, term: str, *, prefix: bool) -> bool:
        if prefix:
            row = self._db.execute(
                "SELECT 1 FROM search_terms WHERE term >= ? AND term < ? LIMIT 1",
                (term, term + "\U0010ffff"),
            ).fetchone()
        else:
            row = self._db.execute("SELECT 1 FROM search_terms WHERE term = ?", (term,)).fetchone()
        return row is not None

    def _known_variants(self, term: str) -> list[str]:
        variants = sorted(typo_variants(term))
        if not variants:
            return []
        marks = ",".join("?" * len(variants))
        rows = self._db.execute(
            f"SELECT term FROM search_terms WHERE term IN ({marks})",  # noqa: S608
            variants,
        ).fetchall()
        return [r["term"] for r in rows]

    async def search_videos(
        self, query: ParsedQuery, *, limit: int, now_ms: int, after: Position | None = None
    ) -> Page[VideoDoc]:
        if not query.terms and not query.hashtags:
            return Page()

        def read() -> Page[VideoDoc]:
            params: dict[str, Any] = {"now": now_ms, "limit": limit, **_keyset(after)}
            tag_filter = ""
            for i, tag in enumerate(query.hashtags):
                params[f"tag{i}"] = tag
                tag_filter += (
                    f" AND v.video_id IN (SELECT video_id FROM search_video_tags "  # noqa: S608
                    f"WHERE tag = :tag{i})"
                )
            if query.terms:
                params["match"] = self._match(query)
                inner = (
                    f"SELECT {_VIDEO_COLUMNS}, v.video_id AS id, "  # noqa: S608 - constants only
                    f"(-{_VIDEO_BM25}) * v.popularity * {_FRESHNESS} AS score "
                    "FROM search_videos_fts "
                    "JOIN search_videos v ON v.rid = search_videos_fts.rowid "
                    f"WHERE search_videos_fts MATCH :match{tag_filter}"
                )
            else:
                inner = (
                    f"SELECT {_VIDEO_COLUMNS}, v.video_id AS id, "  # noqa: S608 - constants only
                    f"v.popularity * {_FRESHNESS} AS score "
                    f"FROM search_videos v WHERE 1 = 1{tag_filter}"
                )
            sql = f"SELECT * FROM ({inner}) {_KEYSET} ORDER BY score DESC, id LIMIT :limit"  # noqa: S608
            rows = self._db.execute(sql, params).fetchall()
            return Page([Scored(_video(r), float(r["score"])) for r in rows])

        return await self._run(read)

    async def search_users(
        self, query: ParsedQuery, *, limit: int, after: Position | None = None
    ) -> Page[UserDoc]:
        if not query.terms:
            return Page()

        def read() -> Page[UserDoc]:
            params: dict[str, Any] = {
                "match": self._match(query),
                "exact": query.exact_handle,
                "limit": limit,
                **_keyset(after),
            }
            inner = (
                f"SELECT {_USER_COLUMNS}, u.user_id AS id, "  # noqa: S608 - constants only
                f"(-{_USER_BM25}) * u.popularity "
                "* (CASE WHEN u.handle = :exact THEN 10.0 ELSE 1.0 END) AS score "
                "FROM search_users_fts JOIN search_users u ON u.rid = search_users_fts.rowid "
                "WHERE search_users_fts MATCH :match"
            )
            sql = f"SELECT * FROM ({inner}) {_KEYSET} ORDER BY score DESC, id LIMIT :limit"  # noqa: S608
            rows = self._db.execute(sql, params).fetchall()
            return Page([Scored(_user(r), float(r["score"])) for r in rows])

        return await self._run(read)

    async def search_hashtags(
        self, prefix: str, *, limit: int, after: Position | None = None
    ) -> Page[HashtagCount]:
        if not prefix:
            return Page()

        def read() -> Page[HashtagCount]:
            rows = self._db.execute(
                "SELECT * FROM (SELECT tag AS id, COUNT(*) AS score FROM search_video_tags "  # noqa: S608
                "WHERE tag >= :lo AND tag < :hi GROUP BY tag) "
                f"{_KEYSET} ORDER BY score DESC, id LIMIT :limit",
                {"lo": prefix, "hi": prefix + "\U0010ffff", "limit": limit, **_keyset(after)},
            ).fetchall()
            return Page(
                [Scored(HashtagCount(r["id"], int(r["score"])), float(r["score"])) for r in rows]
            )

        return await self._run(read)


def _delete_video(db: sqlite3.Connection, video_id: str) -> None:
    row = db.execute(
        "SELECT rid, hashtags FROM search_videos WHERE video_id = ?", (video_id,)
    ).fetchone()
    if row is None:
        return
    db.execute("DELETE FROM search_videos_fts WHERE rowid = ?", (row["rid"],))
    db.execute("DELETE FROM search_videos WHERE rid = ?", (row["rid"],))
    db.executemany(  # by (tag, video_id): the table's key
        "DELETE FROM search_video_tags WHERE tag = ? AND video_id = ?",
        [(tag, video_id) for tag in json.loads(row["hashtags"])],
    )


def _add_terms(db: sqlite3.Connection, terms: Iterable[str]) -> None:
    db.executemany("INSERT OR IGNORE INTO search_terms (term) VALUES (?)", [(t,) for t in terms])
