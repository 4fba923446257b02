"""The recommender as a Ray Serve application: `reelplane_ml.serve:app`.

Three deployments, named as the operator's `Recommender` renderer configures
them (`reelplane_operator.render.recommender`). The ingress answers
`POST /v1/candidates` as the feed's `HttpRecommender` sends it and runs the
`engagement` signals and `videos` features consumers:

| deployment | role | batching |
|---|---|---|
| `Recommender` | ingress (FastAPI): user state, cached candidates | - |
| `Retriever` | user tower + ANN + the other candidate sources | `@serve.batch` 32 / 3 ms |
| `Ranker` | ranker, re-scorers, exploration, assembly | `@serve.batch` 16 / 3 ms |

That is the `split` topology. `reelplane_ml.serve:app` is an application
builder: with `args: {topology: fused}` it is the ingress alone, retrieving and
ranking in-process behind `@serve.batch` as the embedded mode does (one
deployment, no hops between replicas).

Every replica is a thin wrapper around the same `RecommenderCore` and
`reelplane_ml.serving.Replica` the embedded mode runs. Retriever and Ranker
replicas each follow the catalogue (`video_features`) and the model version;
`reconfigure` applies the Recommender resource's user_config in place. Run
Ray with the environment the operator sets on its pods
(`reelplane_operator.render.recommender.RAY_ENV`: HA proxy, throughput-optimized
mode, research 3.2). Settings come from `REELPLANE_*` variables.
"""

# No `from __future__ import annotations`: FastAPI must see the routes' real
# types through Serve's method wrapping (a string annotation made the body a query).

import asyncio
import contextlib
import logging
from typing import Any, Literal

from fastapi import FastAPI, Response
from pydantic import BaseModel
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from reelplane.backends import Backends, open_backends
from reelplane.http.app import freeze_startup_heap
from reelplane.settings import load_section, load_settings
from reelplane_ml.candidates import CandidateList
from reelplane_ml.core import RecommenderCore
from reelplane_ml.serving import (
    CandidatesIn,
    CandidatesOut,
    PreparedRequest,
    Replica,
    ServeUserConfig,
    candidates_response,
)
from reelplane_ml.settings import EmbeddedSettings, ServeSettings
from reelplane_ml.types import Recommendation

log = logging.getLogger(__name__)

api = FastAPI(
    title="Reelplane recommender",
    description="For You candidates: two-tower retrieval, a real-time ranker, exploration.",
)


async def _replica(*, migrate: bool) -> Replica:
    backends: Backends = await open_backends(load_settings(), migrate=migrate)
    settings = load_section(EmbeddedSettings)
    return Replica(
        RecommenderCore(),
        backends,
        cache_ttl_s=settings.rec_candidates_ttl_s,
        catalogue_poll_s=settings.rec_catalogue_poll_s,
    )


async def _loaded(replica: Replica) -> Replica:
    """Load the catalogue and the model before serving, then keep following."""
    await replica.follower.poll()
    await replica.follower.maybe_rebuild()
    replica.follower.loaded.set()
    with contextlib.suppress(Exception):
        await replica.sync_model()
    # what is loaded now lives as long as the replica: keep full collections
    # from walking it (100+ ms pauses every second or so under load)
    freeze_startup_heap()
    replica.start()
    return replica


@serve.deployment(name="Retriever", max_ongoing_requests=64, ray_actor_options={"num_cpus": 1})
class Retriever:
    """Candidates for a batch of requests: one user-tower pass, one ANN search."""

    async def __init__(self) -> None:  # type: ignore[misc]  # Serve awaits it
        self.replica = await _loaded(await _replica(migrate=False))

    async def reconfigure(self, config: dict[str, Any]) -> None:
        await self.replica.reconfigure(ServeUserConfig.model_validate(config))

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.003)
    async def retrieve(self, items: list[PreparedRequest]) -> list[CandidateList]:
        replica = self.replica
        return replica.core.retrieve_batch([(p.request, p.user) for p in items], replica.stats)


@serve.deployment(name="Ranker", max_ongoing_requests=64, ray_actor_options={"num_cpus": 1})
class Ranker:
    """Ranks each request's candidates over fresh signals and statistics."""

    async def __init__(self) -> None:  # type: ignore[misc]  # Serve awaits it
        self.replica = await _loaded(await _replica(migrate=False))

    async def reconfigure(self, config: dict[str, Any]) -> None:
        await self.replica.reconfigure(ServeUserConfig.model_validate(config))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.003)
    async def rank(self, items: list[PreparedRequest]) -> list[tuple[list[Recommendation], str]]:
        replica, core = self.replica, self.replica.core
        return [
            (core.rank(p.request, p.user, replica.stats, p.cached or []), core.version)
            for p in items
        ]


@serve.deployment(
    name="Recommender", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.25}
)
@serve.ingress(api)
class Recommender:
    """The ingress: user state and cached candidates, then Retriever and Ranker;
    bound without them (the fused topology), it retrieves and ranks in-process."""

    async def __init__(  # type: ignore[misc]  # Serve awaits it
        self,
        retriever: DeploymentHandle[Any] | None = None,
        ranker: DeploymentHandle[Any] | None = None,
    ) -> None:
        if (retriever is None) != (ranker is None):
            raise ValueError("bind the Recommender with both Retriever and Ranker, or neither")
        self.retriever = retriever
        self.ranker = ranker
        # Split: reads the cache and the graph only, its core stays empty.
        self.replica = await _replica(migrate=True)
        if ranker is None:
            await _loaded(self.replica)
        self._stop = asyncio.Event()
        self._consumers: list[asyncio.Task[None]] = []
        if load_section(ServeSettings).rec_serve_consumers:
            from reelplane_ml.embedded import consume_features, consume_signals

            backends = self.replica.backends
            self._consumers = [
                asyncio.create_task(consume_signals(backends, self._stop)),
                asyncio.create_task(consume_features(backends, self._stop)),
            ]
        freeze_startup_heap()  # as the Retriever and Ranker replicas do (`_loaded`)

    async def reconfigure(self, config: dict[str, Any]) -> None:
        parsed = ServeUserConfig.model_validate(config)
        if self.ranker is None:
            await self.replica.reconfigure(parsed)
        else:
            self.replica.cache_ttl_s = parsed.cache_ttl_s

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _compute(
        self, items: list[PreparedRequest]
    ) -> list[tuple[list[Recommendation], bool]]:
        """Fused: retrieval for the misses and ranking for all, on the replica's
        event loop (why not in a thread: `reelplane_ml.batching`)."""
        return self.replica.compute(items)

    @api.post("/v1/candidates", response_model=CandidatesOut)
    async def candidates(self, body: CandidatesIn) -> Response:
        """Up to `limit` videos for the user, best first, with source and reasons."""
        if self.retriever is None or self.ranker is None:
            page = await self.replica.answer(body, self._compute)
            return candidates_response(page, self.replica.core.version)
        prepared = await self.replica.prepare(body)
        if prepared.cached is None:
            fetched: CandidateList = await self.retriever.retrieve.remote(prepared)
            await self.replica.remember(body.user_id, fetched)
            prepared.cached = fetched
        page, version = await self.ranker.rank.remote(prepared)
        await self.replica.mark_explored(body.user_id, page)
        return candidates_response(page, version)

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    def __del__(self) -> None:
        self._stop.set()
        for task in self._consumers:
            task.cancel()


class AppArgs(BaseModel):
    """The application's arguments (the Serve config's `args`)."""

    #: split: the ingress, Retriever and Ranker as three deployments that scale
    #: apart; fused: the ingress retrieves and ranks in-process (no hop between
    #: replicas, each a pickled request and candidate list: a quarter to a third
    #: of the split graph's CPU per request on 2 cores), for small nodes.
    topology: Literal["split", "fused"] = "split"


def app(args: AppArgs) -> Application:
    """`reelplane_ml.serve:app`, the application builder Serve calls with `args`."""
    if args.topology == "fused":
        return Recommender.options(ray_actor_options={"num_cpus": 1}).bind()  # type: ignore[attr-defined,no-any-return]
    return Recommender.bind(Retriever.bind(), Ranker.bind())  # type: ignore[attr-defined,no-any-return]
