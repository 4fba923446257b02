"""Recommender speed: retrieval latency, index memory, full rebuild and swap.

    .venv/bin/python e2e/bench/recommender_speed.py [--sizes 100000,1000000]
        [--model model.npz] [--queries 2000] [--out .cache/bench/recommender_speed.json]

For each catalogue size N (simulated videos, real wordllama caption
embeddings, the model's video tower; the trained artifact with --model, else
the untrained content towers):
  - retrieval = user tower (from a 50-watch history) + ANN top 300, one thread,
    one request at a time: p50 / p99 (goals: p99 <= 2 ms at 100k, <= 5 ms at 1M);
    the whole `recommend` (all sources, ranker, page) beside it for reference;
  - the index: kind, nlist, nprobe (tuned until recall@100 vs exact >= 0.95 on
    these queries), recall, and its memory (goal <= 600 MB at 1M);
  - full rebuild and swap (every video vector recomputed, a new index trained
    and filled, one swap) while a reader thread keeps requesting: seconds
    (goal <= 60 s at 1M), failed requests (goal 0), slowest request during it.

Prints a table and writes JSON. Not run by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np


def say(msg: str) -> None:
    print(f"[speed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
    }


def one_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    from reelplane_ml.artifact import ModelArtifact, default_artifact
    from reelplane_ml.core import RecommenderCore
    from reelplane_ml.features import TextEncoder
    from reelplane_ml.retrieval import IndexParams, tune_nprobe
    from reelplane_ml.sim.world import World, WorldConfig
    from reelplane_ml.stats import LiveStats
    from reelplane_ml.types import RecommendRequest, UserState, Watch

    faiss.omp_set_num_threads(1)
    t0 = time.perf_counter()
    world = World.generate(
        WorldConfig(n_users=args.queries, n_videos=n, n_creators=max(10, n // 10), seed=args.seed)
    )
    enc = TextEncoder.shared()
    art = ModelArtifact.from_bytes(args.model.read_bytes()) if args.model else default_artifact()
    core = RecommenderCore(art, capacity=n + 1024)
    for s in range(0, n, 20_000):
        core.upsert_videos(world.features(range(s, min(s + 20_000, n)), enc))
    say(f"N={n}: catalogue loaded in {time.perf_counter() - t0:.0f} s (RSS {rss_mb():.0f} MB)")

    # users: 50 watches each from their own interests
    rng = np.random.default_rng(args.seed + 1)
    users: list[UserState] = []
    top = np.argsort(-world.interest, axis=1)[:, :2]
    by_topic = [np.flatnonzero(world.dominant == t) for t in range(world.cfg.n_topics)]
    for q_i in range(args.queries):
        pool = np.concatenate([by_topic[int(t)] for t in top[q_i]])
        vids = rng.choice(pool, size=min(50, len(pool)), replace=False)
        watches = tuple(
            Watch(
                world.video_id(int(v)),
                int(rng.integers(3000, 30000)),
                30000,
                world.cfg.start_ms - k,
            )
            for k, v in enumerate(vids)
        )
        users.append(UserState(world.user_id(q_i), watches=watches))
    now = world.cfg.start_ms

    # the index the serving artifact would carry: IVF above exact_below, nprobe tuned
    t = time.perf_counter()
    core.rebuild_index(IndexParams(kind="auto", nprobe=8))
    first_build = time.perf_counter() - t
    ids, vecs = core.vectors()
    rows = np.asarray(core.candidate_rows(ids), np.int64)
    queries = np.stack([core.user_vector(u, now) for u in users[:500]])
    index = core._model.index
    nprobe, recall = tune_nprobe(index, queries, vecs, rows, k=100, target=0.95)
    info = {
        "kind": index.kind,
        "nlist": int(index._index.nlist) if index.kind == "ivf" else 0,
        "nprobe": nprobe,
        "recall@100_vs_exact": recall,
        "memory_mb": core.index_memory_bytes() / 2**20,
        "first_build_s": first_build,
    }
    say(f"N={n}: index {info}")

    # retrieval: user tower + ANN top 300, one request at a time
    lat: list[float] = []
    for u in users:
        t = time.perf_counter()
        q = core.user_vector(u, now)
        core._search(core._model, q[None, :], 300)
        lat.append((time.perf_counter() - t) * 1000)
    retrieval = percentiles(lat[50:])
    full: list[float] = []
    stats = LiveStats()
    for i, u in enumerate(users[: args.full_requests]):
        t = time.perf_counter()
        core.recommend(RecommendRequest(u.user_id, now_ms=now, limit=10, seed=i), u, stats)
        full.append((time.perf_counter() - t) * 1000)
    recommend = percentiles(full[20:])
    say(f"N={n}: retrieval {retrieval}, recommend {recommend}")

    # full rebuild and swap under load
    failures: list[str] = []
    during: list[float] = []
    stop = threading.Event()

    def reader() -> None:
        i = 0
        while not stop.is_set():
            u = users[i % len(users)]
            i += 1
            t = time.perf_counter()
            try:
                page = core.recommend(RecommendRequest(u.user_id, now_ms=now, limit=10), u, stats)
                if not page:
                    failures.append("empty page")
            except Exception as exc:
                failures.append(repr(exc))
            during.append((time.perf_counter() - t) * 1000)

    th = threading.Thread(target=reader)
    th.start()
    t = time.perf_counter()
    core.rebuild_index(IndexParams(kind="auto", nprobe=nprobe))
    rebuild = time.perf_counter() - t
    stop.set()
    th.join()
    swap = {
        "seconds": rebuild,
        "requests_during": len(during),
        "failed": len(failures),
        "failures": failures[:5],
        "slowest_ms": max(during, default=0.0),
        "p99_ms_during": float(np.percentile(during, 99)) if during else 0.0,
    }
    say(f"N={n}: rebuild+swap {swap}")
    return {
        "videos": n,
        "index": info,
        "retrieval": retrieval,
        "recommend": recommend,
        "rebuild_swap": swap,
        "rss_mb": rss_mb(),
        "model": art.version,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--model", type=Path, default=None, help="a model.npz artifact")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--full-requests", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(".cache/bench/recommender_speed.json"))
    args = ap.parse_args()
    results = [one_size(int(s), args) for s in args.sizes.split(",")]
    goals = {100_000: 2.0, 1_000_000: 5.0}
    print(
        f"{'videos':>9}  {'index':<22} {'recall':>6} {'mem MB':>7}  {'retrieval p50/p99 ms':>21}"
        f"  {'recommend p50/p99 ms':>21}  {'rebuild+swap s':>14} {'failed':>6}"
    )
    for r in results:
        ix, rt, rc, sw = r["index"], r["retrieval"], r["recommend"], r["rebuild_swap"]
        goal = goals.get(r["videos"])
        mark = "" if goal is None else (" ok" if rt["p99_ms"] <= goal else " NOT MET")
        print(
            f"{r['videos']:>9}  {ix['kind']} {ix['nlist']}/{ix['nprobe']:<14} "
            f"{ix['recall@100_vs_exact']:>6.3f} {ix['memory_mb']:>7.0f}  "
            f"{rt['p50_ms']:>9.2f} / {rt['p99_ms']:<6.2f}{mark:<8}"
            f"{rc['p50_ms']:>8.2f} / {rc['p99_ms']:<8.2f}  {sw['seconds']:>14.1f} {sw['failed']:>6}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": {**vars(args), "out": str(args.out), "model": str(args.model)},
                "results": results,
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            },
            indent=2,
        )
    )
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
