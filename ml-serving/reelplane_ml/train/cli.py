"""`reelplane ml ...`: train and publish recommender models.

torch is imported only inside the commands that train, so `reelplane --help`
works without the `train` extra (`./reelplane ml ...` installs it).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click

from reelplane.clitools import one_line_errors
from reelplane.errors import ConfigError


@click.group("ml")
def ml_group() -> None:
    """The For You recommender: train, evaluate and publish models."""


def _load_features(path: Path) -> list[Any]:
    from reelplane_ml.features import features_from_json

    out = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(features_from_json(line))
                except ValueError as exc:
                    raise ConfigError("--features", f"{path}:{n}: not a features record") from exc
    return out


def _load_follows(path: Path | None) -> dict[str, frozenset[str]]:
    if path is None:
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError("--follows", f"{path}: expected an object user_id -> [creator_id]")
    return {str(u): frozenset(str(c) for c in cs) for u, cs in data.items()}


@ml_group.command("train")
@click.option("--log", "log_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Interaction log: JSONL of engagement records (user_id, video_id, at_ms, "
                   "watched_ms, duration_ms, liked, shared, followed).")  # fmt: skip
@click.option("--features", "features_path", type=click.Path(path_type=Path, exists=True),
              help="Video features: JSONL, one reelplane_ml.features record per line.")  # fmt: skip
@click.option("--follows", "follows_path", type=click.Path(path_type=Path, exists=True),
              help="JSON object user_id -> [followed creator ids] (optional).")  # fmt: skip
@click.option("--sim", is_flag=True, help="Train on the simulator's world instead of a log.")
@click.option("--sim-users", default=10_000, show_default=True)
@click.option("--sim-videos", default=30_000, show_default=True)
@click.option("--sim-impressions", default=120, show_default=True, help="Per user.")
@click.option("--seed", default=0, show_default=True)
@click.option("--epochs", default=3, show_default=True)
@click.option("--batch", default=1024, show_default=True)
@click.option("--threads", default=1, show_default=True, help="torch threads.")
@click.option("--no-logq", is_flag=True, help="Ablation: no sampling-bias correction.")
@click.option("--final-fit/--no-final-fit", default=True, show_default=True,
              help="Refit the accepted model on the whole log before publishing.")  # fmt: skip
@click.option("--version", "version", default=None, help="Default: UTC timestamp.")
@click.option("--publish/--no-publish", default=True, show_default=True)
@click.option("--force", is_flag=True, help="Publish even when worse than the current model.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Also write model.npz and metrics.json here.")  # fmt: skip
@one_line_errors
def train(
    log_path: Path | None,
    features_path: Path | None,
    follows_path: Path | None,
    sim: bool,
    sim_users: int,
    sim_videos: int,
    sim_impressions: int,
    seed: int,
    epochs: int,
    batch: int,
    threads: int,
    no_logq: bool,
    final_fit: bool,
    version: str | None,
    publish: bool,
    force: bool,
    out_dir: Path | None,
) -> None:
    """Read the interaction log, train the two-tower model, evaluate it against
    popularity and the current model on held-out data, and publish a versioned
    artifact (weights, index parameters, metrics) to the object store."""
    try:
        from reelplane_ml.train.loop import TrainConfig
    except ImportError as exc:  # torch missing
        raise ConfigError(
            "torch", "the trainer needs the 'train' extra: run it as ./reelplane ml train"
        ) from exc
    from reelplane.backends import make_objects
    from reelplane.settings import load_settings
    from reelplane_ml.interactions import InteractionLog
    from reelplane_ml.store import load_current_artifact, publish_artifact
    from reelplane_ml.train.pipeline import TrainingInput, run_training

    truth = None
    if sim:
        from reelplane_ml.features import TextEncoder
        from reelplane_ml.sim.world import World, WorldConfig

        world = World.generate(
            WorldConfig(n_users=sim_users, n_videos=sim_videos,
                        n_creators=max(1, sim_videos // 10), seed=seed)
        )  # fmt: skip
        log = world.logged_exposure(sim_impressions, seed=seed + 1)
        features = world.features(range(world.n_videos), TextEncoder.shared())
        follows = {
            world.user_id(u): frozenset(world.creator_id(c) for c in world.follows[u])
            for u in range(world.n_users)
        }

        def truth(users: Any) -> Any:
            import numpy as np

            return world.hook_matrix(np.asarray(users, dtype=np.int64))
    else:
        if log_path is None or features_path is None:
            raise ConfigError("--log", "give --log and --features (exports), or --sim")
        try:
            log = InteractionLog.read_jsonl(log_path)
        except ValueError as exc:
            raise ConfigError("--log", str(exc)) from exc
        features = _load_features(features_path)
        follows = _load_follows(follows_path)
    if len(log) == 0:
        raise ConfigError("--log", "the interaction log is empty")
    cfg = TrainConfig(epochs=epochs, batch=batch, threads=threads, logq=not no_logq, seed=seed)
    version = version or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    settings = load_settings()
    store = make_objects(settings)

    async def previous() -> Any:
        try:
            return await load_current_artifact(store)
        except ValueError:
            return None

    prev = asyncio.run(previous())
    result = run_training(
        TrainingInput(log, features, follows), cfg, version=version, previous=prev,
        truth=truth, final_fit=final_fit, log_progress=lambda m: click.echo(f"ml: {m}", err=True),
    )  # fmt: skip
    m = result.metrics
    line = (
        f"recall@100 {m['eval']['recall@100']:.4f} ndcg@100 {m['eval']['ndcg@100']:.4f} "
        f"(popularity {m['popularity']['recall@100']:.4f} / {m['popularity']['ndcg@100']:.4f}"
    )
    if m["previous"]:
        line += f"; previous {m['previous_version']}: {m['previous']['recall@100']:.4f}"
    click.echo(f"ml: {line})", err=True)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "model.npz").write_bytes(result.artifact.to_bytes())
        (out_dir / "metrics.json").write_text(json.dumps(m, indent=2, sort_keys=True))
    if not publish:
        click.echo(f"reelplane: model {version} trained (not published)")
        return
    if not result.accepted and not force:
        raise ConfigError(
            "--force", f"model {version} is worse than the current {m['previous_version']}; "
            "not published (--force publishes anyway)"
        )  # fmt: skip

    async def go() -> None:
        try:
            await publish_artifact(store, result.artifact, m)
        finally:
            await store.close()

    asyncio.run(go())
    click.echo(f"reelplane: model {version} published (ml/models/{version}/, CURRENT)")
