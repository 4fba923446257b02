"""Reconcile one custom resource: render, compare with the live children, apply
what differs, prune what is no longer rendered, write status if it changed.

Level-based (like controller-runtime): it runs on any event of the resource or
of one of its children, and at start-up for every resource, and does nothing
(no API write) when the children and status already match. The live state it
compares with comes from `Store`, which Kopf's watches keep current; the only
I/O is through `Kube`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from reelplane_operator import conditions
from reelplane_operator.conditions import Health
from reelplane_operator.drift import up_to_date
from reelplane_operator.kinds import BY_KIND, EDGE_POP, FEED_SHARD, RECOMMENDER, TRANSCODE_POOL
from reelplane_operator.kube import Kube, status_code
from reelplane_operator.meta import (
    DIGEST_ANNOTATION,
    OWNER_KIND_LABEL,
    Manifest,
    Owner,
    key_of,
    selector_labels,
    selector_string,
    stamped,
)
from reelplane_operator.models import (
    EdgePoPSpec,
    FeedShardSpec,
    RecommenderSpec,
    TranscodePoolSpec,
    wire,
)
from reelplane_operator.render import edge, feed, recommender, transcode
from reelplane_operator.scaling import Autoscaler

log = logging.getLogger(__name__)

ParentKey = tuple[str, str, str]  # (kind, namespace, name)
ChildKey = tuple[str, str, str, str]  # (apiVersion, kind, namespace, name)


def parent_key(body: Mapping[str, Any]) -> ParentKey:
    """(kind, namespace, name) of a custom resource."""
    meta = body["metadata"]
    return (str(body["kind"]), str(meta["namespace"]), str(meta["name"]))


def _older(incoming: Mapping[str, Any], stored: Mapping[str, Any] | None) -> bool:
    """Whether `incoming` is an older version than `stored`. resourceVersions are opaque,
    but etcd's are increasing integers; anything else is taken as newer."""
    if stored is None:
        return False
    new = str(incoming.get("metadata", {}).get("resourceVersion", ""))
    old = str(stored.get("metadata", {}).get("resourceVersion", ""))
    return new.isdigit() and old.isdigit() and int(new) < int(old)


def _slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without managedFields (large, and never compared)."""
    meta = body.get("metadata") or {}
    if "managedFields" not in meta:
        return dict(body)
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


class Store:
    """The last seen state of the custom resources and their children.

    Fed by Kopf's watches and by the API's answers to the operator's own writes,
    which can arrive in either order: an older version never replaces a newer one.
    """

    def __init__(self) -> None:
        self.parents: dict[ParentKey, dict[str, Any]] = {}
        self.children: dict[ChildKey, dict[str, Any]] = {}
        self._by_owner: dict[str, set[ChildKey]] = {}

    def observe_parent(self, body: Mapping[str, Any]) -> None:
        key = parent_key(body)
        if not _older(body, self.parents.get(key)):
            self.parents[key] = _slim(body)

    def forget_parent(self, key: ParentKey) -> None:
        self.parents.pop(key, None)

    def observe_child(self, body: Mapping[str, Any]) -> None:
        key = key_of(body)
        if not _older(body, self.children.get(key)):
            self.forget_child(key)
            self.children[key] = _slim(body)
            for uid in _owner_uids(body):
                self._by_owner.setdefault(uid, set()).add(key)

    def forget_child(self, key: ChildKey) -> None:
        old = self.children.pop(key, None)
        for uid in _owner_uids(old or {}):
            keys = self._by_owner.get(uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_owner[uid]

    def child(self, key: ChildKey) -> dict[str, Any] | None:
        return self.children.get(key)

    def owned_by(self, uid: str) -> list[dict[str, Any]]:
        """Children with an owner reference to `uid`."""
        return [self.children[k] for k in sorted(self._by_owner.get(uid, ()))]

    def of_kind(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Custom resources of a kind (in one namespace, or all)."""
        return [
            b
            for (k, ns, _), b in self.parents.items()
            if k == kind and (namespace is None or ns == namespace)
        ]


def _owner_uids(body: Mapping[str, Any]) -> list[str]:
    """uids of the resources controlling a child. The routing table's owners are not its
    controllers (it is shared by every PoP): it is no one PoP's child to prune."""
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return [str(r["uid"]) for r in refs if r.get("uid") and r.get("controller")]


def _owner_refs(body: Mapping[str, Any]) -> list[Any]:
    return list((body.get("metadata") or {}).get("ownerReferences") or [])


def owner_of_child(child: Mapping[str, Any]) -> ParentKey | None:
    """The custom resource a child belongs to, from its labels."""
    meta = child.get("metadata", {})
    labels = meta.get("labels") or {}
    kind = labels.get(OWNER_KIND_LABEL)
    name = labels.get("app.kubernetes.io/instance")
    if not kind or not name or kind not in BY_KIND:
        return None
    return (str(kind), str(meta.get("namespace", "")), str(name))


@dataclass
class Plan:
    """What one resource should look like: its children and its status fields."""

    children: list[Manifest]
    health: Callable[[Store], Health]
    status: Callable[[Store], dict[str, Any]] = field(default=lambda _store: {})


def _deployment_health(manifest: Manifest) -> Callable[[Store], Health]:
    def health(store: Store) -> Health:
        return conditions.deployment_health(
            manifest["metadata"]["name"], store.child(key_of(manifest))
        )

    return health


def _deployments(children: Iterable[Manifest]) -> list[Manifest]:
    return [c for c in children if c["kind"] == "Deployment"]


def _replica_status(store: Store, deployment: Manifest) -> dict[str, int]:
    live = store.child(key_of(deployment)) or {}
    status = live.get("status", {})
    return {
        "replicas": int(live.get("spec", {}).get("replicas", deployment["spec"]["replicas"])),
        "readyReplicas": int(status.get("readyReplicas", 0)),
    }


class Reconciler:
    """Turns custom resources into their children and status."""

    def __init__(
        self,
        kube: Kube,
        store: Store,
        autoscaler: Autoscaler | None = None,
        clock: Callable[[], str] = conditions.now_rfc3339,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.store = store
        self.autoscaler = autoscaler or Autoscaler()
        self.clock = clock
        self.monotonic = monotonic
        self._locks: dict[ParentKey, asyncio.Lock] = {}
        #: Namespaces whose routing table may be stale.
        self.routing_dirty: set[str] = set()
        # Rendered (stamped) children per owner uid, for one (generation, variant).
        self._rendered: dict[str, tuple[tuple[Any, ...], list[Manifest]]] = {}
        # (resourceVersion, digest) of live children already found up to date.
        self._verified: dict[ChildKey, tuple[str, str]] = {}
        # resourceVersion of each object as our last write left it: its watch event (the
        # echo of that write) brings nothing the reconcile that wrote it did not see.
        self._written: dict[ChildKey | ParentKey, str] = {}

    def _remember_write(self, key: ChildKey | ParentKey, live: Mapping[str, Any]) -> None:
        rv = str(live.get("metadata", {}).get("resourceVersion", ""))
        if rv:
            self._written[key] = rv

    def is_echo(self, key: ChildKey | ParentKey, body: Mapping[str, Any]) -> bool:
        """Whether a watch event of `key` only reports the operator's own last write (the
        version its answer carried). Each write is matched once; any other version of the
        object clears it, so nothing is remembered for long."""
        rv = str(body.get("metadata", {}).get("resourceVersion", ""))
        written = self._written.pop(key, None)
        return bool(rv) and rv == written

    def forget(self, uid: str, key: ParentKey | None = None) -> None:
        """Drop what is remembered about a deleted resource."""
        self._rendered.pop(uid, None)
        if key is not None:
            self._written.pop(key, None)

    def _children(
        self, owner: Owner, variant: Any, render: Callable[[], list[Manifest]]
    ) -> list[Manifest]:
        """Rendered and stamped children, re-rendered only when the spec (generation) or
        the variant (replicas chosen by the autoscaler, KubeRay or not) changed."""
        key = (owner.generation, variant)
        hit = self._rendered.get(owner.uid)
        if hit is not None and hit[0] == key:
            return hit[1]
        children = [stamped(m) for m in render()]
        self._rendered[owner.uid] = (key, children)
        return children

    def _current(self, manifest: Manifest) -> bool:
        """Whether the stored live child already matches `manifest` (memoised per
        resourceVersion, so an unchanged child is compared once)."""
        child_key = key_of(manifest)
        live = self.store.child(child_key)
        if live is None:
            return False
        rv = str(live.get("metadata", {}).get("resourceVersion", ""))
        stamp = str(manifest["metadata"]["annotations"][DIGEST_ANNOTATION])
        if rv and self._verified.get(child_key) == (rv, stamp):
            return True
        if up_to_date(manifest, live):
            self._verified[child_key] = (rv, stamp)
            return True
        return False

    # -- plans -----------------------------------------------------------------------
    async def plan(self, body: Mapping[str, Any], owner: Owner) -> Plan:
        """Render a resource's children and say how to read its health and status."""
        spec_body = body.get("spec") or {}
        if owner.kind == TRANSCODE_POOL.kind:
            last_scale = (body.get("status") or {}).get("lastScaleTime")
            return self._plan_pool(owner, TranscodePoolSpec.model_validate(spec_body), last_scale)
        if owner.kind == FEED_SHARD.kind:
            return self._plan_feed(owner, FeedShardSpec.model_validate(spec_body))
        if owner.kind == EDGE_POP.kind:
            return self._plan_pop(owner, EdgePoPSpec.model_validate(spec_body))
        if owner.kind == RECOMMENDER.kind:
            kuberay = await self.kube.has_kuberay(owner.namespace)
            return self._plan_recommender(owner, RecommenderSpec.model_validate(spec_body), kuberay)
        raise ValueError(f"unknown kind {owner.kind}")

    def _plan_pool(
        self, owner: Owner, spec: TranscodePoolSpec, last_scale: str | None = None
    ) -> Plan:
        probe = transcode.render_workers(owner, spec, 0)
        live = self.store.child(key_of(probe))
        live_replicas = live.get("spec", {}).get("replicas") if live else None
        state = self.autoscaler.replicas_for(
            (owner.namespace, owner.name), spec, live_replicas, self.monotonic()
        )
        children = self._children(
            owner,
            state.replicas,
            lambda: transcode.render_transcode_pool(owner, spec, state.replicas),
        )
        workers = children[1]

        def health(store: Store) -> Health:
            current = conditions.deployment_health(
                workers["metadata"]["name"], store.child(key_of(workers))
            )
            if state.error and not current.degraded:
                # The workers may be fine; only Degraded tells that the size is stale.
                return replace(
                    current,
                    degraded=True,
                    degraded_reason="LagUnavailable",
                    degraded_message=state.error,
                )
            return current

        def status(store: Store) -> dict[str, Any]:
            out: dict[str, Any] = {
                "lag": state.lag,
                "partitions": state.partitions,
                "desiredReplicas": state.desired,
                **_replica_status(store, workers),
            }
            # After a restart the autoscaler's memory is empty; keep what status said.
            if state.last_scale_time or last_scale:
                out["lastScaleTime"] = state.last_scale_time or last_scale
            return out

        return Plan(children, health, status)

    def _plan_feed(self, owner: Owner, spec: FeedShardSpec) -> Plan:
        children = self._children(owner, None, lambda: feed.render_feed_shard(owner, spec))
        deployment = _deployments(children)[0]
        selector = selector_string(selector_labels(owner, feed.APP, "feed-shard"))
        return Plan(
            children,
            _deployment_health(deployment),
            lambda store: {
                **_replica_status(store, deployment),
                "selector": selector,
                "endpoint": feed.feed_endpoint(owner),
            },
        )

    def _plan_pop(self, owner: Owner, spec: EdgePoPSpec) -> Plan:
        children = self._children(owner, None, lambda: edge.render_edge_pop(owner, spec))
        deployment = _deployments(children)[0]
        selector = selector_string(selector_labels(owner, edge.APP, "edge"))
        return Plan(
            children,
            _deployment_health(deployment),
            lambda store: {
                **_replica_status(store, deployment),
                "selector": selector,
                "endpoint": edge.edge_endpoint(owner),
            },
        )

    def _plan_recommender(self, owner: Owner, spec: RecommenderSpec, kuberay: bool) -> Plan:
        children = self._children(
            owner, kuberay, lambda: recommender.render_recommender(owner, spec, kuberay)
        )
        if kuberay:
            rayservice = children[0]

            def health(store: Store) -> Health:
                return conditions.rayservice_health(
                    rayservice["metadata"]["name"], store.child(key_of(rayservice))
                )

            endpoint = recommender.rayservice_endpoint(owner)
        else:
            deployments = _deployments(children)

            def health(store: Store) -> Health:
                return conditions.combine(_deployment_health(d)(store) for d in deployments)

            endpoint = recommender.ray_head_endpoint(owner)
        mode = "RayService" if kuberay else "Deployments"
        return Plan(children, health, lambda _store: {"mode": mode, "endpoint": endpoint})

    # -- the loop body ---------------------------------------------------------------
    def _lock(self, key: ParentKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def reconcile(self, body: Mapping[str, Any]) -> int:
        """Bring one resource's children and status in line; returns the API writes made.

        Raises after writing a Degraded status when a child could not be applied
        (the caller retries with backoff).
        """
        key = parent_key(body)
        async with self._lock(key):
            return await self._reconcile(body)

    async def _reconcile(self, body: Mapping[str, Any]) -> int:
        owner = Owner.from_body(body)
        if body.get("metadata", {}).get("deletionTimestamp"):
            return 0  # garbage collection removes the children
        kind = BY_KIND[owner.kind]
        writes = 0
        failure: Exception | None = None
        try:
            plan = await self.plan(body, owner)
        except ValidationError as exc:
            # The CRD schema should have refused it; say why instead of looping.
            invalid = conditions.apply_failed(f"invalid spec: {exc}")
            plan = Plan([], lambda _s: invalid)
        wanted = {key_of(m): m for m in plan.children}
        health_override: Health | None = None
        for manifest in wanted.values():
            if self._current(manifest):
                continue
            try:
                live = await self.kube.apply(manifest)
            except Exception as exc:
                if transient(exc):
                    raise  # retried; not worth a status flip
                failure = exc
                health_override = conditions.apply_failed(
                    f"applying {manifest['kind']} {manifest['metadata']['name']}: {exc}"
                )
                break
            writes += 1
            self.store.observe_child(live)
            self._remember_write(key_of(manifest), live)
            # The API's answer to our apply is, by construction, what we applied.
            rv = str(live.get("metadata", {}).get("resourceVersion", ""))
            stamp = str(manifest["metadata"]["annotations"][DIGEST_ANNOTATION])
            self._verified[key_of(manifest)] = (rv, stamp)
        if failure is None and plan.children:
            writes += await self._prune(owner, set(wanted))
        health = health_override or plan.health(self.store)
        status = {
            **plan.status(self.store),
            "observedGeneration": owner.generation,
            "conditions": conditions.next_conditions(
                (body.get("status") or {}).get("conditions", []),
                health,
                owner.generation,
                self.clock(),
            ),
        }
        if not _same_status(kind.status, body.get("status") or {}, status):
            live_parent = await self.kube.apply_status(kind, owner.namespace, owner.name, status)
            writes += 1
            if live_parent.get("metadata", {}).get("uid") == owner.uid:
                self.store.observe_parent(live_parent)
                self._remember_write(parent_key(live_parent), live_parent)
            if owner.kind == EDGE_POP.kind:
                self.routing_dirty.add(owner.namespace)
        if failure is not None:
            raise failure
        return writes

    async def _prune(self, owner: Owner, wanted: set[tuple[str, str, str, str]]) -> int:
        """Delete children of `owner` that are no longer rendered (e.g. Recommender mode
        switch to KubeRay)."""
        writes = 0
        for child in self.store.owned_by(owner.uid):
            child_key = key_of(child)
            if child_key in wanted:
                continue
            api_version, kind, namespace, name = child_key
            await self.kube.delete(api_version, kind, namespace, name)
            self.store.forget_child(child_key)
            writes += 1
        return writes

    # -- routing table ---------------------------------------------------------------
    def routing_owners(self, namespace: str) -> list[Owner]:
        """The EdgePoPs of a namespace that are not being deleted: the table's owners."""
        return [
            Owner.from_body(body)
            for body in self.store.of_kind(EDGE_POP.kind, namespace)
            if not body.get("metadata", {}).get("deletionTimestamp")
        ]

    def routing_entries(self, namespace: str) -> list[edge.RoutingEntry]:
        """The ready PoPs of a namespace."""
        entries = []
        for body in self.store.of_kind(EDGE_POP.kind, namespace):
            status = body.get("status") or {}
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions", [])
            )
            if not ready or body.get("metadata", {}).get("deletionTimestamp"):
                continue
            try:
                spec = EdgePoPSpec.model_validate(body.get("spec") or {})
            except ValidationError:
                continue
            owner = Owner.from_body(body)
            entries.append(
                edge.RoutingEntry(
                    name=owner.name,
                    region=spec.region,
                    latitude=spec.location.latitude,
                    longitude=spec.location.longitude,
                    capacity_gbps=spec.capacity_gbps,
                    endpoint=edge.edge_endpoint(owner),
                )
            )
        return entries

    async def publish_routing(self) -> int:
        """Apply the routing table of every dirty namespace if it changed; returns writes.

        A namespace without EdgePoPs gets no table: the garbage collector removes it
        with its last owner (one left by an operator that set no owners is deleted)."""
        writes = 0
        while self.routing_dirty:
            namespace = self.routing_dirty.pop()
            owners = self.routing_owners(namespace)
            key = ("v1", "ConfigMap", namespace, edge.ROUTING_TABLE)
            live_table = self.store.child(key)
            try:
                if not owners:
                    if live_table is not None and not _owner_refs(live_table):
                        await self.kube.delete(*key)
                        self.store.forget_child(key)
                        writes += 1
                    continue
                manifest = stamped(
                    edge.render_routing_table(namespace, self.routing_entries(namespace), owners)
                )
                if up_to_date(manifest, live_table):
                    continue
                live = await self.kube.apply(manifest)
            except Exception:
                self.routing_dirty.add(namespace)
                raise
            self.store.observe_child(live)
            writes += 1
        return writes


def transient(exc: BaseException) -> bool:
    """Whether an API failure is worth only a retry (timeouts, conflicts, throttling,
    server errors), not a Degraded condition."""
    code = status_code(exc)
    return code is None or code in (409, 429) or code >= 500


def _same_status(model: type[Any], live: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether the live status already says what `wanted` says (both read through the
    status model, so API-server defaults do not count as differences)."""
    try:
        have = wire(model.model_validate(dict(live)))
    except ValidationError:
        return False
    want = wire(model.model_validate(dict(wanted)))
    return bool(have == want)
