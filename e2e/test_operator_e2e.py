"""The operator and the charts on the local control plane, as a platform engineer uses them.

One namespace per run: both charts installed with helm (Pods Running on KWOK
nodes), the operator running out of cluster with the chart's ServiceAccount
token (not the admin), resources created with kubectl, and a real Kafka
consumer group driving a TranscodePool's size.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.operator_support import (
    CHARTS,
    OPERATOR_SA,
    CommandFailed,
    Kubectl,
    OperatorProcess,
    api_write_counts,
    chart_secret_values,
    condition,
    diff_counts,
    install_charts,
    running_operator,
    uninstall,
    unique_namespace,
    wait_for,
)
from reelplane.infra.harness import Harness

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[1] / "crds" / "examples"
READY_S = 120


def _example(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return obj


@pytest.fixture(scope="module")
def namespace(k8s: Kubectl) -> Iterator[str]:
    ns = unique_namespace("rp-e2e")
    install_charts(k8s, ns)
    yield ns
    uninstall(k8s, ns)


@pytest.fixture(scope="module")
def operator(
    k8s: Kubectl, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with running_operator(k8s, namespace, tmp_path_factory.mktemp("operator")) as proc:
        yield proc


@pytest.fixture(scope="module")
def as_operator(k8s: Kubectl, operator: OperatorProcess) -> Kubectl:
    """kubectl with the operator's identity."""
    return Kubectl(k8s.kubectl, operator.kubeconfig)


def _ready(k: Kubectl, kind: str, name: str, ns: str) -> dict[str, Any] | None:
    obj = k.get(kind, name, ns)
    gen = (obj or {}).get("metadata", {}).get("generation")
    if condition(obj, "Ready") == "True" and obj and obj["status"]["observedGeneration"] == gen:
        return obj
    return None


# -- charts ------------------------------------------------------------------------------
def test_helm_lint_and_template_pass(k8s: Kubectl) -> None:
    for chart, values in (("reelplane", chart_secret_values()), ("reelplane-operator", [])):
        k8s.helm("lint", "--strict", str(CHARTS / chart), *values)
        rendered = list(yaml.safe_load_all(k8s.helm("template", "t", str(CHARTS / chart), *values)))
        assert rendered and all(doc["metadata"]["name"] for doc in rendered if doc)
    with pytest.raises(CommandFailed, match="replicas"):
        k8s.helm(
            "template",
            "t",
            str(CHARTS / "reelplane"),
            *chart_secret_values(),
            "--set=services.feed.replicas=-1",
        )


def test_charts_install_and_their_pods_run_on_kwok(k8s: Kubectl, namespace: str) -> None:
    def pods_running() -> list[str] | None:
        pods = k8s.json("get", "pods", "-n", namespace)["items"]
        phases = [p["status"].get("phase") for p in pods]
        return phases if pods and all(ph == "Running" for ph in phases) else None

    phases = wait_for(pods_running, READY_S, "every Pod Running")
    # 5 services (notify and search are off until built) x 2 replicas + 2 operator replicas
    assert len(phases) >= 12
    crds = k8s.json("get", "crd")["items"]
    names = {c["metadata"]["name"] for c in crds}
    assert {"transcodepools.reelplane.io", "edgepops.reelplane.io"} <= names


def test_operator_runs_with_least_privilege_not_admin(as_operator: Kubectl, namespace: str) -> None:
    def can(*args: str) -> bool:
        done = as_operator.run("auth", "can-i", *args, check=False)
        return done.stdout.strip() == "yes"

    assert can("patch", "deployments", "-n", namespace)
    assert can("patch", "edgepops.reelplane.io", "--subresource=status", "-n", namespace)
    assert not can("patch", "edgepops.reelplane.io", "-n", namespace)  # status only
    assert not can("get", "secrets", "-n", namespace)
    assert not can("create", "deployments", "-n", "kube-system")
    assert not can("delete", "pods", "-n", namespace)
    assert not can("*", "*", "--all-namespaces")


# -- resources ---------------------------------------------------------------------------
def _test_specs() -> list[dict[str, Any]]:
    pool = _example("transcodepool.yaml")
    pool["spec"]["nodeSelector"] = {"nvidia.com/gpu.present": "true"}  # the KWOK GPU node
    pool["spec"]["maxReplicas"] = 4
    pool["spec"]["kafka"]["bootstrapServers"] = "127.0.0.1:1"  # no Kafka: lag unavailable
    shard = _example("feedshard.yaml")
    pop = _example("edgepop.yaml")
    rec = _example("recommender.yaml")
    rec["spec"]["gpusPerReplica"] = 0  # the GPU node's GPUs are for the pool
    rec["spec"]["maxReplicas"] = 3
    return [pool, shard, pop, rec]


@pytest.fixture(scope="module")
def created(k8s: Kubectl, namespace: str, operator: OperatorProcess) -> list[dict[str, Any]]:
    objs = _test_specs()
    k8s.apply(objs, namespace)
    return objs


def test_each_resource_gets_its_children_and_becomes_ready(
    k8s: Kubectl, namespace: str, created: list[dict[str, Any]]
) -> None:
    for obj in created:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "TranscodePool":
            continue  # its Kafka is unreachable on purpose: see the next test
        wait_for(lambda k=kind, n=name: _ready(k8s, k, n, namespace), READY_S, f"{kind} Ready")
    listed = k8s.run("get", "reelplane", "-n", namespace).stdout
    for obj in created:
        assert obj["metadata"]["name"] in listed
    children = {
        (c["kind"], c["metadata"]["name"])
        for kind in ("deployments", "services", "configmaps")
        for c in k8s.json("get", kind, "-n", namespace, "-l", "reelplane.io/owner-kind")["items"]
    }
    assert {
        ("Deployment", "nvenc-a10-gpu-workers"),
        ("ConfigMap", "nvenc-a10-ladder"),
        ("Deployment", "feed-0-feed"),
        ("Service", "feed-0-feed"),
        ("Deployment", "fra-1-edge"),
        ("Service", "fra-1-edge"),
        ("ConfigMap", "fra-1-edge-vcl"),
        ("Deployment", "foryou-ray-head"),
        ("Deployment", "foryou-ray-worker"),
        ("Service", "foryou-ray-head"),
        ("ConfigMap", "foryou-serve-config"),
    } <= children
    rec = k8s.get("recommender", "foryou", namespace)
    assert rec and rec["status"]["mode"] == "Deployments"
    workers = k8s.get("deployment", "nvenc-a10-gpu-workers", namespace)
    assert workers
    container = workers["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    owner = workers["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["controller"]) == ("TranscodePool", True)

    def routed() -> list[dict[str, Any]] | None:
        table = k8s.get("configmap", "reelplane-edge-routing", namespace)
        pops: list[dict[str, Any]] = (
            json.loads(table["data"]["routes.json"])["pops"] if table else []
        )
        return pops or None

    pops = wait_for(routed, 30, "the PoP in the routing table")
    assert [(p["name"], p["region"], p["latitude"]) for p in pops] == [
        ("fra-1", "eu-central", 50.11)
    ]


def test_unreachable_kafka_is_reported_as_degraded(
    k8s: Kubectl, namespace: str, created: list[dict[str, Any]]
) -> None:
    def degraded() -> dict[str, Any] | None:
        pool = k8s.get("transcodepool", "nvenc-a10", namespace)
        return pool if condition(pool, "Degraded") == "True" else None

    pool = wait_for(degraded, 60, "TranscodePool Degraded")
    reason = next(c for c in pool["status"]["conditions"] if c["type"] == "Degraded")
    assert reason["reason"] == "LagUnavailable"
    assert "127.0.0.1:1" in reason["message"]


def test_a_polled_pool_carries_no_finalizer(
    k8s: Kubectl, namespace: str, created: list[dict[str, Any]]
) -> None:
    """Its lag is read by a Kopf timer, registered without Kopf's finalizer: a pool is
    deleted without the operator (which writes only status)."""
    pool = k8s.get("transcodepool", "nvenc-a10", namespace)
    assert condition(pool, "Degraded") == "True"  # the timer has read (failed to read) lag
    assert not pool["metadata"].get("finalizers")


def test_spec_change_updates_the_children(
    k8s: Kubectl, namespace: str, created: list[dict[str, Any]]
) -> None:
    k8s.run("scale", "feedshard/feed-0", "-n", namespace, "--replicas=5")  # scale subresource
    k8s.run(
        "patch", "edgepop/fra-1", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"cache": {"segmentTtlSeconds": 600}}}',
    )  # fmt: skip

    def scaled() -> bool:
        d = k8s.get("deployment", "feed-0-feed", namespace)
        return bool(d and d["spec"]["replicas"] == 5)

    def vcl_updated() -> bool:
        cm = k8s.get("configmap", "fra-1-edge-vcl", namespace)
        return bool(cm and "beresp.ttl = 600s" in cm["data"]["default.vcl"])

    wait_for(scaled, 30, "feed Deployment at 5 replicas")
    wait_for(vcl_updated, 30, "VCL with the new segment TTL")
    wait_for(lambda: _ready(k8s, "feedshard", "feed-0", namespace), READY_S, "FeedShard Ready")
    shard = k8s.get("feedshard", "feed-0", namespace)
    assert shard and shard["status"]["readyReplicas"] == 5


def test_deleted_or_edited_child_is_restored(
    k8s: Kubectl, namespace: str, created: list[dict[str, Any]]
) -> None:
    before = k8s.get("service", "feed-0-feed", namespace)
    assert before
    k8s.run("delete", "service", "feed-0-feed", "-n", namespace)

    def recreated() -> dict[str, Any] | None:
        svc = k8s.get("service", "feed-0-feed", namespace)
        return svc if svc and svc["metadata"]["uid"] != before["metadata"]["uid"] else None

    wait_for(recreated, 30, "the deleted Service to come back")
    k8s.run("scale", "deployment/fra-1-edge", "-n", namespace, "--replicas=9")
    k8s.run(
        "patch", "configmap/fra-1-edge-vcl", "-n", namespace, "--type=merge",
        "-p", '{"data": {"default.vcl": "vcl 4.1; # hacked"}}',
    )  # fmt: skip

    def restored() -> bool:
        d = k8s.get("deployment", "fra-1-edge", namespace)
        cm = k8s.get("configmap", "fra-1-edge-vcl", namespace)
        return bool(
            d and d["spec"]["replicas"] == 3 and cm and "acl purgers" in cm["data"]["default.vcl"]
        )

    wait_for(restored, 30, "hand edits reverted")


INVALID = [
    ("FeedShard", {"shardIndex": 4, "shardCount": 4}, "shardIndex must be < shardCount"),
    ("TranscodePool", {"minReplicas": 5, "maxReplicas": 2}, "minReplicas must be <= maxReplicas"),
    ("EdgePoP", {"region": "eu", "location": {"latitude": 120, "longitude": 0}}, "latitude"),
    ("Recommender", {"minReplicas": 9, "maxReplicas": 3}, "minReplicas must be <= maxReplicas"),
    ("Recommender", {"index": {"nlist": 16, "nprobe": 32}}, "nprobe must be <= nlist"),
    ("EdgePoP", {"region": "Not A Region", "location": {"latitude": 1, "longitude": 1}}, "region"),
    (
        "TranscodePool",
        {
            "ladder": [
                {"name": "a", "height": 720, "codec": "hevc", "videoBitrateKbps": 1800},
                {"name": "b", "height": 720, "codec": "hevc", "videoBitrateKbps": 2400},
            ]
        },
        "two ladder rungs have the same height and codec",
    ),
]


@pytest.mark.parametrize(("kind", "spec", "message"), INVALID)
def test_invalid_resources_are_refused_with_a_readable_message(
    k8s: Kubectl, namespace: str, kind: str, spec: dict[str, Any], message: str
) -> None:
    obj = {
        "apiVersion": "reelplane.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "invalid"},
        "spec": spec,
    }
    with pytest.raises(CommandFailed, match=message):
        k8s.apply([obj], namespace)


def test_shard_count_is_immutable(
    k8s: Kubectl, namespace: str, created: list[dict[str, Any]]
) -> None:
    with pytest.raises(CommandFailed, match="shardCount is immutable"):
        k8s.run(
            "patch", "feedshard/feed-0", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"shardCount": 8}}',
        )  # fmt: skip


def test_no_api_writes_at_rest(k8s: Kubectl, namespace: str, created: list[dict[str, Any]]) -> None:
    for obj in created[1:]:
        kind, name = obj["kind"], obj["metadata"]["name"]
        wait_for(lambda k=kind, n=name: _ready(k8s, k, n, namespace), READY_S, f"{kind} Ready")
    time.sleep(5)  # let the last status writes land
    before = api_write_counts(k8s)
    time.sleep(15)
    moved = diff_counts(before, api_write_counts(k8s))
    assert moved == {}, f"writes while nothing changed: {moved}"


# -- autoscaling from a real consumer group ------------------------------------------------
async def _produce(bootstrap: str, topic: str, count: int, partitions: int) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"upload-{i}".encode(), partition=i % partitions)
    finally:
        await producer.stop()


async def _commit_to_end(bootstrap: str, topic: str, group: str) -> None:
    """What workers do after transcoding everything: commit the end offsets."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit(dict(ends.items()))
    finally:
        await consumer.stop()


def test_consumer_lag_scales_a_pool_up_then_down(
    k8s: Kubectl, namespace: str, operator: OperatorProcess, harness: Harness
) -> None:
    harness.up(["kafka"])
    bootstrap = harness.servers["kafka"].url.removeprefix("kafka://")
    topic, group = f"uploads-{namespace}", f"gpu-workers-{namespace}"
    asyncio.run(_produce(bootstrap, topic, count=35, partitions=6))
    pool = copy.deepcopy(_example("transcodepool.yaml"))
    pool["metadata"]["name"] = "lagged"
    pool["spec"].update(
        {
            "minReplicas": 1,
            "maxReplicas": 4,
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "kafka": {"bootstrapServers": bootstrap, "topic": topic, "consumerGroup": group},
            "autoscaling": {
                "lagPerReplica": 10,
                "pollIntervalSeconds": 2,
                "scaleDownStabilizationSeconds": 8,
            },
        }
    )
    pool["spec"].pop("gpu")  # the GPU node's 4 GPUs: not enough for both pools
    k8s.apply([pool], namespace)

    def replicas(want: int) -> dict[str, Any] | None:
        tp = k8s.get("transcodepool", "lagged", namespace)
        d = k8s.get("deployment", "lagged-gpu-workers", namespace)
        ok = tp and d and d["spec"]["replicas"] == want and tp["status"].get("replicas") == want
        return tp if ok else None

    up = wait_for(lambda: replicas(4), 60, "4 workers for 35 messages of lag")
    assert (up["status"]["lag"], up["status"]["partitions"]) == (35, 6)
    assert up["status"]["desiredReplicas"] == 4
    asyncio.run(_commit_to_end(bootstrap, topic, group))
    started = time.monotonic()
    down = wait_for(lambda: replicas(1), 60, "back to 1 worker once the lag is gone")
    assert down["status"]["lag"] == 0
    assert time.monotonic() - started >= 5  # held by the stabilization window
    assert condition(down, "Degraded") == "False"


# -- restart and deletion ------------------------------------------------------------------
def test_operator_restarted_mid_reconcile_converges(
    k8s: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    pops = []
    for i in range(25):
        pop = _example("edgepop.yaml")
        pop["metadata"]["name"] = f"burst-{i}"
        pop["spec"]["replicas"] = 1
        pops.append(pop)
    k8s.apply(pops, namespace)
    time.sleep(1.0)
    operator.stop(kill=True)  # mid-reconcile: SIGKILL, no clean-up
    operator.start()

    def all_ready() -> bool:
        items = k8s.json("get", "edgepops", "-n", namespace)["items"]
        burst = [p for p in items if p["metadata"]["name"].startswith("burst-")]
        return len(burst) == 25 and all(condition(p, "Ready") == "True" for p in burst)

    wait_for(all_ready, READY_S, "25 EdgePoPs Ready after the restart")
    deployments = k8s.json("get", "deployments", "-n", namespace)["items"]
    assert len([d for d in deployments if d["metadata"]["name"].startswith("burst-")]) == 25

    def all_routed() -> bool:
        table = k8s.get("configmap", "reelplane-edge-routing", namespace)
        names = (
            {p["name"] for p in json.loads(table["data"]["routes.json"])["pops"]}
            if table
            else set()
        )
        return {f"burst-{i}" for i in range(25)} <= names

    wait_for(all_routed, 30, "the 25 PoPs in the routing table")  # published every 2 s
    assert operator.alive()


def test_deleting_a_resource_removes_its_children(
    k8s: Kubectl, namespace: str, created: list[dict[str, Any]]
) -> None:
    k8s.run("delete", "feedshard", "feed-0", "-n", namespace)
    k8s.run("delete", "edgepop", "fra-1", "-n", namespace)

    def gone() -> bool:
        names = {
            c["metadata"]["name"]
            for kind in ("deployments", "services", "configmaps")
            for c in k8s.json("get", kind, "-n", namespace)["items"]
        }
        return not names & {"feed-0-feed", "fra-1-edge", "fra-1-edge-vcl"}

    wait_for(gone, 60, "garbage collection of the children")

    def unrouted() -> bool:
        table = k8s.get("configmap", "reelplane-edge-routing", namespace)
        return bool(table and '"fra-1"' not in table["data"]["routes.json"])

    wait_for(unrouted, 30, "fra-1 out of the routing table")


def test_operator_log_has_no_permission_errors(operator: OperatorProcess) -> None:
    log = operator.log()
    assert "403" not in log and "Forbidden" not in log, log[-3000:]
    assert OPERATOR_SA
