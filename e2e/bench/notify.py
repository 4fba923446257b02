"""Notify benchmark: event -> WebSocket latency, and a slow client's memory.

    .venv/bin/python -m e2e.bench.notify [--events 1000] [--rate 20] [--publish 60000]
                                         [--json .cache/bench/notify.json]

1. Latency, two variants in one run:
   * real: Kafka, Redis, MariaDB, Cassandra (the harness's servers) and two
     notify replicas, each its own process: A holds ada's WebSocket and runs no
     background task, B serves the API and runs the consumers, so every push
     crosses replicas through Redis pub/sub (topics, groups, keys and channels
     under a fresh namespace, as the tests do);
   * embedded: one process on the embedded backends (`reelplane dev`'s shape).
   bob likes, comments on and follows ada --events times in all (a third each;
   like and follow are undone between rounds, unlike/unfollow notify nobody),
   open loop at --rate events/s. Latency is from just before bob's request to
   the frame on ada's socket (p50/p99, goal p99 <= 1 s), and from the event's
   `occurred_at` to the frame.
2. Memory (real, replica A): a client that reads nothing (no compression, its
   library holds one frame) while --publish live messages are published for it
   straight to Redis; replica A's resident set (VmRSS) is sampled every 0.25 s.
   The baseline, in the same run, is a client that reads everything. The slow
   client should be dropped (close 4429) and A's RSS level off.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["gateway", "upload", "graph", "engagement", "notify"]
BENCH_ENV = {
    "REELPLANE_RATE_LIMIT_IP_BURST": "1000000000",
    "REELPLANE_RATE_LIMIT_IP_PER_S": "1000000000",
    "REELPLANE_RATE_LIMIT_USER_BURST": "1000000000",
    "REELPLANE_RATE_LIMIT_USER_PER_S": "1000000000",
    "REELPLANE_LOG_LEVEL": "warning",
}
KINDS = ["like", "comment", "follow"]
LOG_DIR = ROOT / ".cache" / "bench" / "logs"


# -- the replicas (child processes) ----------------------------------------------------
def serve(role: str, port: int, ns: str) -> None:
    """Replica `a` (notify only, no background tasks), `b` (the API and the
    consumers) or `all` (embedded: everything in one process)."""
    import uvicorn
    from tests.social.conftest import NamespacedBus, NamespacedCache, NamespacedGate

    from reelplane.backends import open_backends
    from reelplane.http.app import create_app
    from reelplane.logs import configure_logging
    from reelplane.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)

    async def run() -> None:
        backends = await open_backends(settings, migrate=role != "a")
        if ns:
            backends.bus = NamespacedBus(backends.bus, f"{ns}.")
            backends.cache = NamespacedCache(backends.cache, f"{ns}:")
            backends.gate = NamespacedGate(backends.gate, f"{ns}:")
        app = create_app(
            settings,
            ["notify"] if role == "a" else SERVICES,
            backends=backends,
            run_background=role != "a",
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        try:
            await uvicorn.Server(config).serve()
        finally:
            await backends.close()

    asyncio.run(run())


@dataclass
class Replica:
    role: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/notifications/live"


def start(role: str, env: dict[str, str], ns: str) -> Replica:
    from tests.helpers import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "e2e.bench.notify", "--serve", role, "--port", str(port)]
    log = LOG_DIR / f"notify-replica-{role}.log"  # their warnings, apart from the table
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*cmd, "--ns", ns], cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=out
        )
    return Replica(role, port, proc)


async def wait_ready(r: Replica, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=r.url) as client:
        while time.monotonic() < deadline:
            assert r.proc.poll() is None, f"replica {r.role} exited"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise TimeoutError(f"replica {r.role} not ready in {timeout_s} s")


def stop(replicas: list[Replica]) -> None:
    for r in replicas:
        r.proc.terminate()
    for r in replicas:
        try:
            r.proc.wait(20)
        except subprocess.TimeoutExpired:
            r.proc.kill()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the client side --------------------------------------------------------------------
@dataclass
class Account:
    user_id: str
    handle: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


async def sign_up(client: httpx.AsyncClient, handle: str) -> Account:
    resp = await client.post("/v1/accounts", json={"handle": handle, "password": "bench-pass-1"})
    resp.raise_for_status()
    body = resp.json()
    return Account(body["user_id"], body["handle"], body["token"])


async def make_video(database_url: str, owner_id: str) -> str:
    """A ready video of ada's, written to the store as upload and transcode do."""
    from types import SimpleNamespace

    from tests.social.conftest import Stack

    from reelplane.backends import make_database
    from reelplane.settings import load_settings

    db = make_database(load_settings(database_url=database_url))
    try:
        fake = SimpleNamespace(backends=SimpleNamespace(database=db))
        video_id: str = await Stack.ready_video(fake, owner_id, publish=False)  # type: ignore[arg-type]
        return video_id
    finally:
        await db.close()


async def open_socket(url: str, who: Account, **kwargs: Any) -> ClientConnection:
    ws = await connect(
        url,
        subprotocols=["reelplane.notify.v1", f"bearer.{who.token}"],  # type: ignore[list-item]
        **kwargs,
    )
    await ws.send(json.dumps({"type": "hello"}))
    return ws


@dataclass
class Inbox:
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                now = time.time()
                frame = json.loads(raw)
                if frame.get("type") == "notification":
                    self.frames.append((now, frame["notification"]))
                    self.arrived.set()

    async def wait_for(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while len(self.frames) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)
        return True


def pct_ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def latency_run(
    variant: str, api: Replica, live: Replica, database_url: str, events: int, rate: float
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        ada = await sign_up(client, f"ada{tag}")
        bob = await sign_up(client, f"bob{tag}")
        video = await make_video(database_url, ada.user_id)
        ws = await open_socket(live.ws, ada)
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "ready"
        inbox = Inbox()
        reader = asyncio.create_task(inbox.read(ws))

        async def act(kind: str, i: int) -> None:
            if kind == "like":
                (await client.put(f"/v1/videos/{video}/like", headers=bob.auth)).raise_for_status()
            elif kind == "comment":
                resp = await client.post(
                    f"/v1/videos/{video}/comments", json={"text": f"nice {i}"}, headers=bob.auth
                )
                resp.raise_for_status()
            else:
                path = f"/v1/users/{ada.handle}/follow"
                (await client.put(path, headers=bob.auth)).raise_for_status()

        async def undo(kind: str) -> None:
            if kind == "like":
                await client.delete(f"/v1/videos/{video}/like", headers=bob.auth)
            elif kind == "follow":
                await client.delete(f"/v1/users/{ada.handle}/follow", headers=bob.auth)

        # Warm-up: the consumer group has joined and the path is hot.
        await act("follow", -1)
        await undo("follow")
        warm = await inbox.wait_for(1, 120)
        assert warm, f"{variant}: no notification within 120 s of the warm-up"
        inbox.frames.clear()

        sent_at: dict[str, list[float]] = {k: [] for k in KINDS}
        start = time.perf_counter()
        t0 = time.time()
        for i in range(events):
            kind = KINDS[i % 3]
            due = start + i / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            sent_at[kind].append(time.time())
            await act(kind, i)
            await undo(kind)
        send_s = time.time() - t0
        complete = await inbox.wait_for(events, 60)
        await ws.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

    # Per kind, the n-th request's notification is the n-th of that kind to
    # arrive (one actor: one partition, in order).
    from_request: list[float] = []
    from_event: list[float] = []
    seen: dict[str, int] = {k: 0 for k in KINDS}
    for arrived, n in inbox.frames:
        kind = n["kind"]
        if kind in seen and seen[kind] < len(sent_at[kind]):
            from_request.append(arrived - sent_at[kind][seen[kind]])
            seen[kind] += 1
        from_event.append(arrived - n["at_ms"] / 1000)
    return {
        "variant": variant,
        "events": events,
        "rate_per_s": rate,
        "achieved_rate_per_s": round(events / send_s, 1),
        "received": len(inbox.frames),
        "complete": complete,
        "request_to_socket_ms": {
            "p50": pct_ms(from_request, 0.5),
            "p99": pct_ms(from_request, 0.99),
            "max": pct_ms(from_request, 1.0),
        },
        "event_to_socket_ms": {
            "p50": pct_ms(from_event, 0.5),
            "p99": pct_ms(from_event, 0.99),
            "max": pct_ms(from_event, 1.0),
        },
    }


async def memory_run(
    live: Replica, api: Replica, cache_url: str, ns: str, publish: int, reads: bool
) -> dict[str, Any]:
    """Replica A's RSS while `publish` messages go to one client's user (which
    reads them all, or nothing)."""
    from reelplane.adapters.cache_redis import RedisCache
    from reelplane.notify.core import Kind, Notification
    from reelplane.notify.live import LIVE_CHANNEL, LiveMessage

    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        who = await sign_up(client, f"slow{uuid.uuid4().hex[:6]}")
    ws = await open_socket(live.ws, who, max_queue=None if reads else 1, compression=None)
    assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "ready"
    inbox = Inbox()
    reader = asyncio.create_task(inbox.read(ws)) if reads else None
    redis = RedisCache(cache_url)
    samples: list[dict[str, float]] = []
    sent = 0
    t0 = time.monotonic()

    async def sample() -> None:
        while True:
            samples.append(
                {
                    "t_s": round(time.monotonic() - t0, 2),
                    "rss_mb": round(rss_mb(live.proc.pid), 1),
                    "published": sent,
                }
            )
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    text = "y" * 140
    try:
        while sent < publish:
            for i in range(500):
                n = Notification(
                    id=f"m{sent + i}", kind=Kind.COMMENT, actor_id="bob", text=text, at_ms=1
                )
                raw = LiveMessage(user_id=who.user_id, notification=n).model_dump_json()
                await redis.publish(f"{ns}:{LIVE_CHANNEL}", raw.encode())
            sent += 500
        await asyncio.sleep(2.0)  # the tail: A settles
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        await redis.close()
    close_code: int | None = None
    if reader is not None:
        await inbox.wait_for(publish, 30)
        await ws.close()
        reader.cancel()
    else:
        # Now read: what was buffered, then (if it was dropped) the close frame.
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(30):
                async for _ in ws:
                    pass
        close_code = ws.close_code
        await ws.close()
    rss = [s["rss_mb"] for s in samples]
    return {
        "client": "reads everything" if reads else "reads nothing",
        "published": publish,
        "received": len(inbox.frames) if reads else None,
        "close_code": close_code,
        "rss_mb_start": rss[0],
        "rss_mb_peak": max(rss),
        "rss_mb_end": rss[-1],
        "rss_mb_last_half_spread": round(max(rss[len(rss) // 2 :]) - min(rss[len(rss) // 2 :]), 1),
        "samples": samples,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from reelplane.infra.registry import make_harness

    harness = make_harness()
    names = ["kafka", "redis", "mariadb", "cassandra"]
    harness.up(names)
    real_env = {harness.servers[n].setting: harness.servers[n].url for n in names}
    result: dict[str, Any] = {"events": args.events, "rate_per_s": args.rate, "latency": {}}

    # Real: two replicas, namespaced.
    ns = f"bench{uuid.uuid4().hex[:8]}"
    env = {**BENCH_ENV, **real_env}
    b = start("b", env, ns)
    replicas = [b]
    try:
        await wait_ready(b)
        a = start("a", env, ns)
        replicas.append(a)
        await wait_ready(a)
        db_url, cache_url = env["REELPLANE_DATABASE_URL"], env["REELPLANE_CACHE_URL"]
        print(f"real: {args.events} events at {args.rate}/s ...", flush=True)
        result["latency"]["real"] = await latency_run(
            "real (2 replicas)", b, a, db_url, args.events, args.rate
        )
        print("real: memory, a client that reads everything (baseline) ...", flush=True)
        base = await memory_run(a, b, cache_url, ns, args.publish, reads=True)
        print("real: memory, a client that reads nothing ...", flush=True)
        slow = await memory_run(a, b, cache_url, ns, args.publish, reads=False)
        result["memory"] = {"baseline": base, "slow": slow}
    finally:
        stop(replicas)

    # Embedded: one process.
    tmp = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    emb = {
        **BENCH_ENV,
        "REELPLANE_DATA_DIR": str(tmp),
        "REELPLANE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'db.sqlite'}",
        "REELPLANE_BUS_URL": "memory://",
        "REELPLANE_CACHE_URL": "memory://",
        "REELPLANE_WIDEROW_URL": f"sqlite:///{tmp / 'widerow.sqlite'}",
        "REELPLANE_OBJECTS_URL": f"file://{tmp / 'objects'}",
        "REELPLANE_SEARCH_URL": f"sqlite:///{tmp / 'search.sqlite'}",
    }
    one = start("all", emb, "")
    try:
        await wait_ready(one)
        print(f"embedded: {args.events} events at {args.rate}/s ...", flush=True)
        result["latency"]["embedded"] = await latency_run(
            "embedded (1 process)", one, one, emb["REELPLANE_DATABASE_URL"], args.events, args.rate
        )
    finally:
        stop([one])
    return result


def print_table(result: dict[str, Any]) -> None:
    print()
    print(f"Notify: {result['events']:,} events (like/comment/follow) at {result['rate_per_s']}/s")
    print(f"{'':<34}{'real, 2 replicas':>18}{'embedded':>12}{'real/emb':>10}")
    real, emb = result["latency"]["real"], result["latency"]["embedded"]
    for key, label in (
        ("request_to_socket_ms", "request -> socket"),
        ("event_to_socket_ms", "event -> socket"),
    ):
        for stat in ("p50", "p99", "max"):
            x, y = real[key][stat], emb[key][stat]
            print(f"{label + ' ' + stat + ' (ms)':<34}{x:>18.1f}{y:>12.1f}{x / y:>10.2f}")
    print(
        f"{'received / sent':<34}{real['received']:>12}/{real['events']:<5}"
        f"{emb['received']:>6}/{emb['events']:<5}"
    )
    rates = real["achieved_rate_per_s"], emb["achieved_rate_per_s"]
    print(f"{'achieved rate (events/s)':<34}{rates[0]:>18}{rates[1]:>12}")
    mem = result["memory"]
    print()
    print(f"Replica A RSS (MB) while {mem['slow']['published']:,} live messages are published:")
    print(f"{'client':<20}{'start':>8}{'peak':>8}{'end':>8}{'2nd-half spread':>17}{'close':>7}")
    for m in (mem["baseline"], mem["slow"]):
        print(
            f"{m['client']:<20}{m['rss_mb_start']:>8.1f}{m['rss_mb_peak']:>8.1f}"
            f"{m['rss_mb_end']:>8.1f}{m['rss_mb_last_half_spread']:>17.1f}"
            f"{m['close_code'] or '-':>7}"
        )
    slow = mem["slow"]["samples"]
    step = max(1, len(slow) // 12)
    print(
        "reads nothing, samples (t s: MB @ published): "
        + ", ".join(f"{s['t_s']}: {s['rss_mb']} @ {s['published']}" for s in slow[::step])
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="events/s (open loop)")
    parser.add_argument("--publish", type=int, default=60_000)
    parser.add_argument("--json", type=Path, default=ROOT / ".cache" / "bench" / "notify.json")
    parser.add_argument("--serve", choices=["a", "b", "all"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ns", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.ns)
        return
    result = asyncio.run(main(args))
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    cli()
