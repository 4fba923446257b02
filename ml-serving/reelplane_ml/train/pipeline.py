"""One training run: split the log by time, train, evaluate against popularity
and the previous model on the same held-out data, tune the index, and decide
whether the new model may replace the previous one."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reelplane_ml.artifact import ModelArtifact
from reelplane_ml.core import user_history
from reelplane_ml.evaluate import (
    EvalSet,
    eval_set,
    popularity_scorer,
    retrieval_metrics,
    two_tower_scorer,
)
from reelplane_ml.interactions import InteractionLog
from reelplane_ml.ranker import default_ranker, with_log_priors
from reelplane_ml.retrieval import AnnIndex, IndexParams, tune_nprobe
from reelplane_ml.towers import user_vectors, video_vectors
from reelplane_ml.train.data import Catalogue, build_examples, temporal_split
from reelplane_ml.train.loop import TrainConfig, fit
from reelplane_ml.types import VideoFeatures

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class TrainingInput:
    log: InteractionLog
    features: Sequence[VideoFeatures]
    follows: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class RunResult:
    artifact: ModelArtifact
    metrics: dict[str, Any]
    accepted: bool


def index_params_for(
    vec: F32, queries: F32, *, base: IndexParams | None = None, target: float = 0.95
) -> tuple[IndexParams, float]:
    """Index parameters for these vectors: exact below `exact_below`, else IVF
    with nprobe doubled until recall@100 against exact search reaches `target`."""
    base = base or IndexParams()
    if len(vec) < base.exact_below or base.kind == "exact":
        return base, 1.0
    ids = np.arange(len(vec), dtype=np.int64)
    index = AnnIndex.build(vec, ids, IndexParams(kind="ivf", nlist=base.nlist, nprobe=8))
    nprobe, recall = tune_nprobe(index, queries, vec, ids, k=100, target=target)
    return IndexParams(kind="auto", nlist=base.nlist, nprobe=nprobe,
                       exact_below=base.exact_below), recall  # fmt: skip


def run_training(
    inp: TrainingInput,
    cfg: TrainConfig,
    *,
    version: str,
    previous: ModelArtifact | None = None,
    eval_users: int = 2000,
    truth: Callable[[Sequence[int]], F32] | None = None,
    final_fit: bool = True,
    tolerance: float = 0.02,
    log_progress: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Train on each user's first 80 % (by time), evaluate on the last 20 %;
    accept when recall@100 is at least (1 - tolerance) x the previous model's.
    With `final_fit`, the accepted configuration is refitted on the whole log."""
    started = time.perf_counter()
    cat = Catalogue.of(inp.features)
    test = temporal_split(inp.log)
    ex = build_examples(inp.log, cat, ~test, inp.follows)
    log_progress(f"{len(inp.log)} impressions, {len(ex)} training examples")
    es: EvalSet = eval_set(inp.log, cat, test, n_users=eval_users, follows=inp.follows)
    towers, report = fit(cat, ex, cfg)
    log_progress(f"trained in {report.seconds:.1f} s ({report.examples_per_s:.0f} examples/s)")
    score, _ = two_tower_scorer(towers, cat, es)
    new = retrieval_metrics(score, es, truth=truth)
    pop = retrieval_metrics(popularity_scorer(inp.log, cat, ~test), es, truth=truth)
    prev: dict[str, float] | None = None
    if previous is not None:
        prev_score, _ = two_tower_scorer(previous.towers, cat, es)
        prev = retrieval_metrics(prev_score, es, truth=truth)
    accepted = prev is None or new["recall@100"] >= (1 - tolerance) * prev["recall@100"]
    if accepted and final_fit:
        ex_all = build_examples(inp.log, cat, None, inp.follows)
        towers, report_all = fit(cat, ex_all, cfg)
        log_progress(f"final fit on all {len(ex_all)} examples in {report_all.seconds:.1f} s")
    vec, hist = video_vectors(towers, cat.features)
    row_of = dict(cat.row_of)
    states = [user_history(es.states[u], row_of, es.now_ms) for u in es.users[:500]]  # type: ignore[arg-type]
    queries = user_vectors(towers, hist, states)
    params, ivf_recall = index_params_for(vec, queries)
    metrics: dict[str, Any] = {
        "version": version,
        "impressions": len(inp.log),
        "videos": cat.n,
        "examples": len(ex),
        "train": asdict(cfg),
        "fit": asdict(report),
        "eval": new,
        "popularity": pop,
        "previous": prev,
        "previous_version": previous.version if previous else None,
        "accepted": accepted,
        "final_fit": accepted and final_fit,
        "index": {**asdict(params), "recall@100_vs_exact": ivf_recall},
        "seconds": time.perf_counter() - started,
    }
    ranker = with_log_priors(default_ranker(), inp.log)
    artifact = ModelArtifact(version, towers, ranker, params, metrics={
        "eval": new, "popularity": pop})  # fmt: skip
    return RunResult(artifact, metrics, accepted)
