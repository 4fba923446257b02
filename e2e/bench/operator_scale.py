"""Operator at scale: 1,000 EdgePoPs and 100 FeedShards created at once.

    .venv/bin/python -m e2e.bench.operator_scale [--pops 1000] [--shards 100] [--json PATH]
        [--cluster own|shared]

On a local control plane started by the same code and flags as `reelplane
cluster up`: by default a private one for the run (`.cache/cluster-bench/`, ports
+1000, fresh etcd, stopped and deleted afterwards), so the numbers reflect this
checkout's control-plane settings and no other user's objects or load on a shared
API server; `--cluster shared` uses the running `reelplane cluster` instead. In a
fresh namespace with the operator chart installed and the operator running out of
cluster with the chart's ServiceAccount:

1. baseline: the same children (rendered by the same pure functions) applied
   directly by the operator's own client at its concurrency, no operator: how
   fast the control plane alone makes them Available;
2. the resources created concurrently; time until every one is Ready;
3. the operator's CPU seconds and peak RSS over the run;
4. API writes (apiserver_request_total, verbs APPLY and PATCH: the operator's) on
   the operator's resources until all Ready, and during a quiet period after, per
   resource (goal: zero).

Readiness is followed through watches (not by re-listing 1,100 objects every
second, which would load the API server being measured). Each phase also records
the CPU seconds of every control-plane process (and of the operator and this
process) and the machine's load average before and after: the 2-core machine is
shared, a busy neighbour shows up there, and the CPU totals compare the two
phases whatever it did to their wall times. Prints a table and writes JSON
(default .cache/bench/operator_scale.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
from lightkube import AsyncClient, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import on_error_retry

from e2e.operator_support import (
    ROOT,
    Kubectl,
    OperatorProcess,
    api_write_counts,
    diff_counts,
    install_charts,
    operator_kubeconfig,
    process_cpu_s,
    process_peak_rss_mib,
    uninstall,
    unique_namespace,
)
from reelplane.infra import cluster_pki as pki
from reelplane.infra.cluster import FakeNode, LocalCluster, render_node
from reelplane_operator.kube import AioKube
from reelplane_operator.meta import Owner
from reelplane_operator.models import EdgePoPSpec, FeedShardSpec
from reelplane_operator.render.edge import render_edge_pop
from reelplane_operator.render.feed import render_feed_shard

EdgePoP = create_namespaced_resource("reelplane.io", "v1alpha1", "EdgePoP", "edgepops")
FeedShard = create_namespaced_resource("reelplane.io", "v1alpha1", "FeedShard", "feedshards")
# Deployments as plain dicts: watching 1,100 of them through lightkube's typed models
# would cost the benchmark's own process (on the same 2 cores) far more CPU.
DeploymentDict = create_namespaced_resource("apps", "v1", "Deployment", "deployments")
PODS_PER_NODE = 250
CONCURRENCY = 32
OPERATOR_IN_FLIGHT = 16  # AioKube's default bound on requests in flight
BENCH_CLUSTER = "cluster-bench"
BENCH_PORT_OFFSET = 1000


# The local control plane's Service range is a /24; each EdgePoP and FeedShard has a
# Service, so the benchmark adds a ServiceCIDR for its run (removed afterwards).
def service_cidr(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": name},
        "spec": {"cidrs": ["10.128.0.0/16"]},
    }


def pop_spec(i: int, replicas: int) -> dict[str, Any]:
    return {
        "region": f"r{i % 20}",
        "location": {"latitude": (i % 180) - 89.5, "longitude": (i * 7 % 360) - 179.5},
        "replicas": replicas,
    }


def shard_spec(i: int, count: int, replicas: int) -> dict[str, Any]:
    return {"shardIndex": i, "shardCount": count, "replicas": replicas}


async def gather_limited(coros: list[Any], limit: int = CONCURRENCY) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(coro: Any) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


def deployment_available(obj: dict[str, Any]) -> bool:
    """A Deployment with as many available replicas as it asks for."""
    want = int((obj.get("spec") or {}).get("replicas") or 0)
    return int((obj.get("status") or {}).get("availableReplicas") or 0) >= want


def resource_ready(obj: dict[str, Any]) -> bool:
    """A custom resource whose condition Ready is True."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def watch_until(
    client: AsyncClient,
    resources: list[Any],
    ns: str,
    ready: Callable[[dict[str, Any]], bool],
    want: int,
    timeout_s: float,
    progress: dict[str, float],
) -> None:
    """Return once `want` objects of `resources` in `ns` satisfy `ready` (by watch);
    `progress` gets the seconds until half and 90% of them did."""
    done: set[tuple[str, str]] = set()
    finished = asyncio.Event()
    start = time.monotonic()
    marks = {want // 2: "half_s", want * 9 // 10: "ninety_pct_s"}

    async def follow(res: Any) -> None:
        async for kind, obj in client.watch(res, namespace=ns, on_error=on_error_retry):
            body = dict(obj)
            key = (str(body.get("kind")), str(body["metadata"]["name"]))
            if kind != "DELETED" and ready(body):
                done.add(key)
            else:
                done.discard(key)
            mark = marks.pop(len(done), None)
            if mark is not None:
                progress[mark] = round(time.monotonic() - start, 1)
            if len(done) >= want:
                finished.set()
                return

    tasks = [asyncio.create_task(follow(r)) for r in resources]
    try:
        await asyncio.wait_for(finished.wait(), timeout_s)
    except TimeoutError:
        raise TimeoutError(f"{len(done)}/{want} ready after {timeout_s:.0f}s") from None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def admin_credentials(cluster: LocalCluster) -> kopf.ConnectionInfo:
    """The cluster's admin (client certificate) as the operator's client takes it."""
    p = cluster.layout.pki
    return kopf.ConnectionInfo(
        server=cluster.layout.apiserver_url,
        ca_path=str(p.ca_cert),
        certificate_path=str(p.client_cert(pki.ADMIN)),
        private_key_path=str(p.client_key(pki.ADMIN)),
    )


async def baseline(
    cluster: LocalCluster,
    client: AsyncClient,
    ns: str,
    pops: int,
    shards: int,
    replicas: int,
    progress: dict[str, float],
) -> float:
    """The same children applied directly (no owner, no operator): seconds to Available."""
    manifests: list[dict[str, Any]] = []
    for i in range(pops):
        owner = Owner("EdgePoP", f"pop-{i}", ns, "none")
        manifests += render_edge_pop(owner, EdgePoPSpec.model_validate(pop_spec(i, replicas)))
    for i in range(shards):
        owner = Owner("FeedShard", f"shard-{i}", ns, "none")
        spec = FeedShardSpec.model_validate(shard_spec(i, shards, replicas))
        manifests += render_feed_shard(owner, spec)
    for m in manifests:
        m["metadata"].pop("ownerReferences")

    # The operator's own client and concurrency, so the baseline is no slower a writer
    # than the operator (a typed-model client costs the 2 shared cores several times
    # more per apply, which would flatter the operator).
    writer = AioKube(lambda: admin_credentials(cluster))

    start = time.monotonic()
    waiter = asyncio.create_task(
        watch_until(
            client, [DeploymentDict], ns, deployment_available, pops + shards, 600, progress
        )
    )
    try:
        await gather_limited([writer.apply(m) for m in manifests], OPERATOR_IN_FLIGHT)
        await waiter
    finally:
        await writer.close()
    return time.monotonic() - start


async def create_resources(
    client: AsyncClient, ns: str, pops: int, shards: int, replicas: int
) -> None:
    def body(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "reelplane.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }

    coros = [
        client.create(EdgePoP.from_dict(body("EdgePoP", f"pop-{i}", pop_spec(i, replicas))))
        for i in range(pops)
    ] + [
        client.create(
            FeedShard.from_dict(body("FeedShard", f"shard-{i}", shard_spec(i, shards, replicas)))
        )
        for i in range(shards)
    ]
    await gather_limited(coros)


async def crd_storage_ready(client: AsyncClient, ns: str, timeout_s: float = 60) -> None:
    """Wait until the new CRDs are served from storage (the API answers 429 "storage is
    (re)initializing" at first), so the operator's start is not delayed by it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            for res in (EdgePoP, FeedShard):
                async for _ in client.list(res, namespace=ns, chunk_size=1):
                    break
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages (as `uptime` prints them)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


class CpuMeter:
    """CPU seconds of the control-plane processes (and the operator) over a phase."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.pids = {s.name: s.pid for s in cluster.harness.status() if s.pid is not None}
        self.pids["bench"] = os.getpid()  # this process: the writer and the watches

    def sample(self, extra: dict[str, int] | None = None) -> dict[str, float]:
        out = {}
        for name, pid in {**self.pids, **(extra or {})}.items():
            with contextlib.suppress(OSError):
                out[name] = process_cpu_s(pid)
        return out

    @contextlib.contextmanager
    def phase(self, result: dict[str, Any], extra: dict[str, int] | None = None) -> Iterator[None]:
        """Fill `result` with the phase's CPU seconds per process and load averages."""
        result["load_average_before"] = load_average()
        before = self.sample(extra)
        yield
        after = self.sample(extra)
        result["load_average_after"] = load_average()
        result["cpu_s"] = {k: round(after[k] - before[k], 1) for k in after if k in before}
        # What the phase cost the machine, whatever the neighbours did to its wall time.
        result["cpu_s_total"] = round(sum(result["cpu_s"].values()), 1)
        peak: dict[str, float] = {}
        for name, pid in {**self.pids, **(extra or {})}.items():
            with contextlib.suppress(OSError):
                peak[name] = round(process_peak_rss_mib(pid))
        result["peak_rss_mib_so_far"] = peak  # VmHWM: the most each process has held


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    own = args.cluster == "own"
    if own:
        cluster = LocalCluster(name=BENCH_CLUSTER, port_offset=BENCH_PORT_OFFSET)
        cluster.down(purge=True)  # a fresh etcd: nothing left from an earlier run
    else:
        cluster = LocalCluster()
    cluster.up()
    meter = CpuMeter(cluster)
    k = Kubectl(cluster.kubectl, cluster.kubeconfig, cluster.helm)
    client = AsyncClient(KubeConfig.from_file(str(cluster.kubeconfig)))
    pods = (args.pops + args.shards) * args.replicas
    nodes = [
        # Room for the Pods' requests too (an EdgePoP Pod asks 500m CPU, 1.25 GiB).
        FakeNode(f"bench-node-{i}", cpu="1000", memory="2Ti", pods=str(PODS_PER_NODE))
        for i in range(-(-pods // PODS_PER_NODE) + 1)
    ]
    k.apply([render_node(n) for n in nodes], "default")
    cidr_name = unique_namespace("reelplane-bench")  # a terminating one cannot be reused
    k.apply([service_cidr(cidr_name)], "default")
    base_ns = unique_namespace("rp-bench-base")
    ns = unique_namespace("rp-bench")
    result: dict[str, Any] = {
        "pops": args.pops,
        "shards": args.shards,
        "replicas_per_resource": args.replicas,
        "pods": pods,
        "cluster": args.cluster,
        "load_average_at_start": load_average(),
    }
    operator: OperatorProcess | None = None
    try:
        k.run("create", "namespace", base_ns)
        result["baseline"] = {}
        with meter.phase(result["baseline"]):
            result["baseline_children_available_s"] = round(
                await baseline(
                    cluster,
                    client,
                    base_ns,
                    args.pops,
                    args.shards,
                    args.replicas,
                    result["baseline"],
                ),
                1,
            )
        # The baseline's objects are gone before the operator's run starts (no overlap).
        k.run("delete", "namespace", base_ns, "--timeout=600s")
        install_charts(k, ns, operator_replicas=0, with_services=False)
        await crd_storage_ready(client, ns)
        tmp = Path(tempfile.mkdtemp(prefix="rp-bench-"))
        operator = OperatorProcess(
            operator_kubeconfig(k, ns, tmp / "kubeconfig"), ns, tmp / "operator.log"
        )
        operator.start()
        await asyncio.sleep(3)  # Kopf's start-up (indexes, watches)
        total = args.pops + args.shards
        result["operator_run"] = {}
        writes0 = api_write_counts(k)
        with meter.phase(result["operator_run"], {"operator": operator.pid}):
            cpu0 = process_cpu_s(operator.pid)
            start = time.monotonic()
            waiter = asyncio.create_task(
                watch_until(
                    client,
                    [EdgePoP, FeedShard],
                    ns,
                    resource_ready,
                    total,
                    args.timeout,
                    result["operator_run"],
                )
            )
            await create_resources(client, ns, args.pops, args.shards, args.replicas)
            result["create_requests_s"] = round(time.monotonic() - start, 1)
            await waiter
            result["all_ready_s"] = round(time.monotonic() - start, 1)
            result["operator_cpu_s_to_ready"] = round(process_cpu_s(operator.pid) - cpu0, 1)
        moved = diff_counts(writes0, api_write_counts(k))
        result["writes_to_ready"] = {f"{v} {r}": n for (v, r), n in sorted(moved.items())}
        result["all_ready_over_baseline"] = round(
            result["all_ready_s"] / result["baseline_children_available_s"], 2
        )
        result["cpu_over_baseline"] = round(
            result["operator_run"]["cpu_s_total"] / result["baseline"]["cpu_s_total"], 2
        )
        await asyncio.sleep(5)  # last status writes land
        before, cpu1 = api_write_counts(k), process_cpu_s(operator.pid)
        await asyncio.sleep(args.rest)
        moved = diff_counts(before, api_write_counts(k))
        result["rest_window_s"] = args.rest
        result["rest_writes"] = {f"{v} {r}": n for (v, r), n in sorted(moved.items())}
        result["rest_writes_per_resource"] = round(sum(moved.values()) / total, 4)
        result["operator_cpu_s_at_rest"] = round(process_cpu_s(operator.pid) - cpu1, 2)
        result["operator_peak_rss_mib"] = round(process_peak_rss_mib(operator.pid), 1)
        result["operator_log"] = str(operator.log_path)
    finally:
        if operator is not None:
            operator.stop()
        await client.close()
        if own and not args.keep_cluster:
            cluster.down(purge=True)
        else:
            uninstall(k, ns)
            k.run("delete", "namespace", base_ns, "--wait=false", check=False)
            k.run("delete", "node", *[n.name for n in nodes], "--wait=false", check=False)
            k.run("delete", "servicecidr", cidr_name, "--wait=false", check=False)
        result["load_average_at_end"] = load_average()
    return result


def _writes(counts: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.0f}" for key, value in counts.items()) or "0"


def _cpu(cpu_s: dict[str, float]) -> str:
    return ", ".join(f"{name} {value}" for name, value in cpu_s.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pops", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=1, help="Pods per resource")
    parser.add_argument("--rest", type=float, default=30.0, help="Quiet period, seconds")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--cluster",
        choices=("own", "shared"),
        default="own",
        help="own: a private control plane for the run (default); shared: `reelplane cluster`",
    )
    parser.add_argument(
        "--keep-cluster", action="store_true", help="Leave the private control plane running"
    )
    parser.add_argument(
        "--json", type=Path, default=ROOT / ".cache" / "bench" / "operator_scale.json"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    base, run_ = result["baseline"], result["operator_run"]
    rows = [
        ("resources", f"{args.pops} EdgePoPs + {args.shards} FeedShards ({result['pods']} Pods)"),
        ("control plane", f"{args.cluster}"),
        (
            "baseline: children alone Available",
            f"{result['baseline_children_available_s']} s (half {base.get('half_s')} s, "
            f"90% {base.get('ninety_pct_s')} s)",
        ),
        (
            "  load average before / after",
            f"{base['load_average_before']} / {base['load_average_after']}",
        ),
        ("  CPU s by process", f"{_cpu(base['cpu_s'])} (total {base['cpu_s_total']})"),
        ("create requests sent", f"{result['create_requests_s']} s"),
        (
            "all Ready (operator)",
            f"{result['all_ready_s']} s  (goal < 60 s; half {run_.get('half_s')} s, "
            f"90% {run_.get('ninety_pct_s')} s)",
        ),
        ("all Ready / baseline", f"{result['all_ready_over_baseline']}"),
        (
            "  load average before / after",
            f"{run_['load_average_before']} / {run_['load_average_after']}",
        ),
        ("  CPU s by process", f"{_cpu(run_['cpu_s'])} (total {run_['cpu_s_total']})"),
        ("  CPU total / baseline", f"{result['cpu_over_baseline']}"),
        ("operator CPU until Ready", f"{result['operator_cpu_s_to_ready']} s"),
        ("API writes until Ready", _writes(result["writes_to_ready"])),
        ("operator CPU at rest", f"{result['operator_cpu_s_at_rest']} s / {args.rest:.0f} s"),
        ("operator peak RSS", f"{result['operator_peak_rss_mib']} MiB"),
        ("peak RSS by process, MiB", _cpu(run_["peak_rss_mib_so_far"])),
        ("API writes at rest", f"{result['rest_writes'] or 0}  (goal 0)"),
        ("API writes per resource at rest", str(result["rest_writes_per_resource"])),
    ]
    print(table(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
