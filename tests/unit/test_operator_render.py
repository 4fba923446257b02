"""Renderers: TranscodePool, FeedShard, EdgePoP and Recommender children (no cluster)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from reelplane_operator.meta import CONFIG_DIGEST_ANNOTATION, Owner
from reelplane_operator.models import (
    EdgePoPSpec,
    FeedShardSpec,
    RecommenderSpec,
    TranscodePoolSpec,
)
from reelplane_operator.render import edge, feed, recommender, transcode

pytestmark = pytest.mark.unit

OWNER = Owner(kind="TranscodePool", name="pool", namespace="media", uid="u-1", generation=3)
LABEL_KEYS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
}


def _owner(kind: str, name: str = "x") -> Owner:
    return Owner(kind=kind, name=name, namespace="ns", uid=f"uid-{name}")


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container(deployment).get("env", [])}


def _assert_child_invariants(children: list[dict[str, Any]], owner: Owner) -> None:
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == owner.namespace
        assert set(meta["labels"]) >= LABEL_KEYS, meta["name"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "reelplane-operator"
        assert meta["labels"]["app.kubernetes.io/instance"] == owner.name
        (ref,) = meta["ownerReferences"]
        assert ref == {
            "apiVersion": "reelplane.io/v1alpha1",
            "kind": owner.kind,
            "name": owner.name,
            "uid": owner.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert len(meta["name"]) <= 63
        if child["kind"] == "Deployment":
            selector = child["spec"]["selector"]["matchLabels"]
            pod_labels = child["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= pod_labels.items()
        if child["kind"] == "Service":
            assert child["spec"]["selector"].items() <= meta["labels"].items()
    json.dumps(children)  # plain JSON, ready to send


# -- TranscodePool ----------------------------------------------------------------------
def test_pool_without_gpu_requests_no_gpu_and_encodes_on_cpu() -> None:
    cm, deployment = transcode.render_transcode_pool(OWNER, TranscodePoolSpec(), 2)
    _assert_child_invariants([cm, deployment], OWNER)
    assert deployment["spec"]["replicas"] == 2
    limits = _container(deployment)["resources"]["limits"]
    assert "nvidia.com/gpu" not in limits
    assert _env(deployment)["REELPLANE_TRANSCODE_ACCEL"] == "none"
    assert _container(deployment)["args"] == ["worker", "transcode"]


def test_pool_with_gpu_sets_limit_node_selector_and_tolerations() -> None:
    spec = TranscodePoolSpec.model_validate(
        {
            "gpu": {"count": 2},
            "nodeSelector": {"gpu": "a10"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
        }
    )
    deployment = transcode.render_workers(OWNER, spec, 1)
    pod = deployment["spec"]["template"]["spec"]
    assert _container(deployment)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == {"gpu": "a10"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert _env(deployment)["REELPLANE_TRANSCODE_ACCEL"] == "cuda"


def test_ladder_config_map_is_mounted_and_its_change_rolls_the_pods() -> None:
    spec = TranscodePoolSpec()
    cm, deployment = transcode.render_transcode_pool(OWNER, spec, 1)
    ladder = json.loads(cm["data"]["ladder.json"])
    assert [r["height"] for r in ladder["renditions"]] == sorted(
        (r["height"] for r in ladder["renditions"]), reverse=True
    )
    assert {r["codec"] for r in ladder["renditions"]} == {"h264", "hevc"}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "ladder", "configMap": {"name": cm["metadata"]["name"]}} in volumes
    mounts = {m["name"]: m["mountPath"] for m in _container(deployment)["volumeMounts"]}
    assert _env(deployment)["REELPLANE_TRANSCODE_LADDER_FILE"] == (
        f"{mounts['ladder']}/{transcode.LADDER_KEY}"
    )
    assert _env(deployment)["REELPLANE_TRANSCODE_WORK_DIR"] == mounts["scratch"]
    shorter = spec.model_copy(update={"segment_seconds": 2})
    before = deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_DIGEST_ANNOTATION]
    after = transcode.render_workers(OWNER, shorter, 1)["spec"]["template"]["metadata"][
        "annotations"
    ][CONFIG_DIGEST_ANNOTATION]
    assert before != after


def test_pool_kafka_settings_reach_the_workers() -> None:
    spec = TranscodePoolSpec.model_validate(
        {
            "kafka": {
                "bootstrapServers": "k1:9092,k2:9092",
                "consumerGroup": "g",
                "offsetResetPolicy": "latest",
            }
        }
    )
    env = _env(transcode.render_workers(OWNER, spec, 1))
    assert env["REELPLANE_BUS_URL"] == "kafka://k1:9092,k2:9092"
    assert env["REELPLANE_TRANSCODE_GROUP"] == "g"
    assert env["REELPLANE_TRANSCODE_TOPIC"] == "uploads"
    # The workers start where the autoscaler counts lag from.
    assert env["REELPLANE_BUS_OFFSET_RESET"] == "latest"


@given(st.integers(min_value=0, max_value=1000))
def test_rendering_is_deterministic(replicas: int) -> None:
    spec = TranscodePoolSpec()
    assert transcode.render_transcode_pool(OWNER, spec, replicas) == (
        transcode.render_transcode_pool(OWNER, spec, replicas)
    )


# -- FeedShard --------------------------------------------------------------------------
def test_feed_shard_env_service_and_defaults() -> None:
    owner = _owner("FeedShard", "feed-2")
    spec = FeedShardSpec(shard_index=2, shard_count=8)
    deployment, service = feed.render_feed_shard(owner, spec)
    _assert_child_invariants([deployment, service], owner)
    env = _env(deployment)
    assert env["REELPLANE_FEED_SHARD_INDEX"] == "2"
    assert env["REELPLANE_FEED_SHARD_COUNT"] == "8"
    assert env["REELPLANE_FEED_PAGE_CACHE_TTL_S"] == "300"
    assert env["REELPLANE_CELEBRITY_FOLLOWER_THRESHOLD"] == "100000"
    assert env["REELPLANE_CACHE_URL"].startswith("redis://")
    assert env["REELPLANE_WIDEROW_URL"].startswith("cassandra://")
    assert _container(deployment)["args"] == ["serve", "feed"]
    assert deployment["spec"]["replicas"] == 2
    # Liveness is the process (a backend outage restarts nothing), readiness the backends.
    assert _container(deployment)["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "http",
    }
    assert _container(deployment)["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "http",
    }
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert feed.feed_endpoint(owner) == "http://feed-2-feed.ns.svc:80"


def test_two_shards_select_only_their_own_pods() -> None:
    a = feed.render_feed_service(_owner("FeedShard", "a"))
    b = feed.render_feed_service(_owner("FeedShard", "b"))
    assert a["spec"]["selector"] != b["spec"]["selector"]


# -- EdgePoP ----------------------------------------------------------------------------
POP = EdgePoPSpec.model_validate(
    {
        "region": "eu-west",
        "location": {"latitude": 53.3, "longitude": -6.2},
        "purgeAllowedCidrs": ["10.1.2.3/8", "10.0.0.0/8", "fd00::/8"],
    }
)


def test_vcl_ttls_for_manifests_and_segments() -> None:
    vcl = edge.render_vcl(POP)
    assert vcl.startswith("vcl 4.1;")
    manifest_block = vcl.split(edge.MANIFEST_URL)[1].split("}")[0]
    segment_block = vcl.split(edge.SEGMENT_URL)[1].split("}")[0]
    assert f"beresp.ttl = {POP.cache.manifest_ttl_seconds}s" in manifest_block
    assert f"beresp.ttl = {POP.cache.segment_ttl_seconds}s" in segment_block
    assert POP.cache.manifest_ttl_seconds < POP.cache.segment_ttl_seconds


def test_vcl_allows_purge_and_ban_only_from_the_acl() -> None:
    vcl = edge.render_vcl(POP)
    acl = vcl.split("acl purgers {")[1].split("}")[0]
    # normalised and de-duplicated: 10.1.2.3/8 is 10.0.0.0/8
    assert [line.strip() for line in acl.strip().splitlines()] == [
        '"10.0.0.0"/8;',
        '"fd00::"/8;',
    ]
    recv = vcl.split("sub vcl_recv {")[1].split("sub vcl_backend_response")[0]
    guard = recv.index("client.ip !~ purgers")
    assert recv.index('req.method == "PURGE"') < guard < recv.index("return (purge)")
    assert guard < recv.index("ban(")
    assert 'synth(403, "Forbidden")' in recv


def test_vcl_balances_braces_and_names_the_origin() -> None:
    vcl = edge.render_vcl(POP)
    assert vcl.count("{") == vcl.count("}")
    # By default, the reelplane chart's upload Service (release `reelplane`) on its port.
    assert '.host = "reelplane-upload";' in vcl
    assert '.port = "80";' in vcl


def test_edge_children_mount_the_vcl_and_roll_on_change() -> None:
    owner = _owner("EdgePoP", "dub-1")
    cm, deployment, service = edge.render_edge_pop(owner, POP)
    _assert_child_invariants([cm, deployment, service], owner)
    assert cm["data"]["default.vcl"] == edge.render_vcl(POP)
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "vcl", "configMap": {"name": "dub-1-edge-vcl"}} in volumes
    env = _env(deployment)
    assert env["VARNISH_SIZE"] == "1024M"
    # the Pod's memory holds the cache plus Varnish's own overhead
    assert _container(deployment)["resources"]["limits"]["memory"] == "1280Mi"
    changed = POP.model_copy(
        update={"cache": POP.cache.model_copy(update={"segment_ttl_seconds": 60})}
    )
    digest_of = lambda d: d["spec"]["template"]["metadata"]["annotations"][CONFIG_DIGEST_ANNOTATION]  # noqa: E731
    assert digest_of(deployment) != digest_of(edge.render_edge_deployment(owner, changed))


def test_routing_table_lists_entries_sorted_and_is_stable() -> None:
    entries = [
        edge.RoutingEntry("b", "us", 1.0, 2.0, 10.0, "http://b-edge.ns.svc:80"),
        edge.RoutingEntry("a", "eu", 3.0, 4.0, 20.0, "http://a-edge.ns.svc:80"),
    ]
    pops = [_owner("EdgePoP", "b"), _owner("EdgePoP", "a")]
    cm = edge.render_routing_table("ns", entries, pops)
    doc = json.loads(cm["data"]["routes.json"])
    assert [p["name"] for p in doc["pops"]] == ["a", "b"]
    assert doc["pops"][0] == {
        "name": "a",
        "region": "eu",
        "latitude": 3.0,
        "longitude": 4.0,
        "capacityGbps": 20.0,
        "endpoint": "http://a-edge.ns.svc:80",
    }
    assert cm == edge.render_routing_table("ns", list(reversed(entries)), list(reversed(pops)))
    empty = edge.render_routing_table("ns", [], pops)
    assert json.loads(empty["data"]["routes.json"])["pops"] == []


def test_routing_table_is_owned_by_every_pop_and_controlled_by_none() -> None:
    pops = [_owner("EdgePoP", "b"), _owner("EdgePoP", "a")]
    refs = edge.render_routing_table("ns", [], pops)["metadata"]["ownerReferences"]
    # The garbage collector deletes it once every owner is gone, not with the first.
    assert [(r["kind"], r["name"], r["uid"]) for r in refs] == [
        ("EdgePoP", "a", "uid-a"),
        ("EdgePoP", "b", "uid-b"),
    ]
    assert all(r["apiVersion"] == "reelplane.io/v1alpha1" for r in refs)
    assert not any(r["controller"] or r["blockOwnerDeletion"] for r in refs)


# -- Recommender ------------------------------------------------------------------------
REC = RecommenderSpec(
    min_replicas=2, max_replicas=6, target_ongoing_requests=3, gpus_per_replica=0.5
)


def _deployments(spec: RecommenderSpec) -> dict[str, dict[str, Any]]:
    (app,) = recommender.serve_config(spec)["applications"]
    return {d["name"]: d for d in app["deployments"]}


def test_serve_config_names_the_apps_three_deployments_with_autoscaling() -> None:
    deployments = _deployments(REC)
    assert list(deployments) == ["Recommender", "Retriever", "Ranker"]
    for deployment in deployments.values():
        assert deployment["autoscaling_config"] == {
            "min_replicas": 2,
            "max_replicas": 6,
            "target_ongoing_requests": 3,
        }
        # Batches of up to 32 must be able to fill.
        assert deployment["max_ongoing_requests"] >= 64
    assert deployments["Ranker"]["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0.5}
    assert deployments["Retriever"]["ray_actor_options"] == {"num_cpus": 1}
    assert deployments["Recommender"]["ray_actor_options"] == {"num_cpus": 0.25}


def test_the_fused_topology_is_the_ingress_alone_with_the_rankers_resources() -> None:
    fused = REC.model_copy(update={"topology": "fused"})
    (app,) = recommender.serve_config(fused)["applications"]
    assert app["args"] == {"topology": "fused"}
    assert [d["name"] for d in app["deployments"]] == ["Recommender"]
    (ingress,) = app["deployments"]
    assert ingress["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0.5}
    assert ingress["autoscaling_config"]["max_replicas"] == 6
    (split,) = recommender.serve_config(REC)["applications"]
    assert split["args"] == {"topology": "split"}


def test_model_index_exploration_and_ttl_become_every_deployments_user_config() -> None:
    spec = RecommenderSpec.model_validate(
        {
            "modelVersion": "v7",
            "index": {"type": "hnsw", "nlist": 0, "nprobe": 8, "hnswM": 16, "efSearch": 64},
            "exploration": {"freshSlotRatio": 0.2, "randomSlotRatio": 0.05},
            "cacheTTLSeconds": 60,
        }
    )
    expected = {
        "model_version": "v7",
        "index": {"type": "hnsw", "nlist": 0, "nprobe": 8, "hnsw_m": 16, "ef_search": 64},
        "exploration": {"fresh_slot_ratio": 0.2, "random_slot_ratio": 0.05},
        "cache_ttl_s": 60,
    }
    for deployment in _deployments(spec).values():
        assert deployment["user_config"] == expected


def test_a_model_version_change_keeps_the_ray_cluster() -> None:
    """Only user_config changes: KubeRay updates Serve in place (rayClusterConfig is
    unchanged) and the plain head keeps its Pod (same digest) and redeploys."""
    owner = _owner("Recommender", "foryou")
    newer = REC.model_copy(update={"model_version": "v2"})
    (before,), (after,) = (
        recommender.render_recommender(owner, s, kuberay=True) for s in (REC, newer)
    )
    assert before["spec"]["rayClusterConfig"] == after["spec"]["rayClusterConfig"]
    assert before["spec"]["serveConfigV2"] != after["spec"]["serveConfigV2"]
    heads = [recommender.render_ray_head(owner, s) for s in (REC, newer)]
    assert heads[0] == heads[1]
    configs = [recommender.render_serve_config_map(owner, s) for s in (REC, newer)]
    assert configs[0] != configs[1]
    resized = REC.model_copy(update={"max_replicas": 7})
    assert recommender.render_ray_head(owner, resized) != heads[0]


def test_ray_pods_run_serve_with_the_ha_proxy_in_throughput_mode() -> None:
    owner = _owner("Recommender", "foryou")
    (rs,) = recommender.render_recommender(owner, REC, kuberay=True)
    cluster = rs["spec"]["rayClusterConfig"]
    pods = [
        cluster["headGroupSpec"]["template"]["spec"],
        cluster["workerGroupSpecs"][0]["template"]["spec"],
        recommender.render_ray_head(owner, REC)["spec"]["template"]["spec"],
        recommender.render_ray_workers(owner, REC)["spec"]["template"]["spec"],
    ]
    for pod in pods:
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
        assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
        assert env["RAY_SERVE_HAPROXY_METRICS_ENABLED"] == "0"


def test_rayservice_when_kuberay_is_installed() -> None:
    owner = _owner("Recommender", "foryou")
    (rs,) = recommender.render_recommender(owner, REC, kuberay=True)
    _assert_child_invariants([rs], owner)
    assert rs["apiVersion"] == "ray.io/v1"
    assert rs["kind"] == "RayService"
    assert yaml.safe_load(rs["spec"]["serveConfigV2"]) == recommender.serve_config(REC)
    (group,) = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert (group["minReplicas"], group["maxReplicas"]) == (2, 6)
    worker = group["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"  # 0.5 rounds up per Pod


def test_head_and_worker_deployments_without_kuberay() -> None:
    owner = _owner("Recommender", "foryou")
    children = recommender.render_recommender(owner, REC, kuberay=False)
    _assert_child_invariants(children, owner)
    kinds = [(c["kind"], c["metadata"]["name"]) for c in children]
    assert kinds == [
        ("ConfigMap", "foryou-serve-config"),
        ("Service", "foryou-ray-head"),
        ("Deployment", "foryou-ray-head"),
        ("Deployment", "foryou-ray-worker"),
    ]
    config_map, _, head, workers = children
    assert yaml.safe_load(config_map["data"]["serve.yaml"]) == recommender.serve_config(REC)
    assert "serve deploy /etc/reelplane/serve/serve.yaml" in _container(head)["command"][-1]
    assert "--address=foryou-ray-head.ns.svc:6379" in _container(workers)["command"][-1]
    assert workers["spec"]["replicas"] == REC.max_replicas


def test_cpu_only_recommender_requests_no_gpu() -> None:
    spec = RecommenderSpec()
    workers = recommender.render_ray_workers(_owner("Recommender"), spec)
    assert "nvidia.com/gpu" not in _container(workers)["resources"]["limits"]
    assert "--num-gpus=0" in _container(workers)["command"][-1]
    for deployment in _deployments(spec).values():
        assert "num_gpus" not in deployment["ray_actor_options"]
