"""Operator at scale: 1,000 EdgePoPs and 100 FeedShards created at once.

    .venv/bin/python -m e2e.bench.operator_scale [--pops 1000] [--shards 100] [--json PATH]

On the local control plane (`reelplane cluster up`; started if needed), in a
fresh namespace with the operator chart installed and the operator running out
of cluster with the chart's ServiceAccount:

1. baseline: the same children (rendered by the same pure functions) applied
   directly by a plain concurrent client, no operator: how fast the control
   plane alone makes them Available;
2. the resources created concurrently; time until every one is Ready;
3. the operator's CPU seconds and peak RSS over the run;
4. API writes (apiserver_request_total, verbs APPLY and PATCH: the operator's) on
   the operator's resources during a quiet period, per resource (goal: zero).

Prints a table and writes JSON (default .cache/bench/operator_scale.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lightkube import AsyncClient, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Service
from lightkube.types import PatchType

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
from reelplane.infra.cluster import FakeNode, LocalCluster, render_node
from reelplane_operator.meta import Owner
from reelplane_operator.models import EdgePoPSpec, FeedShardSpec
from reelplane_operator.render.edge import render_edge_pop
from reelplane_operator.render.feed import render_feed_shard

EdgePoP = create_namespaced_resource("reelplane.io", "v1alpha1", "EdgePoP", "edgepops")
FeedShard = create_namespaced_resource("reelplane.io", "v1alpha1", "FeedShard", "feedshards")
CLASSES: dict[str, Any] = {"Deployment": Deployment, "Service": Service, "ConfigMap": ConfigMap}
PODS_PER_NODE = 250
CONCURRENCY = 32


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


async def wait_all(probe: Any, timeout_s: float) -> float:
    """Seconds until `probe()` (async) returns True."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if await probe():
            return time.monotonic() - start
        await asyncio.sleep(1.0)
    raise TimeoutError(f"not done after {timeout_s:.0f}s")


def _available(d: Any) -> bool:
    status = d.status
    want = d.spec.replicas or 0
    return bool(status and (status.availableReplicas or 0) >= want)


async def baseline(client: AsyncClient, ns: str, pops: int, shards: int, replicas: int) -> float:
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

    async def apply(m: dict[str, Any]) -> None:
        await client.patch(
            CLASSES[m["kind"]],
            m["metadata"]["name"],
            m,
            namespace=ns,
            patch_type=PatchType.APPLY,
            field_manager="bench",
        )

    start = time.monotonic()
    await gather_limited([apply(m) for m in manifests])
    want = pops + shards

    async def done() -> bool:
        items = [d async for d in client.list(Deployment, namespace=ns)]
        return len(items) == want and all(_available(d) for d in items)

    await wait_all(done, 600)
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


async def count_ready(client: AsyncClient, ns: str) -> int:
    ready = 0
    for res in (EdgePoP, FeedShard):
        async for obj in client.list(res, namespace=ns):
            conditions = (obj.get("status") or {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                ready += 1
    return ready


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cluster = LocalCluster()
    cluster.up()
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
    }
    operator: OperatorProcess | None = None
    try:
        k.run("create", "namespace", base_ns)
        result["baseline_children_available_s"] = round(
            await baseline(client, base_ns, args.pops, args.shards, args.replicas), 1
        )
        # The baseline's objects are gone before the operator's run starts (no overlap).
        k.run("delete", "namespace", base_ns, "--timeout=600s")
        install_charts(k, ns, operator_replicas=0, with_services=False)
        tmp = Path(tempfile.mkdtemp(prefix="rp-bench-"))
        operator = OperatorProcess(
            operator_kubeconfig(k, ns, tmp / "kubeconfig"), ns, tmp / "operator.log"
        )
        operator.start()
        await asyncio.sleep(3)  # Kopf's start-up (indexes, watches)
        cpu0 = process_cpu_s(operator.pid)
        start = time.monotonic()
        await create_resources(client, ns, args.pops, args.shards, args.replicas)
        result["create_requests_s"] = round(time.monotonic() - start, 1)
        total = args.pops + args.shards

        async def all_ready() -> bool:
            return await count_ready(client, ns) == total

        await wait_all(all_ready, args.timeout)
        result["all_ready_s"] = round(time.monotonic() - start, 1)
        result["operator_cpu_s_to_ready"] = round(process_cpu_s(operator.pid) - cpu0, 1)
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
        uninstall(k, ns)
        k.run("delete", "namespace", base_ns, "--wait=false", check=False)
        k.run("delete", "node", *[n.name for n in nodes], "--wait=false", check=False)
        k.run("delete", "servicecidr", cidr_name, "--wait=false", check=False)
        await client.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pops", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=1, help="Pods per resource")
    parser.add_argument("--rest", type=float, default=30.0, help="Quiet period, seconds")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--json", type=Path, default=ROOT / ".cache" / "bench" / "operator_scale.json"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    rows = [
        ("resources", f"{args.pops} EdgePoPs + {args.shards} FeedShards ({result['pods']} Pods)"),
        ("baseline: children alone Available", f"{result['baseline_children_available_s']} s"),
        ("create requests sent", f"{result['create_requests_s']} s"),
        ("all Ready (operator)", f"{result['all_ready_s']} s  (goal < 60 s)"),
        ("operator CPU until Ready", f"{result['operator_cpu_s_to_ready']} s"),
        ("operator CPU at rest", f"{result['operator_cpu_s_at_rest']} s / {args.rest:.0f} s"),
        ("operator peak RSS", f"{result['operator_peak_rss_mib']} MiB"),
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
