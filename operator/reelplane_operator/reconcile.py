"""Reconcile one custom resource: plan, compare with the live children, apply
what differs, prune what is no longer planned, write status if it changed.

Level-based (like controller-runtime): it runs on any event of the resource or
of one of its children, and at start-up for every resource, and does nothing
(no API write) when the children and status already match. What to apply comes
from `planners` (one per kind); the live state it compares with comes from
`Store`, which Kopf's watches keep current; `Expectations` remembers its own
writes; the only I/O is through `Kube`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from reelplane_operator import conditions
from reelplane_operator.conditions import Health
from reelplane_operator.drift import up_to_date
from reelplane_operator.expectations import Expectations
from reelplane_operator.kinds import BY_KIND, EDGE_POP, FEED_SHARD, RECOMMENDER, TRANSCODE_POOL
from reelplane_operator.kube import Kube, status_code
from reelplane_operator.meta import (
    DIGEST_ANNOTATION,
    ChildKey,
    Manifest,
    Owner,
    ParentKey,
    key_of,
    parent_key,
    stamped,
)
from reelplane_operator.models import (
    EdgePoPSpec,
    FeedShardSpec,
    RecommenderSpec,
    TranscodePoolSpec,
    wire,
)
from reelplane_operator.planners import edge_pop, feed_shard, recommender, transcode_pool
from reelplane_operator.planners.plan import Plan
from reelplane_operator.render import edge
from reelplane_operator.scaling import Autoscaler
from reelplane_operator.store import Store

log = logging.getLogger(__name__)


def _owner_refs(body: Mapping[str, Any]) -> list[Any]:
    return list((body.get("metadata") or {}).get("ownerReferences") or [])


class Reconciler:
    """Turns custom resources into their children and status."""

    def __init__(
        self,
        kube: Kube,
        store: Store,
        autoscaler: Autoscaler | None = None,
        clock: Callable[[], str] = conditions.now_rfc3339,
        monotonic: Callable[[], float] = time.monotonic,
        expectations: Expectations | None = None,
    ) -> None:
        self.kube = kube
        self.store = store
        self.autoscaler = autoscaler or Autoscaler()
        self.expectations = expectations or Expectations()
        self.clock = clock
        self.monotonic = monotonic
        self._locks: dict[ParentKey, asyncio.Lock] = {}
        #: Namespaces whose routing table may be stale.
        self.routing_dirty: set[str] = set()
        # Rendered (stamped) children per owner uid, for one (generation, variant).
        self._rendered: dict[str, tuple[tuple[Any, ...], list[Manifest]]] = {}

    def forget(self, uid: str, key: ParentKey | None = None) -> None:
        """Drop what is remembered about a deleted resource."""
        self._rendered.pop(uid, None)
        if key is not None:
            self.expectations.forget(key)

    def _render(
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
        """Whether the stored live child already matches `manifest` (compared once per
        resourceVersion)."""
        child_key = key_of(manifest)
        live = self.store.child(child_key)
        if live is None:
            return False
        stamp = str(manifest["metadata"]["annotations"][DIGEST_ANNOTATION])
        if self.expectations.known_current(child_key, live, stamp):
            return True
        if up_to_date(manifest, live):
            self.expectations.expect_current(child_key, live, stamp)
            return True
        return False

    async def plan(self, body: Mapping[str, Any], owner: Owner) -> Plan:
        """The resource's plan from its kind's planner, with what the planner needs to
        know besides the spec (the autoscaler's decision, whether KubeRay is served)."""
        spec_body = body.get("spec") or {}
        if owner.kind == TRANSCODE_POOL.kind:
            pool_spec = TranscodePoolSpec.model_validate(spec_body)
            live = self.store.child(transcode_pool.workers_key(owner))
            scale = self.autoscaler.replicas_for(
                (owner.namespace, owner.name),
                pool_spec,
                live.get("spec", {}).get("replicas") if live else None,
                self.monotonic(),
            )
            last_scale = (body.get("status") or {}).get("lastScaleTime")
            return transcode_pool.plan(owner, pool_spec, scale, last_scale, self._render)
        if owner.kind == FEED_SHARD.kind:
            return feed_shard.plan(owner, FeedShardSpec.model_validate(spec_body), self._render)
        if owner.kind == EDGE_POP.kind:
            return edge_pop.plan(owner, EdgePoPSpec.model_validate(spec_body), self._render)
        if owner.kind == RECOMMENDER.kind:
            kuberay = await self.kube.has_kuberay(owner.namespace)
            rec_spec = RecommenderSpec.model_validate(spec_body)
            return recommender.plan(owner, rec_spec, kuberay, self._render)
        raise ValueError(f"unknown kind {owner.kind}")

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
            self.expectations.expect_echo(key_of(manifest), live)
            # The API's answer to our apply is, by construction, what we applied.
            stamp = str(manifest["metadata"]["annotations"][DIGEST_ANNOTATION])
            self.expectations.expect_current(key_of(manifest), live, stamp)
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
                self.expectations.expect_echo(parent_key(live_parent), live_parent)
            if owner.kind == EDGE_POP.kind:
                self.routing_dirty.add(owner.namespace)
        if failure is not None:
            raise failure
        return writes

    async def _prune(self, owner: Owner, wanted: set[ChildKey]) -> int:
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
    async def publish_routing(self) -> int:
        """Apply the routing table of every dirty namespace if it changed; returns writes.

        A namespace without EdgePoPs gets no table: the garbage collector removes it
        with its last owner (one left by an operator that set no owners is deleted)."""
        writes = 0
        while self.routing_dirty:
            namespace = self.routing_dirty.pop()
            pops = self.store.of_kind(EDGE_POP.kind, namespace)
            owners = edge_pop.routing_owners(pops)
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
                    edge.render_routing_table(namespace, edge_pop.routing_entries(pops), owners)
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
