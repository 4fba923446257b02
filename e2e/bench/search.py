"""Search benchmark: the two adapters of the search port side by side, one run.

    .venv/bin/python -m e2e.bench.search [--videos 100000] [--queries 300] [--rounds 3]
                                         [--json .cache/bench/search.json]

The same synthetic catalogue (captions from a 4,000-word vocabulary with a
Zipf-like word frequency, 1-4 hashtags out of 800, 10,000 creators, likes and
ages spread like a real catalogue's) is indexed into SQLite FTS5 (a fresh file)
and into OpenSearch 2.19 (the harness's node, fresh indices), through the port
in batches of 1,000 (indexing rate, docs/s). Then each engine answers the same
queries of five kinds, one at a time, top 20 (client-side latency, p50/p99):

* words: one or two whole caption words;
* prefix: a whole word and the next one half typed (search-as-you-type);
* typo: a whole word with one letter changed;
* hashtag: a hashtag's listing (`#tag`, by popularity and freshness);
* users: a handle's first letters, over 10,000 users.

--rounds repeats the query sets, alternating the engines, and reports the median
round, so a burst of load from other processes on a shared machine hits both.
OpenSearch's memory is the node's resident set (VmRSS) idle, after indexing and
after the queries. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from reelplane.adapters.search_opensearch import OpenSearchIndex
from reelplane.adapters.search_sqlite import SqliteSearchIndex
from reelplane.infra.registry import make_harness
from reelplane.ports.search import SearchIndex, UserDoc, VideoDoc
from reelplane.ports.search_query import parse_query

ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 24 * 3600 * 1000
BATCH = 1000
SYLLABLES = [
    "ka", "lo", "mi", "ra", "ve", "to", "su", "ne", "di", "po", "la", "fe", "go", "ri",
    "sa", "mo", "te", "vi", "na", "bu", "ze", "pa", "lu", "ko", "ti", "da", "me", "so",
]  # fmt: skip


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def zipf_pick(rng: random.Random, items: list[str], s: float = 1.1) -> str:
    """An item with a heavy head: item i is picked with weight ~ 1 / (i+1)^s."""
    n = len(items)
    i = int(n ** rng.random() ** s) - 1  # a cheap log-uniform draw
    return items[min(max(i, 0), n - 1)]


def catalogue(
    seed: int, n_videos: int, n_users: int
) -> tuple[list[VideoDoc], list[UserDoc], list[str], list[str]]:
    rng = random.Random(seed)
    words = vocabulary(rng, 4000)
    tags = [f"{w}{i % 10}" if i % 3 == 0 else w for i, w in enumerate(rng.sample(words, 800))]
    handles = [f"{rng.choice(words)}_{rng.choice(words)}{i}" for i in range(n_users)]
    users = [
        UserDoc(f"u{i}", h, " ".join(w.title() for w in h.split("_")), int(rng.paretovariate(1.2)))
        for i, h in enumerate(handles)
    ]
    now = int(time.time() * 1000)
    videos = []
    for i in range(n_videos):
        owner = rng.randrange(n_users)
        caption = " ".join(zipf_pick(rng, words) for _ in range(rng.randint(4, 14)))
        videos.append(
            VideoDoc(
                video_id=f"v{i}",
                owner_id=f"u{owner}",
                handle=handles[owner],
                caption=caption,
                hashtags=tuple(
                    dict.fromkeys(zipf_pick(rng, tags) for _ in range(rng.randint(1, 4)))
                ),
                ready_at_ms=now - int(rng.random() * 60 * DAY_MS),
                likes=int(rng.paretovariate(1.1)) - 1,
                comments=int(rng.paretovariate(1.5)) - 1,
                views=int(rng.paretovariate(0.9) * 10),
            )
        )
    return videos, users, words, tags


def query_sets(
    seed: int, n: int, words: list[str], tags: list[str], handles: list[str]
) -> dict[str, list[str]]:
    rng = random.Random(seed + 1)

    def typo(w: str) -> str:
        i = rng.randrange(len(w))
        return w[:i] + rng.choice("aeiou" if w[i] not in "aeiou" else "kmt") + w[i + 1 :]

    common = words[:400]  # the head: words that are in many captions
    return {
        "words": [" ".join(rng.sample(common, rng.randint(1, 2))) + " " for _ in range(n)],
        "prefix": [
            f"{rng.choice(common)} {rng.choice(common)[: rng.randint(2, 4)]}" for _ in range(n)
        ],
        "typo": [typo(rng.choice([w for w in common if len(w) >= 5])) + " " for _ in range(n)],
        "hashtag": [f"#{zipf_pick(rng, tags)}" for _ in range(n)],
        "users": [rng.choice(handles)[: rng.randint(2, 5)] for _ in range(n)],
    }


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 1e6


async def index_all(
    index: SearchIndex, videos: list[VideoDoc], users: list[UserDoc]
) -> dict[str, float]:
    started = time.perf_counter()
    for i in range(0, len(videos), BATCH):
        await index.upsert_videos(videos[i : i + BATCH])
    await index.refresh()
    videos_s = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(0, len(users), BATCH):
        await index.upsert_users(users[i : i + BATCH])
    await index.refresh()
    users_s = time.perf_counter() - started
    return {
        "videos_s": videos_s,
        "videos_per_s": len(videos) / videos_s,
        "users_s": users_s,
        "users_per_s": len(users) / users_s,
    }


async def run_queries(index: SearchIndex, kind: str, queries: list[str]) -> dict[str, Any]:
    now = int(time.time() * 1000)
    run: Callable[[str], Awaitable[int]]
    if kind == "users":

        async def run(q: str) -> int:
            return len((await index.search_users(parse_query(q), limit=20)).items)
    else:

        async def run(q: str) -> int:
            page = await index.search_videos(parse_query(q), limit=20, now_ms=now)
            return len(page.items)

    latencies = []
    hits = 0
    for q in queries:
        t0 = time.perf_counter()
        found = await run(q)
        latencies.append((time.perf_counter() - t0) * 1000)
        hits += found > 0
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "with_results": hits / len(queries),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    harness = make_harness()
    harness.up(["search"])
    server = harness.servers["search"]
    pid = server.running_pid()
    videos, users, words, tags = catalogue(7, args.videos, args.users)
    queries = query_sets(7, args.queries, words, tags, [u.handle for u in users])
    tmp = Path(tempfile.mkdtemp(prefix="search-bench-"))
    engines: dict[str, SearchIndex] = {
        "fts5": SqliteSearchIndex(tmp / "search.sqlite"),
        "opensearch": OpenSearchIndex(f"{server.url}/bench{uuid.uuid4().hex[:8]}"),
    }
    result: dict[str, Any] = {
        "videos": args.videos,
        "users": args.users,
        "queries_per_kind": args.queries,
        "rounds": args.rounds,
        "opensearch_rss_mb": {"idle": rss_mb(pid)},
        "engines": {},
    }
    try:
        for name, index in engines.items():
            await index.ensure_indices()
            print(f"indexing {args.videos} videos into {name} ...", flush=True)
            result["engines"][name] = {"indexing": await index_all(index, videos, users)}
        result["opensearch_rss_mb"]["indexed"] = rss_mb(pid)
        result["fts5_file_mb"] = folder_mb(tmp)
        rounds: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in engines}
        for r in range(args.rounds):
            order = list(engines) if r % 2 == 0 else list(reversed(engines))
            for name in order:
                for kind, qs in queries.items():
                    stats = await run_queries(engines[name], kind, qs)
                    rounds[name].setdefault(kind, []).append(stats)
            print(f"round {r + 1}/{args.rounds} done", flush=True)
        for name in engines:
            result["engines"][name]["queries"] = {
                kind: sorted(runs, key=lambda s: s["p50_ms"])[len(runs) // 2]
                for kind, runs in rounds[name].items()
            }
        result["opensearch_rss_mb"]["after_queries"] = rss_mb(pid)
    finally:
        os_index = engines["opensearch"]
        if isinstance(os_index, OpenSearchIndex):
            await os_index.drop_indices()
        for index in engines.values():
            await index.close()
    return result


def print_table(result: dict[str, Any]) -> None:
    fts, osr = result["engines"]["fts5"], result["engines"]["opensearch"]
    print()
    print(
        f"Search benchmark: {result['videos']:,} videos, {result['users']:,} users, "
        f"{result['queries_per_kind']} queries per kind, median of {result['rounds']} rounds"
    )
    print(f"{'':<22}{'FTS5':>14}{'OpenSearch':>14}{'OS / FTS5':>12}")
    a, b = fts["indexing"]["videos_per_s"], osr["indexing"]["videos_per_s"]
    print(f"{'index videos (doc/s)':<22}{a:>14,.0f}{b:>14,.0f}{b / a:>12.2f}")
    a, b = fts["indexing"]["users_per_s"], osr["indexing"]["users_per_s"]
    print(f"{'index users (doc/s)':<22}{a:>14,.0f}{b:>14,.0f}{b / a:>12.2f}")
    for kind in fts["queries"]:
        f, o = fts["queries"][kind], osr["queries"][kind]
        for stat in ("p50_ms", "p99_ms"):
            label = f"{kind} {stat.replace('_ms', '')} (ms)"
            print(f"{label:<22}{f[stat]:>14.2f}{o[stat]:>14.2f}{o[stat] / f[stat]:>12.2f}")
        label = f"{kind} with results"
        print(f"{label:<22}{f['with_results']:>14.0%}{o['with_results']:>14.0%}")
    rss = result["opensearch_rss_mb"]
    print("OpenSearch RSS (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items() if v))
    print(f"FTS5 file: {result['fts5_file_mb']:.0f} MB")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=ROOT / ".cache" / "bench" / "search.json")
    args = parser.parse_args()
    result = asyncio.run(main(args))
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    cli()
