"""Offline evaluation of retrieval (numpy only): recall@K and NDCG@K of held-out
positives, and, when the hidden truth is known (the simulator), oracle
recall@K against each user's true top K.

Protocol: each user's last 20 % of impressions (by time) are held out; the
user vector is computed from the rest exactly as serving computes it
(`core.user_history` over a `UserState`); every video the user saw before is
excluded from the ranking; the positives are the held-out positives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reelplane_ml.core import user_history
from reelplane_ml.interactions import InteractionLog
from reelplane_ml.towers import TowerWeights, user_vectors, video_vectors
from reelplane_ml.train.data import Catalogue, user_states

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]

#: (users) -> (len(users), V) scores over the catalogue, higher is better.
Scorer = Callable[[Sequence[int]], F32]


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Held-out positives and seen items of the evaluated users (catalogue rows)."""

    users: tuple[int, ...]  # log user indices
    positives: tuple[frozenset[int], ...]
    seen: tuple[I64, ...]
    states: Mapping[int, object]
    now_ms: int


def eval_set(
    log: InteractionLog,
    cat: Catalogue,
    test: NDArray[np.bool_],
    *,
    n_users: int,
    seed: int = 0,
    follows: Mapping[str, frozenset[str]] | None = None,
    restrict: NDArray[np.bool_] | None = None,
) -> EvalSet:
    """Up to `n_users` users with at least one held-out positive (optionally
    only positives on catalogue rows where `restrict` is True)."""
    rows = np.array([cat.row_of.get(v, -1) for v in log.video_ids], np.int64)[log.video]
    pos = test & log.positive & (rows >= 0)
    if restrict is not None:
        pos &= np.where(rows >= 0, restrict[np.maximum(rows, 0)], False)
    candidates = np.unique(log.user[pos])
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(candidates, size=min(n_users, len(candidates)), replace=False))
    train = ~test
    positives: list[frozenset[int]] = []
    seen: list[I64] = []
    by_user_train: dict[int, list[int]] = {int(u): [] for u in users}
    by_user_pos: dict[int, set[int]] = {int(u): set() for u in users}
    sel = np.isin(log.user, users) & (rows >= 0)
    for i in np.flatnonzero(sel).tolist():
        u = int(log.user[i])
        if train[i]:
            by_user_train[u].append(int(rows[i]))
        elif pos[i]:
            by_user_pos[u].add(int(rows[i]))
    for u in users.tolist():
        s = set(by_user_train[u])
        positives.append(frozenset(by_user_pos[u] - s))
        seen.append(np.asarray(sorted(s), np.int64))
    states = user_states(log, train, users.tolist(), follows)
    return EvalSet(
        tuple(int(u) for u in users),
        tuple(positives),
        tuple(seen),
        states,
        int(log.at_ms[train].max()) if train.any() else 0,
    )


def two_tower_scorer(towers: TowerWeights, cat: Catalogue, es: EvalSet) -> tuple[Scorer, F32]:
    """A scorer from numpy towers (as served), and the video vectors."""
    vec, hist = video_vectors(towers, cat.features)
    row_of = dict(cat.row_of)

    def score(users: Sequence[int]) -> F32:
        hists = [user_history(es.states[u], row_of, es.now_ms) for u in users]  # type: ignore[arg-type]
        out: F32 = user_vectors(towers, hist, hists) @ vec.T
        return out

    return score, vec


def top_k(
    scores: F32, seen: Sequence[I64], k: int, allowed: NDArray[np.bool_] | None = None
) -> I64:
    s = scores.copy()
    for i, rows in enumerate(seen):
        s[i, rows] = -np.inf
    if allowed is not None:
        s[:, ~allowed] = -np.inf
    kk = min(k, s.shape[1])
    part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    out: I64 = np.take_along_axis(part, order, axis=1)
    return out


def retrieval_metrics(
    scorer: Scorer,
    es: EvalSet,
    *,
    k: int = 100,
    truth: Callable[[Sequence[int]], F32] | None = None,
    allowed: NDArray[np.bool_] | None = None,
    chunk: int = 256,
) -> dict[str, float]:
    """recall@k, ndcg@k of held-out positives; oracle_recall@k when `truth`
    (the hidden expected engagement, (users, V)) is given. `allowed` limits the
    ranking (and the truth) to some catalogue rows."""
    recalls: list[float] = []
    ndcgs: list[float] = []
    oracle: list[float] = []
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    for s in range(0, len(es.users), chunk):
        users = es.users[s : s + chunk]
        seen = es.seen[s : s + chunk]
        found = top_k(scorer(users), seen, k, allowed)
        for j, _u in enumerate(users):
            pos = es.positives[s + j]
            if allowed is not None:
                pos = frozenset(p for p in pos if allowed[p])
            if pos:
                hits = np.array([r in pos for r in found[j]], dtype=np.float64)
                recalls.append(hits.sum() / len(pos))
                ideal = discount[: min(len(pos), k)].sum()
                ndcgs.append(float((hits * discount[: len(hits)]).sum() / ideal))
        if truth is not None:
            best = top_k(truth(users), seen, k, allowed)
            for j in range(len(users)):
                oracle.append(len(set(found[j].tolist()) & set(best[j].tolist())) / k)
    out = {
        f"recall@{k}": float(np.mean(recalls)) if recalls else 0.0,
        f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else 0.0,
        "users": float(len(recalls)),
    }
    if truth is not None:
        out[f"oracle_recall@{k}"] = float(np.mean(oracle)) if oracle else 0.0
    return out


def popularity_scorer(log: InteractionLog, cat: Catalogue, train: NDArray[np.bool_]) -> Scorer:
    """Everyone gets the videos with the most training positives."""
    rows = np.array([cat.row_of.get(v, -1) for v in log.video_ids], np.int64)[log.video]
    ok = train & log.positive & (rows >= 0)
    counts = np.bincount(rows[ok], minlength=cat.n).astype(np.float32)[: cat.n]

    def score(users: Sequence[int]) -> F32:
        out: F32 = np.broadcast_to(counts, (len(users), cat.n)).copy()
        return out

    return score
