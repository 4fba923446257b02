"""Kopf handlers: thin glue from watch events to the reconciler.

* Index handlers for the four kinds and their children feed `Store`. Kopf runs
  no handler before every index has seen its initial listing, so the first
  reconcile already knows all live children and writes nothing that is current.
* Event handlers reconcile a resource on any event of it or of its children
  (a deleted or edited child is restored). No Kopf state is stored on the
  resources (no progress annotations, no finalizers: children go with their
  owner through garbage collection).
* Three background loops: the lag poller (paused with Kopf's peering), the
  routing-table publisher, and retries with backoff for failed reconciles.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from reelplane_operator import conditions
from reelplane_operator.kinds import KINDS, TRANSCODE_POOL
from reelplane_operator.kube import AioKube, Kube
from reelplane_operator.lag import KafkaLagReader
from reelplane_operator.meta import MANAGED_BY, key_of
from reelplane_operator.models import GROUP, VERSION, TranscodePoolSpec
from reelplane_operator.peering import is_active
from reelplane_operator.reconcile import (
    ParentKey,
    Reconciler,
    Store,
    owner_of_child,
    parent_key,
)
from reelplane_operator.render.edge import ROUTING_TABLE
from reelplane_operator.scaling import Autoscaler

log = logging.getLogger("reelplane_operator")

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
#: (group, version, plural) of every kind of child.
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("ray.io", "v1", "rayservices"),
)
RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def default_identity() -> str:
    """This process's peering identity (as Kopf's: user@host/pid)."""
    return f"reelplane-operator@{socket.gethostname()}/{os.getpid()}"


@dataclass
class OperatorConfig:
    """How `reelplane operator run` configured this process."""

    namespace: str | None = None
    peering: str | None = None
    priority: int = field(default_factory=lambda: random.randint(1, 1_000_000))
    peering_lifetime_s: int = 60  # Kopf's default
    identity: str = field(default_factory=default_identity)
    tick_s: float = 1.0
    routing_period_s: float = 2.0
    kafka_timeout_s: float = 10.0


CONFIG = OperatorConfig()


class Runtime:
    """Everything the handlers share during one run of the operator."""

    def __init__(self, config: OperatorConfig, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self.store = Store()
        self.autoscaler = Autoscaler()
        self.reconciler = Reconciler(kube, self.store, self.autoscaler)
        self.lag_readers: dict[str, KafkaLagReader] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.retries: set[asyncio.Task[None]] = set()
        self.failures: dict[ParentKey, int] = {}
        self.pending_retry: set[ParentKey] = set()
        self.running: set[ParentKey] = set()
        self.rerun: set[ParentKey] = set()

    # -- reconcile with retries ------------------------------------------------------
    async def reconcile(self, key: ParentKey) -> None:
        """Reconcile the stored resource `key`; on failure schedule a retry.

        Requests for a key that is being reconciled are coalesced into one more run
        after the current one (a burst of child events costs two passes, not N), and
        each pass reads the newest stored version of the resource.
        """
        if key in self.running:
            self.rerun.add(key)
            return
        self.running.add(key)
        try:
            while True:
                self.rerun.discard(key)
                await self._reconcile_once(key)
                if key not in self.rerun:
                    break
        finally:
            self.running.discard(key)

    async def _reconcile_once(self, key: ParentKey) -> None:
        body = self.store.parents.get(key)
        if body is None:
            return
        try:
            await self.reconciler.reconcile(body)
        except Exception as exc:
            attempt = self.failures.get(key, 0)
            self.failures[key] = attempt + 1
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
            log.warning("reconcile %s failed (%r); retry in %.0fs", "/".join(key), exc, delay)
            self._retry_later(key, delay)
        else:
            self.failures.pop(key, None)

    def _retry_later(self, key: ParentKey, delay_s: float) -> None:
        if key in self.pending_retry:
            return
        self.pending_retry.add(key)

        async def later() -> None:
            await asyncio.sleep(delay_s)
            self.pending_retry.discard(key)
            await self.reconcile(key)

        task = asyncio.create_task(later())
        self.retries.add(task)
        task.add_done_callback(self.retries.discard)

    # -- peering ---------------------------------------------------------------------
    async def active(self) -> bool:
        """Whether this replica is the active one (always, without peering)."""
        if not self.config.peering:
            return True
        peers = await self.kube.peering_status(self.config.namespace, self.config.peering)
        return is_active(peers, self.config.identity, self.config.priority, datetime.now(UTC))

    # -- lag poller ------------------------------------------------------------------
    def lag_reader(self, bootstrap: str) -> KafkaLagReader:
        reader = self.lag_readers.get(bootstrap)
        if reader is None:
            reader = self.lag_readers[bootstrap] = KafkaLagReader(
                bootstrap, self.config.kafka_timeout_s
            )
        return reader

    async def poll_pool(self, body: Mapping[str, Any]) -> None:
        """Read one pool's lag and reconcile it if the reading changed anything."""
        key = parent_key(body)
        spec = TranscodePoolSpec.model_validate(body.get("spec") or {})
        pool = (key[1], key[2])
        now_s = time.monotonic()
        if not self.autoscaler.due(pool, spec, now_s):
            return
        reading, error = None, None
        try:
            reading = await self.lag_reader(spec.kafka.bootstrap_servers).read(
                spec.kafka.topic, spec.kafka.consumer_group, spec.kafka.offset_reset_policy
            )
        except Exception as exc:
            error = (
                f"cannot read lag from {spec.kafka.bootstrap_servers}: {exc or type(exc).__name__}"
            )
        changed = self.autoscaler.observe(
            pool, spec, reading, error, now_s, conditions.now_rfc3339()
        )
        if changed:
            await self.reconcile(key)

    async def lag_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            try:
                if not await self.active():
                    continue
                pools = self.store.of_kind(TRANSCODE_POOL.kind)
                await asyncio.gather(*(self.poll_pool(b) for b in pools))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lag poll failed")

    async def routing_loop(self) -> None:
        while True:
            # Coalesces a burst of PoPs turning Ready into one write per period.
            await asyncio.sleep(self.config.routing_period_s)
            try:
                await self.reconciler.publish_routing()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("routing table publish failed; will retry")

    def start(self) -> None:
        self.tasks += [
            asyncio.create_task(self.lag_loop()),
            asyncio.create_task(self.routing_loop()),
        ]

    async def stop(self) -> None:
        tasks = [*self.tasks, *self.retries]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for reader in self.lag_readers.values():
            await reader.close()
        await self.kube.close()


_RUNTIME: Runtime | None = None


def runtime() -> Runtime:
    """The current run's Runtime (created at start-up)."""
    if _RUNTIME is None:
        raise RuntimeError("the operator has not started")
    return _RUNTIME


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: the operator has no change-detecting handlers (only event and index
    handlers, level-based), so the per-event deep copy Kopf makes to compute a diff, a
    large share of its CPU at scale, is skipped, and nothing is ever stored."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


# -- start and stop ----------------------------------------------------------------------
@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Credentials: the Pod's ServiceAccount, else $KUBECONFIG (explicit, so Kopf does not
    depend on $KUBECONFIG being set when it was imported)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def credentials(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """The same credentials for the operator's own writes (read again at each call, so a
    renewed token is picked up)."""
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.LoginError("no service account and no kubeconfig to log in with")
    return info


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Configure Kopf and start the shared runtime."""
    global _RUNTIME
    # Only warnings become Kubernetes Events: a healthy resource costs no writes.
    settings.posting.level = logging.WARNING
    settings.peering.priority = CONFIG.priority
    settings.peering.lifetime = CONFIG.peering_lifetime_s
    settings.peering.clusterwide = CONFIG.namespace is None
    if CONFIG.peering:
        settings.peering.name = CONFIG.peering
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    _RUNTIME = Runtime(CONFIG, AioKube(lambda: credentials(settings)))
    _RUNTIME.start()


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    """Stop the loops and close the clients."""
    global _RUNTIME
    if _RUNTIME is not None:
        await _RUNTIME.stop()
        _RUNTIME = None


# -- the four kinds ----------------------------------------------------------------------
def _plain(body: kopf.Body) -> dict[str, Any]:
    return {k: v for k, v in body.items()}


async def index_parent(body: kopf.Body, **_: Any) -> None:
    """Keep the Store's copy of a custom resource current (indexes run first)."""
    runtime().store.observe_parent(_plain(body))


async def on_parent_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    """Reconcile a custom resource on any of its events; forget it when deleted."""
    rt = runtime()
    key = parent_key(body)
    if type == "DELETED":
        rt.reconciler.forget(str(body.get("metadata", {}).get("uid", "")), key)
        rt.store.forget_parent(key)
        rt.autoscaler.forget((key[1], key[2]))
        rt.failures.pop(key, None)
        rt.reconciler.routing_dirty.add(key[1])
        return
    plain = _plain(body)
    if rt.reconciler.is_echo(key, plain):
        return  # our own status write coming back: already reconciled with it
    rt.store.observe_parent(plain)
    if key[0] == "EdgePoP":
        rt.reconciler.routing_dirty.add(key[1])
    await rt.reconcile(key)


# -- children ----------------------------------------------------------------------------
async def index_child(body: kopf.Body, **_: Any) -> None:
    """Keep the Store's copy of a child current."""
    runtime().store.observe_child(_plain(body))


async def on_child_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    """A child changed or went away: reconcile its owner (drift correction, status)."""
    rt = runtime()
    child = _plain(body)
    key = key_of(child)
    if type == "DELETED":
        rt.reconciler.is_echo(key, {})  # forget any write of it
        rt.store.forget_child(key)
    elif rt.reconciler.is_echo(key, child):
        return  # our own apply coming back: the reconcile that made it saw this version
    else:
        rt.store.observe_child(child)
    if child.get("metadata", {}).get("name") == ROUTING_TABLE and child.get("kind") == "ConfigMap":
        rt.reconciler.routing_dirty.add(str(child["metadata"].get("namespace", "")))
        return
    owner = owner_of_child(child)
    if owner is not None and owner in rt.store.parents:
        await rt.reconcile(owner)


def register() -> None:
    """Register the per-resource handlers (idempotent per registry)."""
    for kind in KINDS:
        kopf.index(GROUP, VERSION, kind.plural, id=f"{kind.plural}-store")(index_parent)
        kopf.on.event(GROUP, VERSION, kind.plural, id=f"{kind.plural}-reconcile")(on_parent_event)
    for group, version, plural in CHILD_RESOURCES:
        api = f"{group}/{version}" if group else version
        kopf.index(api, plural, labels=MANAGED, id=f"{plural}-store")(index_child)
        kopf.on.event(api, plural, labels=MANAGED, id=f"{plural}-drift")(on_child_event)


register()
