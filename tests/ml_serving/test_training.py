"""The trainer end to end on a tiny simulated world (needs torch: the train extra)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from reelplane_ml.core import user_history  # noqa: E402
from reelplane_ml.evaluate import (  # noqa: E402
    eval_set,
    popularity_scorer,
    retrieval_metrics,
    two_tower_scorer,
)
from reelplane_ml.features import TextEncoder  # noqa: E402
from reelplane_ml.sim.world import World, WorldConfig  # noqa: E402
from reelplane_ml.towers import user_vectors, video_vectors  # noqa: E402
from reelplane_ml.train.data import (  # noqa: E402
    Catalogue,
    build_examples,
    temporal_split,
    user_states,
)
from reelplane_ml.train.loop import TrainConfig, fit  # noqa: E402
from reelplane_ml.train.model import TwoTower, freq_rows  # noqa: E402


@pytest.fixture(scope="module")
def tiny() -> tuple[World, object, Catalogue, dict[str, frozenset[str]]]:
    world = World.generate(WorldConfig(n_users=600, n_videos=2000, n_creators=200, seed=3))
    log = world.logged_exposure(60, seed=4)
    cat = Catalogue.of(world.features(range(world.n_videos), TextEncoder.shared()))
    follows = {
        world.user_id(u): frozenset(world.creator_id(c) for c in world.follows[u])
        for u in range(world.n_users)
    }
    return world, log, cat, follows


@pytest.mark.embedded
def test_torch_towers_and_exported_numpy_towers_agree(tiny: tuple) -> None:  # type: ignore[type-arg]
    """The history the trainer builds equals what serving builds from a
    UserState, and the exported weights give the same vectors."""
    _world, log, cat, follows = tiny
    v_mask = np.zeros(cat.n, bool)
    v_mask[::3] = True
    c_mask = np.zeros(len(cat.creator_ids), bool)
    c_mask[::2] = True
    model = TwoTower(cat, freq_rows(v_mask), freq_rows(c_mask), id_dropout=0.0)
    model.eval()
    towers = model.export(cat)
    rows = torch.arange(cat.n)
    with torch.no_grad():
        v_torch = model.video_vectors(rows).numpy()
    v_np, hist = video_vectors(towers, cat.features)
    assert np.allclose(v_torch, v_np, atol=1e-4)
    # one user's last example: its history rows vs the UserState built from the log
    ex = build_examples(log, cat, None, follows)
    user = int(ex.user[-1])
    j = int(np.flatnonzero(ex.user == user)[-1])
    before = log.at_ms < ex.at_ms[j]
    state = user_states(log, before, [user], follows)[user]
    uh = user_history(state, dict(cat.row_of), int(ex.at_ms[j]))
    assert list(uh.watched_rows) == [int(r) for r in ex.watched[j, : ex.n_watched[j]]]
    with torch.no_grad():
        u_torch = model.user_vectors(
            torch.from_numpy(ex.watched[j : j + 1]), torch.from_numpy(ex.watched_w[j : j + 1]),
            torch.from_numpy(ex.skipped[j : j + 1]), torch.from_numpy(ex.liked[j : j + 1]),
            torch.from_numpy(ex.n_watched[j : j + 1]), torch.from_numpy(ex.followed[j : j + 1]),
            torch.tensor([(ex.at_ms[j] / 3_600_000.0) % 24.0], dtype=torch.float32),
        ).numpy()  # fmt: skip
    u_np = user_vectors(towers, hist, [uh])
    assert np.allclose(u_torch, u_np, atol=1e-4)


@pytest.mark.embedded
def test_learning_rates_decay_to_zero_over_the_run_unless_turned_off(tiny: tuple) -> None:  # type: ignore[type-arg]
    _world, log, cat, follows = tiny
    ex = build_examples(log, cat, None, follows)
    _, decayed = fit(cat, ex, TrainConfig(epochs=1, batch=512))
    _, flat = fit(cat, ex, TrainConfig(epochs=1, batch=512, lr_decay=False))
    assert decayed.lr_end < 1e-6 * TrainConfig().lr
    assert flat.lr_end == TrainConfig().lr


@pytest.mark.embedded
def test_training_learns_hidden_interests_better_than_popularity(tiny: tuple) -> None:  # type: ignore[type-arg]
    world, log, cat, follows = tiny
    test = temporal_split(log)
    ex = build_examples(log, cat, ~test, follows)
    towers, report = fit(cat, ex, TrainConfig(epochs=3, batch=256))
    assert report.losses[-1] < report.losses[0]
    es = eval_set(log, cat, test, n_users=300, follows=follows)

    def truth(users: object) -> np.ndarray:
        return world.hook_matrix(np.asarray(users, dtype=np.int64))

    score, _ = two_tower_scorer(towers, cat, es)
    model = retrieval_metrics(score, es, truth=truth)
    pop = retrieval_metrics(popularity_scorer(log, cat, ~test), es, truth=truth)
    assert model["oracle_recall@100"] > 2 * pop["oracle_recall@100"], (model, pop)
    # the IVF guard on these trained embeddings: nprobe grows until recall >= 0.95
    from reelplane_ml.retrieval import IndexParams
    from reelplane_ml.train.pipeline import index_params_for

    vec, hist = video_vectors(towers, cat.features)
    row_of = dict(cat.row_of)
    queries = user_vectors(towers, hist, [user_history(es.states[u], row_of, es.now_ms)
                                          for u in es.users])  # fmt: skip
    params, recall = index_params_for(vec, queries, base=IndexParams(exact_below=0))
    assert recall >= 0.95 and params.nprobe >= 1


@pytest.mark.embedded
def test_ml_train_publishes_and_compares_with_the_current_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reelplane.cli import main

    monkeypatch.setenv("REELPLANE_OBJECTS_URL", f"file://{tmp_path / 'objects'}")
    args = ["ml", "train", "--sim", "--sim-users", "300", "--sim-videos", "1200",
            "--sim-impressions", "40", "--epochs", "1", "--no-final-fit"]  # fmt: skip
    runner = CliRunner()
    first = runner.invoke(main, [*args, "--version", "m1"])
    assert first.exit_code == 0, first.output
    current = tmp_path / "objects" / "ml" / "models" / "CURRENT"
    assert current.read_text() == "m1"
    metrics = json.loads(
        (tmp_path / "objects" / "ml" / "models" / "m1" / "metrics.json").read_text()
    )
    assert metrics["previous"] is None and metrics["eval"]["recall@100"] > 0
    second = runner.invoke(main, [*args, "--version", "m2", "--out", str(tmp_path / "out")])
    assert second.exit_code == 0, second.output
    m2 = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m2["previous_version"] == "m1" and m2["previous"]["recall@100"] > 0
    assert (tmp_path / "out" / "model.npz").stat().st_size > 0
    bad = runner.invoke(main, ["ml", "train", "--log", str(tmp_path / "out" / "metrics.json")])
    assert bad.exit_code != 0


@pytest.mark.embedded
async def test_a_serving_replica_picks_up_a_published_model_without_restart_or_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reelplane ml train` publishes to the object store; a replica that is
    serving requests swaps to the new version by itself, in place, while every
    request in flight and after still gets a page."""
    import asyncio
    import time

    from reelplane.backends import open_backends
    from reelplane.cli import main
    from reelplane_ml import serving
    from reelplane_ml.catalogue import store_many
    from reelplane_ml.embedded import EmbeddedRecommender
    from reelplane_ml.serving import CandidatesIn, Replica
    from reelplane_ml.settings import EmbeddedSettings
    from tests.conftest import embedded_settings

    monkeypatch.setattr(serving, "MODEL_POLL_S", 0.2)
    monkeypatch.setenv("REELPLANE_OBJECTS_URL", f"file://{tmp_path / 'objects'}")
    backends = await open_backends(embedded_settings(tmp_path))
    world = World.generate(WorldConfig(n_users=300, n_videos=1200, n_creators=100, seed=5))
    now_ms = int(time.time() * 1000)
    videos = world.features(range(world.n_videos), TextEncoder.shared())
    await store_many(backends.database, videos, now_ms=now_ms)
    settings = EmbeddedSettings()
    replica = Replica.embedded(backends, settings)
    recommender = EmbeddedRecommender(replica, settings)
    replica.start()
    try:
        await asyncio.wait_for(replica.follower.loaded.wait(), 30)
        before = replica.core.version
        pages: list[int] = []
        stop = asyncio.Event()

        async def keep_asking() -> None:
            k = 0
            while not stop.is_set():
                page = await recommender.recommend(CandidatesIn(user_id=f"u{k % 50}", limit=10))
                pages.append(len(page.items))
                k += 1
                await asyncio.sleep(0.01)

        asker = asyncio.create_task(keep_asking())
        args = ["ml", "train", "--sim", "--sim-users", "300", "--sim-videos", "1200",
                "--sim-impressions", "40", "--epochs", "1", "--no-final-fit",
                "--version", "m-pickup"]  # fmt: skip
        result = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert result.exit_code == 0, result.output

        async def swapped() -> None:
            while replica.core.version != "m-pickup":  # noqa: ASYNC110 (polls the core)
                await asyncio.sleep(0.1)

        await asyncio.wait_for(swapped(), 60)
        await asyncio.sleep(0.5)  # requests keep coming after the swap
        stop.set()
        await asker  # raises if any request failed
        assert before != "m-pickup" and replica.core.version == "m-pickup"
        assert len(replica.core) == world.n_videos  # the whole catalogue re-indexed
        assert pages and min(pages) == 10
    finally:
        await recommender.close()
        await replica.stop()
        await backends.close()
