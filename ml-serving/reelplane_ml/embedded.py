"""The embedded recommender: `reelplane dev` runs the same `RecommenderCore` as
Ray Serve, in-process, so a newcomer's For You is the real recommender.

`run_embedded` is a background task (a worker of `reelplane dev`) that runs
the replica (catalogue, stats, model version), the `engagement` signals
consumer and the `videos` features consumer, and registers an
`EmbeddedRecommender` for the feed. The feed reaches it through
`EmbeddedClient`, an implementation of its `Recommender` protocol, chosen with
`REELPLANE_RECOMMENDER_URL=embedded:` (what `reelplane dev` sets by default);
the feed falls back to its own candidates when the recommender is not running,
not loaded yet, failing or slower than `recommender_timeout_s`.

CPU work runs in batches behind an asyncio `MicroBatcher` (at most
`rec_batch_max_size` requests or `rec_batch_wait_s`), as `@serve.batch` does on
Ray Serve, on the event loop (why not in a thread: `reelplane_ml.batching`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from reelplane.backends import Backends
from reelplane.events.consumer import run_consumer
from reelplane.events.envelope import Event
from reelplane.feed.settings import FeedSettings
from reelplane.ports.recommender import RecommendedVideo
from reelplane.settings import load_section
from reelplane_ml.batching import MicroBatcher
from reelplane_ml.catalogue import features_handler
from reelplane_ml.serving import CandidatesIn, CandidatesOut, PreparedRequest, Replica, to_wire
from reelplane_ml.settings import EmbeddedSettings, SignalSettings
from reelplane_ml.signals import apply_signal, effects_of
from reelplane_ml.types import Recommendation, VideoFeatures

log = logging.getLogger(__name__)

#: `REELPLANE_RECOMMENDER_URL` value that selects the in-process recommender.
EMBEDDED_URL = "embedded:"
SIGNALS_GROUP = "ml-signals"
FEATURES_GROUP = "ml-features"


class RecommenderUnavailable(RuntimeError):
    """Not running, or its catalogue is not loaded yet: the feed falls back."""


class EmbeddedRecommender:
    """`POST /v1/candidates` in-process: the replica and its micro-batcher."""

    def __init__(self, replica: Replica, settings: EmbeddedSettings) -> None:
        self.replica = replica
        self.batcher: MicroBatcher[PreparedRequest, tuple[list[Recommendation], bool]] = (
            MicroBatcher(
                replica.compute,
                max_size=settings.rec_batch_max_size,
                wait_s=settings.rec_batch_wait_s,
            )
        )

    async def recommend(self, body: CandidatesIn) -> CandidatesOut:
        page, version = await self.page(body)
        return CandidatesOut(items=to_wire(page), model_version=version)

    async def page(self, body: CandidatesIn) -> tuple[list[Recommendation], str]:
        """The ranked page and the model version that ranked it."""
        if not self.replica.ready:
            raise RecommenderUnavailable("the recommender's catalogue is still loading")
        page = await self.replica.answer(body, self.batcher.submit)
        return page, self.replica.core.version

    async def close(self) -> None:
        await self.batcher.close()


_running: EmbeddedRecommender | None = None


def running() -> EmbeddedRecommender | None:
    """The process's embedded recommender, when `run_embedded` has started it."""
    return _running


class EmbeddedClient:
    """The feed's `Recommender` protocol over the process's embedded recommender."""

    def __init__(self, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    async def candidates(
        self, user_id: str, *, limit: int, exclude: list[str]
    ) -> list[RecommendedVideo]:
        recommender = running()
        if recommender is None:
            raise RecommenderUnavailable("the embedded recommender is not running")
        body = CandidatesIn(user_id=user_id, limit=limit, exclude=exclude)
        page, _ = await asyncio.wait_for(recommender.page(body), self.timeout_s)
        # straight from the core's dataclasses (no CandidatesOut in between)
        return [
            RecommendedVideo(
                video_id=r.video_id, score=r.score, source=r.source, reasons=list(r.reasons)
            )
            for r in page
        ]


# -- consumers ---------------------------------------------------------------------------
async def consume_signals(backends: Backends, stop: asyncio.Event) -> None:
    """The `engagement` consumer keeping users' signals and video stats in the
    cache; a strong signal also drops the user's For You session."""
    from reelplane.feed.foryou import drop_session

    settings = load_section(SignalSettings)

    async def on_strong(user_id: str) -> None:
        await drop_session(backends.cache, user_id)

    async def handle(event: Event) -> None:
        effects = effects_of(event)
        if effects is not None:
            await apply_signal(backends.cache, effects, settings, on_strong)

    await run_consumer(backends, stop, topics=["engagement"], group=SIGNALS_GROUP, handler=handle)


async def consume_features(
    backends: Backends, stop: asyncio.Event, replicas: Sequence[Replica] = ()
) -> None:
    """The `videos` consumer computing features once per ready video; the
    in-process replicas hear of a change at once (others poll the table)."""

    async def notify(video_id: str, features: VideoFeatures | None) -> None:
        for replica in replicas:
            if features is None:
                await asyncio.to_thread(replica.core.remove_video, video_id)
            else:
                await asyncio.to_thread(replica.core.upsert_video, features)

    await run_consumer(
        backends,
        stop,
        topics=["videos"],
        group=FEATURES_GROUP,
        handler=features_handler(backends, notify=notify),
    )


async def run_embedded(backends: Backends, stop: asyncio.Event) -> None:
    """Background task of `reelplane dev`: the in-process recommender, when the
    feed is configured for it (`REELPLANE_RECOMMENDER_URL=embedded:`)."""
    global _running
    if load_section(FeedSettings).recommender_url.strip() != EMBEDDED_URL:
        return
    settings = load_section(EmbeddedSettings)
    replica = Replica.embedded(backends, settings)
    recommender = EmbeddedRecommender(replica, settings)
    replica.start()
    _running = recommender
    log.info("embedded recommender started")
    try:
        await asyncio.gather(
            consume_signals(backends, stop),
            consume_features(backends, stop, [replica]),
        )
    finally:
        if _running is recommender:
            _running = None
        await recommender.close()
        await replica.stop()
