"""The recommender's catalogue: video features computed once on `video.ready`,
stored with the video's other data (the `video_features` table), and followed by
every serving replica.

- `features_handler` (a consumer of `videos`): on `video.ready` it reads the
  video's caption, hashtags, duration and poster, computes its features
  (`reelplane_ml.features.video_features`) and upserts the row; on
  `video.deleted` it writes a tombstone. Both are idempotent (upserts).
- `CatalogueFollower`: a replica's loop that reads the rows changed since its
  last read (by `updated_ms`) and upserts or removes them in its
  `RecommenderCore`; one poll per `rec_catalogue_poll_s` (0.25 s), so a new
  video is retrievable, and a deleted one gone, within about a poll of the row.
  A poll re-reads only rows stamped within `SKEW_MS` before the previous poll
  (a late commit), so an idle poll is one indexed query that returns nothing,
  however many rows a bulk load stamped at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, func, insert, select, update

from reelplane import keyset
from reelplane.backends import Backends
from reelplane.events.envelope import Event, VideoDeleted, VideoReady
from reelplane.events.runner import Handler
from reelplane.ports.relational import Database
from reelplane.schema import video_assets, video_features, videos
from reelplane.videos.model import VideoState
from reelplane_ml.core import RecommenderCore
from reelplane_ml.types import IMAGE_DIM, TEXT_DIM, VideoFeatures

log = logging.getLogger(__name__)

#: Written with each row: a replica can tell features of another encoder apart.
FEATURE_VERSION = "wordllama256+hsv88"
#: Rows read per poll at most (a first load reads pages of this many).
PAGE = 5000
#: A row stamped updated_ms is committed and visible by updated_ms + SKEW_MS
#: (a writer's slow commit and clock skew between writers and replicas).
SKEW_MS = 2000


def _vec(data: bytes, dim: int) -> np.ndarray:
    v = np.frombuffer(data, dtype="<f4")
    if v.shape != (dim,):
        raise ValueError(f"stored vector has {v.shape[0]} values, expected {dim}")
    return v.astype(np.float32)


def row_to_features(row: object) -> VideoFeatures:
    """A `video_features` row as VideoFeatures."""
    return VideoFeatures(
        video_id=row.video_id,  # type: ignore[attr-defined]
        creator_id=row.creator_id,  # type: ignore[attr-defined]
        caption_vec=_vec(row.caption_vec, TEXT_DIM),  # type: ignore[attr-defined]
        image_vec=_vec(row.image_vec, IMAGE_DIM),  # type: ignore[attr-defined]
        hashtags=tuple(row.hashtags or ()),  # type: ignore[attr-defined]
        duration_ms=int(row.duration_ms),  # type: ignore[attr-defined]
        has_audio=bool(row.has_audio),  # type: ignore[attr-defined]
        created_at_ms=int(row.created_at_ms),  # type: ignore[attr-defined]
    )


def _row_values(f: VideoFeatures, now_ms: int) -> dict[str, object]:
    return {
        "creator_id": f.creator_id,
        "feature_version": FEATURE_VERSION,
        "caption_vec": np.asarray(f.caption_vec, dtype="<f4").tobytes(),
        "image_vec": np.asarray(f.image_vec, dtype="<f4").tobytes(),
        "hashtags": list(f.hashtags),
        "duration_ms": f.duration_ms,
        "has_audio": int(f.has_audio),
        "created_at_ms": f.created_at_ms,
        "updated_ms": now_ms,
        "deleted": 0,
    }


async def store_features(database: Database, features: VideoFeatures, *, now_ms: int) -> None:
    """Upsert a video's features (a redelivered event rewrites the same row)."""
    values = _row_values(features, now_ms)
    async with database.transaction() as conn:
        found = await conn.execute(
            update(video_features)
            .where(video_features.c.video_id == features.video_id)
            .values(**values)
        )
        if found.rowcount == 0:
            await conn.execute(insert(video_features).values(video_id=features.video_id, **values))


async def store_many(database: Database, batch: list[VideoFeatures], *, now_ms: int) -> None:
    """Insert many new videos' features at once (seeding and benchmarks)."""
    if not batch:
        return
    async with database.transaction() as conn:
        await conn.execute(
            delete(video_features).where(video_features.c.video_id.in_([f.video_id for f in batch]))
        )
        await conn.execute(
            insert(video_features),
            [{"video_id": f.video_id, **_row_values(f, now_ms)} for f in batch],
        )


async def tombstone(database: Database, video_id: str, *, now_ms: int) -> None:
    """Mark a video deleted: every replica removes it on its next poll."""
    async with database.transaction() as conn:
        await conn.execute(
            update(video_features)
            .where(video_features.c.video_id == video_id)
            .values(deleted=1, updated_ms=now_ms, caption_vec=b"", image_vec=b"")
        )


@dataclass(frozen=True)
class Change:
    """A row read back: the features, or None for a deleted video."""

    video_id: str
    updated_ms: int
    features: VideoFeatures | None


async def changes_since(
    database: Database, since_ms: int, *, after_id: str = "", limit: int = PAGE
) -> list[Change]:
    """Rows with updated_ms >= since_ms (and, at equal times, video_id > after_id),
    in (updated_ms, video_id) order."""
    c = video_features.c
    query = (
        select(video_features)
        .where(keyset.after(c.updated_ms, c.video_id, since_ms, after_id))
        .order_by(c.updated_ms, c.video_id)
        .limit(limit)
    )
    async with database.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        Change(r.video_id, int(r.updated_ms), None if r.deleted else row_to_features(r))
        for r in rows
    ]


async def count_features(database: Database) -> int:
    async with database.connect() as conn:
        return int(
            (
                await conn.execute(select(func.count()).where(video_features.c.deleted == 0))
            ).scalar_one()
        )


# -- the consumer ------------------------------------------------------------------------
FeaturesOf = Callable[[Backends, str], Awaitable[VideoFeatures | None]]
Notify = Callable[[str, VideoFeatures | None], Awaitable[None]]


@functools.cache
def poster_decoder() -> str | None:
    """The ffmpeg that decodes posters, looked up once per process; without one
    every video gets caption-only features, which the log says once."""
    found = shutil.which("ffmpeg")
    if found is None:
        log.warning(
            "ffmpeg not found on PATH: new videos get no image features from their posters "
            "(install ffmpeg where the videos consumer runs)"
        )
    return found


async def compute_features(backends: Backends, video_id: str) -> VideoFeatures | None:
    """A ready video's features from its row and poster; None when the video is
    gone or not ready. The poster is decoded by ffmpeg when one is installed
    (no image features otherwise: `poster_decoder`)."""
    from reelplane_ml.features import TextEncoder, decode_thumbnail, video_features

    query = (
        select(
            videos.c.owner_id,
            videos.c.caption,
            videos.c.hashtags,
            videos.c.duration_ms,
            videos.c.ready_at,
            videos.c.state,
            video_assets.c.poster_key,
        )
        .select_from(videos.outerjoin(video_assets, videos.c.asset_sha256 == video_assets.c.sha256))
        .where(videos.c.id == video_id)
    )
    async with backends.database.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None or row.state != VideoState.READY:
        return None
    images = []
    ffmpeg = poster_decoder()
    if row.poster_key and ffmpeg:
        try:
            data = await backends.objects.get(row.poster_key)
            images.append(await decode_thumbnail(data, ffmpeg=ffmpeg))
        except Exception as exc:  # a missing or odd poster costs the image features only
            log.warning("poster of %s not decoded: %s", video_id, exc)
    encoder = await asyncio.to_thread(TextEncoder.shared)
    ready_ms = int(row.ready_at.timestamp() * 1000) if row.ready_at else int(time.time() * 1000)
    return await asyncio.to_thread(
        lambda: video_features(
            video_id=video_id,
            creator_id=row.owner_id,
            caption=row.caption or "",
            encoder=encoder,
            images=images,
            hashtags=row.hashtags or (),
            duration_ms=int(row.duration_ms or 0),
            created_at_ms=ready_ms,
        )
    )


def features_handler(
    backends: Backends,
    *,
    features_of: FeaturesOf = compute_features,
    notify: Notify | None = None,
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> Handler:
    """`videos` consumer: features on ready, tombstones on delete; `notify`
    (e.g. the in-process core) hears of each change at once."""

    async def handle(event: Event) -> None:
        if isinstance(event, VideoReady):
            features = await features_of(backends, event.payload.video_id)
            if features is None:
                return
            await store_features(backends.database, features, now_ms=clock_ms())
            if notify is not None:
                await notify(features.video_id, features)
        elif isinstance(event, VideoDeleted):
            await tombstone(backends.database, event.payload.video_id, now_ms=clock_ms())
            if notify is not None:
                await notify(event.payload.video_id, None)

    return handle


# -- a replica's follower ----------------------------------------------------------------
class CatalogueFollower:
    """Keeps a RecommenderCore in step with the `video_features` table."""

    def __init__(self, database: Database, core: RecommenderCore) -> None:
        self.database = database
        self.core = core
        # Wall time the previous poll started (ms; None before the first): rows
        # stamped since SKEW_MS before it may have committed after it read.
        self._last_poll_ms: int | None = None
        # Rows re-read in that window are applied once: (video_id -> updated_ms).
        self._applied: dict[str, int] = {}
        self.loaded = asyncio.Event()

    async def apply(self, changes: list[Change]) -> None:
        """Upsert and remove in the core, in a worker thread (a tower pass and
        an index add per batch)."""
        ups = [c.features for c in changes if c.features is not None]
        gone = [c.video_id for c in changes if c.features is None]

        def run() -> None:
            for i in range(0, len(ups), 4096):
                self.core.upsert_videos(ups[i : i + 4096])
            for video_id in gone:
                self.core.remove_video(video_id)

        await asyncio.to_thread(run)

    async def poll(self, *, now_ms: int | None = None) -> int:
        """Apply everything changed since the last poll; returns rows applied.

        Rows stamped before (previous poll's start - SKEW_MS) were committed
        before that poll read, so only newer stamps are read again."""
        total = 0
        started_ms = int(time.time() * 1000) if now_ms is None else now_ms
        previous = self._last_poll_ms
        cursor_ms = 0 if previous is None else max(0, previous - SKEW_MS)
        cursor_id = ""
        while True:
            changes = await changes_since(self.database, cursor_ms, after_id=cursor_id)
            new = [c for c in changes if self._applied.get(c.video_id) != c.updated_ms]
            if new:
                await self.apply(new)
                total += len(new)
                for c in new:
                    self._applied[c.video_id] = c.updated_ms
            if not changes:
                break
            cursor_ms, cursor_id = changes[-1].updated_ms, changes[-1].video_id
            if len(changes) < PAGE:
                break
        self._last_poll_ms = started_ms
        horizon = started_ms - SKEW_MS
        self._applied = {v: at for v, at in self._applied.items() if at >= horizon}
        return total

    async def maybe_rebuild(self) -> None:
        """Rebuild the index when the catalogue outgrew it (exact -> IVF at
        `exact_below` videos), off the event loop; requests keep the old one."""
        params = self.core.artifact.index
        if (
            params.kind == "auto"
            and self.core.index_kind == "exact"
            and len(self.core) >= params.exact_below
        ):
            log.info("catalogue has %d videos: building the IVF index", len(self.core))
            await asyncio.to_thread(self.core.rebuild_index)

    async def run(self, stop: asyncio.Event, *, every_s: float) -> None:
        """Load everything, then poll every `every_s` until stop is set."""
        while not stop.is_set():
            try:
                await self.poll()
                await self.maybe_rebuild()
                self.loaded.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("catalogue poll failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
