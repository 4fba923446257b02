"""Search port: the video and user index (OpenSearch's model, SQLite FTS5 embedded).

The index holds documents the indexer builds from events (`VideoDoc`, `UserDoc`)
and answers parsed queries (`reelplane.ports.search_query.ParsedQuery`) one page at a
time. Both adapters rank by relevance blended with the document's precomputed
`popularity` and, for videos, freshness (`reelplane.ports.search_query`); paging is
keyset-based on (score, id), with the ranking's clock (`now_ms`) fixed for all
pages of one listing so the order does not shift while a client pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from reelplane.ports.search_query import ParsedQuery

T = TypeVar("T")


@dataclass(frozen=True)
class VideoDoc:
    """A ready video as the index holds it; counters are totals at indexing time."""

    video_id: str
    owner_id: str
    handle: str
    caption: str
    hashtags: tuple[str, ...]
    ready_at_ms: int
    likes: int = 0
    comments: int = 0
    views: int = 0


@dataclass(frozen=True)
class UserDoc:
    user_id: str
    handle: str
    display_name: str
    followers: int = 0


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last item's score and id (ties broken by id)."""

    score: float
    id: str


@dataclass(frozen=True)
class Scored(Generic[T]):
    item: T
    score: float


@dataclass(frozen=True)
class HashtagCount:
    tag: str
    videos: int


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[Scored[T]] = field(default_factory=list)

    @property
    def last(self) -> Position | None:
        """The keyset position after this page's last item (None when empty)."""
        if not self.items:
            return None
        tail = self.items[-1]
        return Position(tail.score, _id_of(tail.item))


def _id_of(item: object) -> str:
    if isinstance(item, VideoDoc):
        return item.video_id
    if isinstance(item, UserDoc):
        return item.user_id
    if isinstance(item, HashtagCount):
        return item.tag
    raise TypeError(f"no id for {type(item).__name__}")


class SearchIndex(Protocol):
    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    async def ensure_indices(self) -> None:
        """Create the video and user indices if missing (idempotent)."""

    async def upsert_videos(self, docs: list[VideoDoc]) -> None:
        """Add or replace videos (by id)."""

    async def delete_video(self, video_id: str) -> None:
        """Remove a video; a video not indexed is fine (idempotent)."""

    async def upsert_users(self, docs: list[UserDoc]) -> None:
        """Add or replace users (by id)."""

    async def set_followers(self, user_id: str, followers: int) -> None:
        """Update a user's follower count (a user not indexed is left alone)."""

    async def refresh(self) -> None:
        """Make every write so far visible to searches (tests and benchmarks)."""

    async def search_videos(
        self, query: ParsedQuery, *, limit: int, now_ms: int, after: Position | None = None
    ) -> Page[VideoDoc]:
        """Videos matching every word (the last as a prefix; one typo allowed in
        words of 4+ letters) and every hashtag of `query`, best first. A query of
        hashtags only lists those videos by popularity and freshness."""

    async def search_users(
        self, query: ParsedQuery, *, limit: int, after: Position | None = None
    ) -> Page[UserDoc]:
        """Users whose handle or display name match, best first (an exact handle first)."""

    async def search_hashtags(
        self, prefix: str, *, limit: int, after: Position | None = None
    ) -> Page[HashtagCount]:
        """Hashtags starting with `prefix`, most used first (score = video count)."""

    async def close(self) -> None: ...
