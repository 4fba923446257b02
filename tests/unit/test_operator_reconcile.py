"""The reconciler against an in-memory API server: idempotency, drift, status, pruning."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping
from typing import Any

import pytest

from reelplane_operator.kinds import Kind
from reelplane_operator.kube import KubeApiError
from reelplane_operator.lag import LagReading
from reelplane_operator.meta import Manifest, key_of, parent_key
from reelplane_operator.reconcile import Reconciler
from reelplane_operator.store import Store, owner_of_child

pytestmark = pytest.mark.unit


def Rejected(message: str) -> KubeApiError:
    """An API error as the client raises it for a refused write (HTTP 422)."""
    return KubeApiError(422, message)


class FakeKube:
    """Just enough of an API server: apply stores the object (bumping resourceVersion
    and, on spec change, generation), status apply sets status, writes are counted."""

    def __init__(self, kuberay: bool = False) -> None:
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.writes: list[str] = []
        self.kuberay = kuberay
        self.fail_on: str | None = None
        self.failure: Exception | None = None

    def _bump(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(next(RESOURCE_VERSIONS))

    async def apply(self, manifest: Manifest) -> Manifest:
        name = manifest["metadata"]["name"]
        if self.fail_on == name:
            raise (self.failure or Rejected("admission webhook denied"))
        self.writes.append(f"apply {manifest['kind']}/{name}")
        key = key_of(manifest)
        old = self.objects.get(key)
        obj = copy.deepcopy(manifest)
        generation = 1
        if old is not None:
            generation = old["metadata"]["generation"]
            if old.get("spec") != manifest.get("spec"):
                generation += 1
            obj["status"] = old.get("status", {})
        obj["metadata"]["generation"] = generation
        self._bump(obj)
        self.objects[key] = obj
        return copy.deepcopy(obj)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.writes.append(f"delete {kind}/{name}")
        self.objects.pop((api_version, kind, namespace, name), None)

    async def apply_status(
        self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Manifest:
        self.writes.append(f"status {kind.kind}/{name}")
        body = copy.deepcopy(PARENTS[(kind.kind, namespace, name)])
        body["status"] = copy.deepcopy(dict(status))
        self._bump(body)
        PARENTS[(kind.kind, namespace, name)] = body
        return copy.deepcopy(body)

    async def has_kuberay(self, namespace: str) -> bool:
        return self.kuberay

    async def close(self) -> None:
        return None


PARENTS: dict[tuple[str, str, str], dict[str, Any]] = {}
#: One etcd: every write gets the next resourceVersion.
RESOURCE_VERSIONS = itertools.count(1)


def _resource(kind: str, name: str, spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    body = {
        "apiVersion": "reelplane.io/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "generation": generation,
            "resourceVersion": str(next(RESOURCE_VERSIONS)),
        },
        "spec": spec,
    }
    PARENTS[parent_key(body)] = body
    return body


def _setup(kuberay: bool = False) -> tuple[FakeKube, Store, Reconciler]:
    PARENTS.clear()
    kube = FakeKube(kuberay)
    store = Store()
    reconciler = Reconciler(kube, store, clock=lambda: "2026-01-01T00:00:00Z")
    return kube, store, reconciler


async def _run(reconciler: Reconciler, body: dict[str, Any]) -> int:
    reconciler.store.observe_parent(body)
    return await reconciler.reconcile(reconciler.store.parents[parent_key(body)])


def _conditions(body: Mapping[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in body["status"]["conditions"]}


def _make_available(kube: FakeKube, store: Store) -> None:
    """What kube-controller-manager and KWOK do: Deployments report their Pods ready."""
    for key, obj in kube.objects.items():
        if obj["kind"] == "Deployment":
            replicas = obj["spec"]["replicas"]
            obj["status"] = {
                "observedGeneration": obj["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
            kube._bump(obj)
            store.observe_child(copy.deepcopy(obj))
        else:
            store.observe_child(copy.deepcopy(obj))
        assert key_of(obj) == key


POP_SPEC = {"region": "eu", "location": {"latitude": 1.5, "longitude": 2.5}, "replicas": 2}


async def test_first_reconcile_applies_children_and_reports_progress() -> None:
    kube, _store, reconciler = _setup()
    writes = await _run(reconciler, _resource("EdgePoP", "fra", POP_SPEC))
    assert kube.writes == [
        "apply ConfigMap/fra-edge-vcl",
        "apply Deployment/fra-edge",
        "apply Service/fra-edge",
        "status EdgePoP/fra",
    ]
    assert writes == 4
    body = PARENTS[("EdgePoP", "ns", "fra")]
    assert _conditions(body) == {"Ready": "False", "Progressing": "True", "Degraded": "False"}
    assert body["status"]["observedGeneration"] == 1
    assert body["status"]["endpoint"] == "http://fra-edge.ns.svc:80"
    assert "app.kubernetes.io/instance=fra" in body["status"]["selector"]


async def test_nothing_changed_means_no_write() -> None:
    kube, store, reconciler = _setup()
    await _run(reconciler, _resource("EdgePoP", "fra", POP_SPEC))
    _make_available(kube, store)
    await _run(reconciler, PARENTS[("EdgePoP", "ns", "fra")])
    assert _conditions(PARENTS[("EdgePoP", "ns", "fra")])["Ready"] == "True"
    kube.writes.clear()
    for _ in range(3):
        assert await _run(reconciler, PARENTS[("EdgePoP", "ns", "fra")]) == 0
    assert kube.writes == []


async def test_only_the_echo_of_the_operators_own_write_is_recognised() -> None:
    kube, store, reconciler = _setup()
    await _run(reconciler, _resource("EdgePoP", "fra", POP_SPEC))
    key = ("apps/v1", "Deployment", "ns", "fra-edge")
    echo = copy.deepcopy(kube.objects[key])
    assert reconciler.expectations.is_echo(key, echo)
    assert not reconciler.expectations.is_echo(key, echo)  # matched once
    parent = ("EdgePoP", "ns", "fra")
    newer = copy.deepcopy(PARENTS[parent])
    kube._bump(newer)  # someone else's write came first: not ours
    assert not reconciler.expectations.is_echo(parent, newer)
    assert not reconciler.expectations.is_echo(
        parent, copy.deepcopy(PARENTS[parent])
    )  # cleared by it
    _make_available(kube, store)  # the controllers' writes are never echoes
    assert not reconciler.expectations.is_echo(key, kube.objects[key])


async def test_edited_or_deleted_child_is_restored() -> None:
    kube, store, reconciler = _setup()
    await _run(reconciler, _resource("EdgePoP", "fra", POP_SPEC))
    _make_available(kube, store)
    await _run(reconciler, PARENTS[("EdgePoP", "ns", "fra")])
    kube.writes.clear()

    key = ("apps/v1", "Deployment", "ns", "fra-edge")
    edited = copy.deepcopy(store.children[key])
    edited["spec"]["replicas"] = 7  # kubectl scale by hand
    kube._bump(edited)
    store.observe_child(edited)
    await _run(reconciler, PARENTS[("EdgePoP", "ns", "fra")])
    assert kube.writes[0] == "apply Deployment/fra-edge"
    assert kube.objects[key]["spec"]["replicas"] == 2

    kube.writes.clear()
    store.forget_child(("v1", "Service", "ns", "fra-edge"))  # kubectl delete svc
    await _run(reconciler, PARENTS[("EdgePoP", "ns", "fra")])
    assert kube.writes[0] == "apply Service/fra-edge"


async def test_spec_change_updates_children_and_observed_generation() -> None:
    kube, _store, reconciler = _setup()
    await _run(reconciler, _resource("FeedShard", "s0", {"shardIndex": 0, "shardCount": 2}))
    kube.writes.clear()
    changed = _resource("FeedShard", "s0", {"shardIndex": 0, "shardCount": 2, "replicas": 5}, 2)
    changed["status"] = PARENTS.get(("FeedShard", "ns", "s0"), {}).get("status", {})
    await _run(reconciler, changed)
    assert "apply Deployment/s0-feed" in kube.writes
    assert "apply Service/s0-feed" not in kube.writes  # unchanged child left alone
    assert kube.objects[("apps/v1", "Deployment", "ns", "s0-feed")]["spec"]["replicas"] == 5
    assert PARENTS[("FeedShard", "ns", "s0")]["status"]["observedGeneration"] == 2


async def test_failed_apply_reports_degraded_and_raises() -> None:
    kube, _store, reconciler = _setup()
    kube.fail_on = "fra-edge"
    with pytest.raises(KubeApiError, match="admission"):
        await _run(reconciler, _resource("EdgePoP", "fra", POP_SPEC))
    body = PARENTS[("EdgePoP", "ns", "fra")]
    assert _conditions(body)["Degraded"] == "True"
    degraded = next(c for c in body["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ApplyFailed"
    assert "admission webhook denied" in degraded["message"]


async def test_transient_failure_is_retried_without_a_status_flip() -> None:
    kube, _, reconciler = _setup()
    kube.fail_on, kube.failure = "fra-edge", TimeoutError()
    with pytest.raises(TimeoutError):
        await _run(reconciler, _resource("EdgePoP", "fra", POP_SPEC))
    assert not any(w.startswith("status") for w in kube.writes)


async def test_unchanged_children_are_compared_once_per_resource_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube, store, reconciler = _setup()
    await _run(reconciler, _resource("EdgePoP", "fra", POP_SPEC))
    import reelplane_operator.reconcile as module

    calls = []
    real = module.up_to_date
    monkeypatch.setattr(module, "up_to_date", lambda m, live: calls.append(1) or real(m, live))
    await _run(reconciler, PARENTS[("EdgePoP", "ns", "fra")])
    first = len(calls)
    await _run(reconciler, PARENTS[("EdgePoP", "ns", "fra")])
    assert first == 0  # the apply's answer counts as verified
    assert len(calls) == 0
    edited = copy.deepcopy(store.children[("apps/v1", "Deployment", "ns", "fra-edge")])
    edited["spec"]["replicas"] = 9
    kube._bump(edited)
    store.observe_child(edited)  # a new resourceVersion is compared again
    await _run(reconciler, PARENTS[("EdgePoP", "ns", "fra")])
    assert len(calls) == 1
    assert kube.objects[("apps/v1", "Deployment", "ns", "fra-edge")]["spec"]["replicas"] == 2


async def test_invalid_spec_is_reported_not_applied() -> None:
    kube, _store, reconciler = _setup()
    await _run(reconciler, _resource("FeedShard", "bad", {"shardIndex": 3, "shardCount": 2}))
    assert kube.writes == ["status FeedShard/bad"]
    degraded = next(
        c
        for c in PARENTS[("FeedShard", "ns", "bad")]["status"]["conditions"]
        if c["type"] == "Degraded"
    )
    assert "shardIndex must be < shardCount" in degraded["message"]


async def test_recommender_switches_to_rayservice_and_prunes_deployments() -> None:
    kube, _store, reconciler = _setup(kuberay=False)
    await _run(reconciler, _resource("Recommender", "rec", {}))
    assert PARENTS[("Recommender", "ns", "rec")]["status"]["mode"] == "Deployments"
    assert len([k for k in kube.objects if k[3].startswith("rec-")]) == 4
    kube.kuberay = True
    kube.writes.clear()
    await _run(reconciler, PARENTS[("Recommender", "ns", "rec")])
    assert kube.writes[0] == "apply RayService/rec"
    assert sorted(w for w in kube.writes if w.startswith("delete")) == [
        "delete ConfigMap/rec-serve-config",
        "delete Deployment/rec-ray-head",
        "delete Deployment/rec-ray-worker",
        "delete Service/rec-ray-head",
    ]
    assert set(kube.objects) == {("ray.io/v1", "RayService", "ns", "rec")}
    assert PARENTS[("Recommender", "ns", "rec")]["status"]["mode"] == "RayService"


async def test_transcode_pool_runs_what_the_autoscaler_decided() -> None:
    kube, _store, reconciler = _setup()
    body = _resource("TranscodePool", "pool", {"minReplicas": 1, "maxReplicas": 8})
    await _run(reconciler, body)
    key = ("apps/v1", "Deployment", "ns", "pool-gpu-workers")
    assert kube.objects[key]["spec"]["replicas"] == 1
    spec = reconciler.autoscaler.pools[("ns", "pool")]
    from reelplane_operator.models import TranscodePoolSpec

    pool_spec = TranscodePoolSpec.model_validate(body["spec"])
    assert reconciler.autoscaler.observe(
        ("ns", "pool"), pool_spec, LagReading(45, 6), None, spec.history[-1].at_s + 1, "T"
    )
    await _run(reconciler, PARENTS[("TranscodePool", "ns", "pool")])
    assert kube.objects[key]["spec"]["replicas"] == 5
    status = PARENTS[("TranscodePool", "ns", "pool")]["status"]
    assert (status["lag"], status["desiredReplicas"], status["partitions"]) == (45, 5, 6)
    assert status["lastScaleTime"] == "T"


async def test_routing_table_lists_only_ready_pops_and_is_idempotent() -> None:
    kube, store, reconciler = _setup()
    await _run(reconciler, _resource("EdgePoP", "a", POP_SPEC))
    _make_available(kube, store)
    await _run(reconciler, PARENTS[("EdgePoP", "ns", "a")])
    await _run(reconciler, _resource("EdgePoP", "b", {**POP_SPEC, "region": "us"}))
    assert reconciler.routing_dirty == {"ns"}
    assert await reconciler.publish_routing() == 1
    table = kube.objects[("v1", "ConfigMap", "ns", "reelplane-edge-routing")]
    pops = json.loads(table["data"]["routes.json"])["pops"]
    assert [(p["name"], p["region"]) for p in pops] == [("a", "eu")]
    reconciler.routing_dirty.add("ns")
    assert await reconciler.publish_routing() == 0


async def test_routing_table_is_owned_by_every_pop_and_no_pop_prunes_it() -> None:
    kube, store, reconciler = _setup()
    await _run(reconciler, _resource("EdgePoP", "a", POP_SPEC))
    await _run(reconciler, _resource("EdgePoP", "b", POP_SPEC))  # not Ready: owns it too
    assert await reconciler.publish_routing() == 1
    key = ("v1", "ConfigMap", "ns", "reelplane-edge-routing")
    refs = kube.objects[key]["metadata"]["ownerReferences"]
    assert [(r["name"], r["uid"], r["controller"]) for r in refs] == [
        ("a", "uid-a", False),
        ("b", "uid-b", False),
    ]
    # Reconciling a PoP again prunes only what it controls: the shared table stays.
    _make_available(kube, store)
    await _run(reconciler, PARENTS[("EdgePoP", "ns", "a")])
    assert "delete ConfigMap/reelplane-edge-routing" not in kube.writes
    assert key in kube.objects

    # A PoP going away leaves the others as owners.
    store.forget_parent(("EdgePoP", "ns", "b"))
    reconciler.routing_dirty.add("ns")
    await reconciler.publish_routing()
    refs = kube.objects[key]["metadata"]["ownerReferences"]
    assert [r["name"] for r in refs] == ["a"]

    # With none left the operator writes nothing: the garbage collector deletes the table.
    store.forget_parent(("EdgePoP", "ns", "a"))
    reconciler.routing_dirty.add("ns")
    kube.writes.clear()
    assert await reconciler.publish_routing() == 0
    assert kube.writes == []


async def test_an_ownerless_routing_table_without_pops_is_deleted() -> None:
    """A table an earlier operator left without owners would outlive every PoP."""
    kube, store, reconciler = _setup()
    legacy = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "reelplane-edge-routing", "namespace": "ns", "resourceVersion": "1"},
        "data": {"routes.json": "{}"},
    }
    kube.objects[key_of(legacy)] = legacy
    store.observe_child(legacy)
    reconciler.routing_dirty.add("ns")
    assert await reconciler.publish_routing() == 1
    assert kube.writes == ["delete ConfigMap/reelplane-edge-routing"]
    assert key_of(legacy) not in kube.objects


def test_owner_of_child_reads_the_labels() -> None:
    child = {
        "metadata": {
            "namespace": "ns",
            "labels": {"reelplane.io/owner-kind": "EdgePoP", "app.kubernetes.io/instance": "fra"},
        }
    }
    assert owner_of_child(child) == ("EdgePoP", "ns", "fra")
    assert owner_of_child({"metadata": {"labels": {}}}) is None


def test_store_never_replaces_a_newer_version() -> None:
    store = Store()
    new = _resource("EdgePoP", "x", POP_SPEC)
    new["metadata"]["resourceVersion"] = "20"
    old = copy.deepcopy(new)
    old["metadata"]["resourceVersion"] = "10"
    old["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    store.observe_parent(new)
    store.observe_parent(old)
    assert store.parents[parent_key(new)]["metadata"]["resourceVersion"] == "20"
    newer = {**old, "metadata": {**old["metadata"], "resourceVersion": "30"}}
    store.observe_parent(newer)
    assert "managedFields" not in store.parents[parent_key(new)]["metadata"]
