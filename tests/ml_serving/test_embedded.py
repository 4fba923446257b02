"""The embedded recommender: micro-batching, the catalogue followed from the
features table, and requests served with real-time signals (embedded backends)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from reelplane.backends import Backends, open_backends
from reelplane.events.envelope import (
    VideoLiked,
    VideoLikePayload,
    VideoWatched,
    VideoWatchedPayload,
)
from reelplane.media.ffprobe import install_ffmpeg
from reelplane.schema import users, video_assets, videos
from reelplane_ml.artifact import default_artifact, model_key
from reelplane_ml.batching import BatcherClosed, MicroBatcher
from reelplane_ml.catalogue import (
    CatalogueFollower,
    changes_since,
    compute_features,
    poster_decoder,
    store_many,
    tombstone,
)
from reelplane_ml.core import RecommenderCore
from reelplane_ml.embedded import EmbeddedRecommender, RecommenderUnavailable
from reelplane_ml.serving import CandidatesIn, Replica, ServeUserConfig
from reelplane_ml.settings import EmbeddedSettings
from reelplane_ml.signals import StatsSnapshot, apply_signal, candidates_key, effects_of
from reelplane_ml.types import IMAGE_DIM, TEXT_DIM, VideoFeatures
from tests.conftest import embedded_settings
from tests.upload_support import red_jpeg

pytestmark = pytest.mark.embedded

TOPICS = 8


def synthetic_videos(n: int, *, seed: int = 0, now_ms: int = 0) -> list[VideoFeatures]:
    """Videos whose captions cluster by topic (video i has topic i % TOPICS)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(TOPICS, TEXT_DIM)).astype(np.float32)
    out = []
    for i in range(n):
        v = centres[i % TOPICS] + 0.3 * rng.normal(size=TEXT_DIM).astype(np.float32)
        out.append(
            VideoFeatures(
                video_id=f"v{i:05d}",
                creator_id=f"c{i % 50}",
                caption_vec=(v / np.linalg.norm(v)).astype(np.float32),
                image_vec=np.zeros(IMAGE_DIM, np.float32),
                hashtags=(f"topic{i % TOPICS}",),
                duration_ms=15_000,
                created_at_ms=now_ms - i * 1000,
            )
        )
    return out


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[Backends]:
    opened = await open_backends(embedded_settings(tmp_path))
    yield opened
    await opened.close()


# -- the micro-batcher -------------------------------------------------------------------
async def test_concurrent_requests_share_one_batch_on_the_event_loop() -> None:
    threads: list[str] = []

    def handle(items: list[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return [i * 10 for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(handle, max_size=8, wait_s=0.05)
    got = await asyncio.gather(*(batcher.submit(i) for i in range(8)))
    assert got == [i * 10 for i in range(8)]
    assert batcher.stats.batches == 1 and batcher.stats.largest == 8
    # no worker thread to hand the GIL back and forth with (reelplane_ml.batching)
    assert threads == [threading.current_thread().name]
    await batcher.close()


async def test_a_batch_never_exceeds_max_size_and_errors_reach_every_caller() -> None:
    def handle(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("bad item")
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(handle, max_size=4, wait_s=0.02)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(10))) == list(range(10))
    assert batcher.stats.largest <= 4
    results = await asyncio.gather(batcher.submit(13), batcher.submit(14), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    await batcher.close()
    with pytest.raises(BatcherClosed):
        await batcher.submit(1)


async def test_with_no_wait_batches_still_grow_with_load() -> None:
    """The default wait is 0 (a batch starts with what is queued): what arrives
    while a batch computes forms the next one, as one batch, not one each."""
    sizes: list[int] = []
    rest: list[asyncio.Future[int]] = []

    def handle(items: list[int]) -> list[int]:
        sizes.append(len(items))
        if len(sizes) == 1:
            # requests arriving while the first batch blocks the loop: they
            # run, and queue, only once it is done
            rest.extend(asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6))
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(handle, max_size=32)
    assert await batcher.submit(0) == 0  # alone, not waiting for company
    assert await asyncio.gather(*rest) == [1, 2, 3, 4, 5]
    assert sizes == [1, 5]
    await batcher.close()


# -- the catalogue -------------------------------------------------------------------------
async def test_a_replica_follows_new_and_deleted_videos_from_the_table(
    backends: Backends,
) -> None:
    core = RecommenderCore()
    follower = CatalogueFollower(backends.database, core)
    videos = synthetic_videos(30)
    await store_many(backends.database, videos[:20], now_ms=1_000)
    assert await follower.poll(now_ms=1_500) == 20
    assert len(core) == 20
    await store_many(backends.database, videos[20:29], now_ms=2_000)
    await tombstone(backends.database, "v00003", now_ms=2_500)
    assert await follower.poll(now_ms=3_000) == 10
    assert len(core) == 28 and "v00003" not in core
    assert await follower.poll(now_ms=3_100) == 0  # the skew window is not re-applied
    # a writer stamped a row before that poll but committed it after: still read
    await store_many(backends.database, videos[29:], now_ms=2_900)
    assert await follower.poll(now_ms=3_200) == 1
    assert "v00029" in core
    changes = await changes_since(backends.database, 2_400)
    assert [(c.video_id, c.features is None) for c in changes] == [
        ("v00003", True),
        ("v00029", False),
    ]


# -- serving -------------------------------------------------------------------------------
def watched(user: str, video: str, watched_ms: int) -> VideoWatched:
    payload = VideoWatchedPayload(
        user_id=user, video_id=video, watched_ms=watched_ms, duration_ms=15_000
    )
    return VideoWatched(key=user, occurred_at=datetime.now(UTC), payload=payload)


async def _serving(backends: Backends) -> tuple[Replica, EmbeddedRecommender]:
    settings = EmbeddedSettings()
    replica = Replica.embedded(backends, settings)
    now_ms = int(time.time() * 1000)
    await store_many(backends.database, synthetic_videos(400, now_ms=now_ms), now_ms=now_ms)
    recommender = EmbeddedRecommender(replica, settings)
    return replica, recommender


async def test_requests_wait_for_the_catalogue_then_never_repeat_a_watched_video(
    backends: Backends,
) -> None:
    replica, recommender = await _serving(backends)
    with pytest.raises(RecommenderUnavailable):
        await recommender.recommend(CandidatesIn(user_id="u", limit=10))
    replica.start()
    await asyncio.wait_for(replica.follower.loaded.wait(), 30)
    first = await recommender.recommend(CandidatesIn(user_id="u", limit=20))
    assert len(first.items) == 20
    assert all(i.source and i.reasons for i in first.items)
    assert await backends.cache.get(candidates_key("u")) is not None  # cached
    for item in first.items[:5]:
        effects = effects_of(watched("u", item.video_id, 15_000))
        assert effects is not None
        await apply_signal(backends.cache, effects, replica.signals)
    # Completions are strong: the candidates were dropped, and the next page
    # has none of the watched videos.
    assert await backends.cache.get(candidates_key("u")) is None
    second = await recommender.recommend(
        CandidatesIn(user_id="u", limit=20, exclude=[first.items[6].video_id])
    )
    shown = {i.video_id for i in second.items}
    # (the sixth item was neither watched nor excluded: it may come again)
    assert not shown & {i.video_id for i in [*first.items[:5], first.items[6]]}
    await recommender.close()
    await replica.stop()


async def test_watches_of_exploration_slots_are_counted_as_exploration_impressions(
    backends: Backends,
) -> None:
    """Exploration judges a new video on the audience it picked: a watch of an
    item the page gave a fresh or random slot counts there, any other only as
    an impression."""
    replica, recommender = await _serving(backends)
    replica.start()
    await asyncio.wait_for(replica.follower.loaded.wait(), 30)
    explored: set[str] = set()
    ranked: set[str] = set()
    for k in range(20):
        user = f"viewer{k}"
        page = await recommender.recommend(CandidatesIn(user_id=user, limit=20))
        for item in page.items:
            (explored if item.source in ("fresh", "random") else ranked).add(item.video_id)
            effects = effects_of(watched(user, item.video_id, 6_000))
            assert effects is not None
            await apply_signal(backends.cache, effects, replica.signals)
        if explored and ranked - explored:
            break
    assert explored, "no page had an exploration slot"
    snapshot = StatsSnapshot()
    await snapshot.refresh(backends.cache)
    for vid in explored:
        got = snapshot.get(vid)
        assert got is not None and got.explore_impressions >= 1
        assert got.explore_watched_share == pytest.approx(0.4 * got.explore_impressions)
    for vid in ranked - explored:
        got = snapshot.get(vid)
        assert got is not None and got.impressions >= 1 and got.explore_impressions == 0
    await recommender.close()
    await replica.stop()


async def test_completing_one_topic_shifts_the_next_page_toward_it(backends: Backends) -> None:
    replica, recommender = await _serving(backends)
    replica.start()
    await asyncio.wait_for(replica.follower.loaded.wait(), 30)
    topic = 3
    picks = [f"v{i:05d}" for i in range(topic, 400, TOPICS)][:3]
    for video in picks:
        effects = effects_of(watched("shifter", video, 15_000))
        assert effects is not None
        await apply_signal(backends.cache, effects, replica.signals)
    like = VideoLiked(key="shifter", payload=VideoLikePayload(user_id="shifter", video_id=picks[0]))
    like_effects = effects_of(like)
    assert like_effects is not None
    await apply_signal(backends.cache, like_effects, replica.signals)
    page = await recommender.recommend(CandidatesIn(user_id="shifter", limit=10))
    on_topic = sum(int(i.video_id[1:]) % TOPICS == topic for i in page.items)
    assert on_topic >= 3, [i.video_id for i in page.items]  # >= 30%; chance is 1/8
    await recommender.close()
    await replica.stop()


async def test_user_config_changes_exploration_and_ttl_in_place(backends: Backends) -> None:
    replica, recommender = await _serving(backends)
    version = replica.core.version
    await replica.reconfigure(
        ServeUserConfig.model_validate(
            {"exploration": {"fresh_slot_ratio": 0.3, "random_slot_ratio": 0.0}, "cache_ttl_s": 5}
        )
    )
    assert replica.core.config.exploration.fresh_slot_ratio == 0.3
    assert replica.cache_ttl_s == 5
    assert replica.core.version == version  # nothing published: the same model
    await recommender.close()


async def test_a_pinned_model_version_is_swapped_in_place_while_requests_keep_succeeding(
    backends: Backends,
) -> None:
    """A Serve user_config naming another model version (the Recommender's
    `modelVersion`) is applied by `reconfigure` on the running replica: no
    restart, and every request before, during and after gets a full page."""
    replica, recommender = await _serving(backends)
    replica.start()
    await asyncio.wait_for(replica.follower.loaded.wait(), 30)
    pinned = dataclasses.replace(default_artifact(), version="m-pinned")
    await backends.objects.put(model_key("m-pinned"), pinned.to_bytes())
    core = replica.core
    pages: list[tuple[int, str]] = []
    stop = asyncio.Event()

    async def keep_asking() -> None:
        k = 0
        while not stop.is_set():
            page = await recommender.recommend(CandidatesIn(user_id=f"pin{k % 40}", limit=10))
            pages.append((len(page.items), page.model_version))
            k += 1
            await asyncio.sleep(0)

    asker = asyncio.create_task(keep_asking())
    await asyncio.sleep(0.2)
    await replica.reconfigure(ServeUserConfig.model_validate({"model_version": "m-pinned"}))
    await asyncio.sleep(0.2)
    stop.set()
    await asker  # raises if any request failed
    assert replica.core is core and core.version == "m-pinned"  # the same replica, in place
    assert {n for n, _ in pages} == {10}
    versions = [v for _, v in pages]
    assert versions[0] == "content-0" and versions[-1] == "m-pinned"
    await recommender.close()
    await replica.stop()


# -- a ready video's features --------------------------------------------------------------
async def _ready_video_with_poster(backends: Backends, poster: bytes) -> str:
    """A ready video and its asset, as upload and transcode leave them, with a poster."""
    now = datetime.now(UTC)
    sha = "ab" * 32
    async with backends.database.transaction() as conn:
        await conn.execute(users.insert().values(id="u-poster", handle="poster", created_at=now))
        await conn.execute(
            video_assets.insert().values(
                sha256=sha, state="ready", source_key=f"uploads/{sha}",
                poster_key=f"renditions/{sha}/poster.jpg", renditions=[],
                duration_ms=15_000, created_at=now, ready_at=now,
            )
        )  # fmt: skip
        await conn.execute(
            videos.insert().values(
                id="v-poster", owner_id="u-poster", caption="red sunset #sky",
                hashtags=["sky"], state="ready", sha256=sha, asset_sha256=sha,
                duration_ms=15_000, created_at=now, updated_at=now, ready_at=now,
            )
        )  # fmt: skip
    await backends.objects.put(f"renditions/{sha}/poster.jpg", poster)
    return "v-poster"


async def test_a_ready_videos_features_carry_its_poster_and_without_ffmpeg_say_so_once(
    backends: Backends, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await install_ffmpeg()  # as the transcode worker does in a source checkout
    poster = await asyncio.to_thread(red_jpeg)
    video_id = await _ready_video_with_poster(backends, poster)
    poster_decoder.cache_clear()
    with_poster = await compute_features(backends, video_id)
    assert with_poster is not None and with_poster.hashtags == ("sky",)
    assert np.linalg.norm(with_poster.image_vec) > 0

    # where ffmpeg is not installed (Ray's image before it installed one)
    monkeypatch.setenv("PATH", "/nonexistent")
    poster_decoder.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="reelplane_ml.catalogue"):
            first = await compute_features(backends, video_id)
            again = await compute_features(backends, video_id)
    finally:
        poster_decoder.cache_clear()
    assert first is not None and again is not None
    assert not first.image_vec.any()
    np.testing.assert_array_equal(first.caption_vec, with_poster.caption_vec)
    warnings = [r.getMessage() for r in caplog.records if "ffmpeg not found" in r.getMessage()]
    assert len(warnings) == 1, warnings
