"""What a serving replica runs around `RecommenderCore`, in both modes (the
embedded process and each Ray Serve replica): the catalogue follower, the
real-time stats snapshot, the model-version watcher, the per-user candidate
cache, and the wire models of `POST /v1/candidates`.

A request is served in two steps (research 4.4, 4.5): candidates (cached per
user for `cache_ttl_s`; a strong signal drops them) and ranking, which runs on
every request over the fresh user state and statistics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from reelplane.backends import Backends
from reelplane.errors import NotFound
from reelplane.graph import store as graph_store
from reelplane.ports.cache import Cache
from reelplane_ml.artifact import CURRENT_KEY, ModelArtifact, model_key
from reelplane_ml.candidates import CandidateList, decode_candidates, encode_candidates
from reelplane_ml.catalogue import CatalogueFollower
from reelplane_ml.config import ExplorationConfig, RecommenderConfig
from reelplane_ml.core import RecommenderCore
from reelplane_ml.retrieval import IndexParams
from reelplane_ml.settings import EmbeddedSettings, SignalSettings
from reelplane_ml.signals import (
    EXPLORED_TTL_S,
    StatsSnapshot,
    candidates_key,
    explored_key,
    keep_refreshing,
    load_user_state,
)
from reelplane_ml.types import (
    EXPLORATION_SOURCES,
    Candidate,
    Recommendation,
    RecommendRequest,
    UserState,
)

log = logging.getLogger(__name__)

#: How often a replica checks which model version it should serve, s.
MODEL_POLL_S = 10.0
#: How long a user's followed creators are kept in replica memory, s.
FOLLOWED_TTL_S = 30.0
FOLLOWED_MAX_USERS = 50_000


# -- the wire ------------------------------------------------------------------------------
class CandidatesIn(BaseModel):
    """`POST /v1/candidates` (the feed's `HttpRecommender` sends it)."""

    model_config = ConfigDict(extra="ignore")

    user_id: str = Field(min_length=1, max_length=64)
    limit: int = Field(ge=1, le=5000)
    exclude: list[str] = Field(default_factory=list, max_length=5000)


class CandidateOut(BaseModel):
    video_id: str
    score: float
    source: str | None = Field(None, description="The candidate source that placed it")
    reasons: list[str] = Field(default_factory=list, description="Why, for debugging")


class CandidatesOut(BaseModel):
    items: list[CandidateOut]
    model_version: str = ""


def candidates_json(page: Sequence[Recommendation], model_version: str) -> bytes:
    """The `CandidatesOut` body of a page, serialised by orjson straight from the
    Recommendation dataclasses (their fields are CandidateOut's): no model per item."""
    return orjson.dumps({"items": page, "model_version": model_version})


def candidates_response(page: Sequence[Recommendation], model_version: str) -> Response:
    return Response(candidates_json(page, model_version), media_type="application/json")


def to_wire(recs: Sequence[Recommendation]) -> list[CandidateOut]:
    return [
        CandidateOut(video_id=r.video_id, score=r.score, source=r.source, reasons=list(r.reasons))
        for r in recs
    ]


# -- user_config (the Recommender resource's spec, rendered by the operator) -------------
class IndexConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["auto", "ivf", "hnsw", "exact"] = "auto"
    nlist: int = Field(0, ge=0)
    nprobe: int = Field(32, ge=1)
    hnsw_m: int = Field(32, ge=4)
    ef_search: int = Field(128, ge=8)

    def params(self, base: IndexParams) -> IndexParams:
        return IndexParams(
            kind=self.type,
            nlist=self.nlist,
            nprobe=self.nprobe,
            exact_below=base.exact_below,
            hnsw_m=self.hnsw_m,
            hnsw_ef_search=self.ef_search,
        )


class ExplorationRatios(BaseModel):
    model_config = ConfigDict(extra="ignore")

    fresh_slot_ratio: float = Field(0.1, ge=0, le=0.5)
    random_slot_ratio: float = Field(0.01, ge=0, le=0.2)


class ServeUserConfig(BaseModel):
    """What every deployment's `reconfigure` gets (reelplane_operator's
    `render.recommender.user_config` writes it)."""

    model_config = ConfigDict(extra="ignore")

    model_version: str = ""
    index: IndexConfig = Field(default_factory=IndexConfig)
    exploration: ExplorationRatios = Field(default_factory=ExplorationRatios)
    cache_ttl_s: float = Field(300, ge=0)


@dataclass
class PreparedRequest:
    """One request with what the cache knew: cached candidates or None (a miss)."""

    request: RecommendRequest
    user: UserState
    cached: CandidateList | None


@dataclass
class Replica:
    """One serving replica's state around its core (see the module docstring)."""

    core: RecommenderCore
    backends: Backends
    signals: SignalSettings = field(default_factory=SignalSettings)
    cache_ttl_s: float = 300.0
    catalogue_poll_s: float = 0.25
    pinned_version: str = ""
    stats: StatsSnapshot = field(init=False)
    follower: CatalogueFollower = field(init=False)
    _followed: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    # users whose followees are being looked up next, and a lookup in flight
    _follow_waiting: dict[str, list[asyncio.Future[frozenset[str]]]] = field(default_factory=dict)
    _follow_lookup: asyncio.Task[None] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.stats = StatsSnapshot(window_min=self.signals.rec_stats_window_min)
        self.follower = CatalogueFollower(self.backends.database, self.core)

    @classmethod
    def embedded(cls, backends: Backends, settings: EmbeddedSettings) -> Replica:
        return cls(
            RecommenderCore(),
            backends,
            cache_ttl_s=settings.rec_candidates_ttl_s,
            catalogue_poll_s=settings.rec_catalogue_poll_s,
        )

    @property
    def cache(self) -> Cache:
        return self.backends.cache

    @property
    def ready(self) -> bool:
        return self.follower.loaded.is_set()

    def start(self) -> None:
        """Start following the catalogue, the stats and the model version."""
        self._tasks = [
            asyncio.create_task(
                self.follower.run(self._stop, every_s=self.catalogue_poll_s),
                name="rec-catalogue",
            ),
            asyncio.create_task(
                keep_refreshing(
                    self.stats,
                    self.cache,
                    self._stop,
                    every_s=self.signals.rec_stats_refresh_s,
                ),
                name="rec-stats",
            ),
            asyncio.create_task(self._watch_model(), name="rec-model"),
        ]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # -- model -------------------------------------------------------------------------
    async def wanted_version(self) -> str | None:
        """The version to serve: the pinned one, else the published CURRENT;
        None when nothing was published (the core keeps its default)."""
        if self.pinned_version:
            return self.pinned_version
        try:
            return (await self.backends.objects.get(CURRENT_KEY)).decode().strip() or None
        except NotFound:
            return None

    async def sync_model(self) -> bool:
        """Load and swap in the wanted model version when it differs; True if swapped."""
        version = await self.wanted_version()
        if version is None or version == self.core.version:
            return False
        data = await self.backends.objects.get(model_key(version))
        artifact = ModelArtifact.from_bytes(data)
        await asyncio.to_thread(self.core.swap_artifact, artifact)
        log.info("serving model %s", artifact.version)
        return True

    async def _watch_model(self) -> None:
        while not self._stop.is_set():
            try:
                await self.sync_model()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("model version check failed; serving %s", self.core.version)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), MODEL_POLL_S)

    async def reconfigure(self, config: ServeUserConfig) -> None:
        """Apply a Serve user_config in place: exploration ratios, cache TTL,
        index parameters (nprobe in place; another kind rebuilds aside) and the
        pinned model version."""
        core = self.core
        core.config = RecommenderConfig(
            caps=core.config.caps,
            exploration=ExplorationConfig(
                **{
                    **core.config.exploration.model_dump(),
                    "fresh_slot_ratio": config.exploration.fresh_slot_ratio,
                    "random_slot_ratio": config.exploration.random_slot_ratio,
                }
            ),
            ranker=core.config.ranker,
            max_candidates=core.config.max_candidates,
            recent_window=core.config.recent_window,
        )
        self.cache_ttl_s = config.cache_ttl_s
        current = core.artifact.index
        wanted = config.index.params(current)
        if wanted != current:
            if (wanted.kind, wanted.nlist, wanted.hnsw_m) == (
                current.kind,
                current.nlist,
                current.hnsw_m,
            ):
                core.set_nprobe(wanted.nprobe)
            else:
                await asyncio.to_thread(core.rebuild_index, wanted)
        self.pinned_version = config.model_version
        await self.sync_model()

    # -- requests ---------------------------------------------------------------------
    async def followed(self, user_id: str) -> frozenset[str]:
        """The creators the user follows (kept FOLLOWED_TTL_S in memory). The
        users asked for while one query runs are looked up together by the next
        (one query per batch of requests, not one per request)."""
        hit = self._followed.get(user_id)
        if hit is not None and time.monotonic() - hit[0] < FOLLOWED_TTL_S:
            return hit[1]
        future: asyncio.Future[frozenset[str]] = asyncio.get_running_loop().create_future()
        self._follow_waiting.setdefault(user_id, []).append(future)
        if self._follow_lookup is None or self._follow_lookup.done():
            self._follow_lookup = asyncio.create_task(self._look_up_followed())
        return await future

    async def _look_up_followed(self) -> None:
        while self._follow_waiting:
            waiting, self._follow_waiting = self._follow_waiting, {}
            try:
                found = await graph_store.followees_of(self.backends.database, list(waiting))
            except Exception as exc:
                for futures in waiting.values():
                    for f in futures:
                        if not f.done():
                            f.set_exception(exc)
                continue
            now = time.monotonic()
            if len(self._followed) + len(waiting) > FOLLOWED_MAX_USERS:
                self._followed.clear()
            for user_id, futures in waiting.items():
                ids = frozenset(found.get(user_id, ()))
                self._followed[user_id] = (now, ids)
                for f in futures:
                    if not f.done():
                        f.set_result(ids)

    async def prepare(self, body: CandidatesIn, *, now_ms: int | None = None) -> PreparedRequest:
        """The request, the user as the cache knows them now, and the cached
        candidates (None on a miss)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        followed = await self.followed(body.user_id)
        user, (raw,) = await asyncio.gather(
            load_user_state(self.cache, body.user_id, self.signals, followed_creators=followed),
            self.cache.get_many([candidates_key(body.user_id)]),
        )
        cached = decode_candidates(raw) if raw is not None and self.cache_ttl_s > 0 else None
        request = RecommendRequest(
            user_id=body.user_id, now_ms=now_ms, limit=body.limit, exclude=frozenset(body.exclude)
        )
        return PreparedRequest(request, user, cached)

    async def remember(self, user_id: str, candidates: Sequence[Candidate]) -> None:
        """Cache a user's freshly retrieved candidates for cache_ttl_s."""
        if self.cache_ttl_s > 0 and candidates:
            await self.cache.set(
                candidates_key(user_id), encode_candidates(candidates), ttl_s=self.cache_ttl_s
            )

    async def mark_explored(self, user_id: str, page: Sequence[Recommendation]) -> None:
        """Note the page's exploration slots, so that the signals consumer counts
        their watches as exploration impressions (what `explore` judges on)."""
        marks = [r.video_id for r in page if r.source in EXPLORATION_SOURCES]
        if marks:
            await asyncio.gather(
                *(self.cache.set(explored_key(user_id, v), b"1", ttl_s=EXPLORED_TTL_S)
                  for v in marks)
            )  # fmt: skip

    async def answer(
        self,
        body: CandidatesIn,
        compute: Callable[[PreparedRequest], Awaitable[tuple[list[Recommendation], bool]]],
    ) -> list[Recommendation]:
        """One request served in-process: prepare it, run `compute` (a batcher in
        front of `compute`), cache freshly retrieved candidates, mark the page's
        exploration slots."""
        prepared = await self.prepare(body)
        page, retrieved = await compute(prepared)
        if retrieved and prepared.cached is not None:
            await self.remember(body.user_id, prepared.cached)
        await self.mark_explored(body.user_id, page)
        return page

    def compute(self, batch: list[PreparedRequest]) -> list[tuple[list[Recommendation], bool]]:
        """Retrieve for the misses (one batched pass), rank everyone: CPU work,
        run on the event loop by the batcher (`reelplane_ml.batching` says why).
        Returns (page, retrieved) per request."""
        misses = [i for i, p in enumerate(batch) if p.cached is None]
        fresh: dict[int, CandidateList] = {}
        if misses:
            got = self.core.retrieve_batch(
                [(batch[i].request, batch[i].user) for i in misses], self.stats
            )
            fresh = dict(zip(misses, got, strict=True))
        out: list[tuple[list[Recommendation], bool]] = []
        for i, p in enumerate(batch):
            retrieved = fresh.get(i)
            if retrieved is not None:
                p.cached = retrieved  # the caller caches them
            # just retrieved for this very request and user: retrieve filtered them
            # (as recommend_batch does); cached ones are checked again
            page = self.core.rank(
                p.request, p.user, self.stats, p.cached or [], checked=retrieved is not None
            )
            out.append((page, retrieved is not None))
        return out
