"""Kopf handlers: thin glue from watch events to the reconciler.

* Index handlers for the four kinds and their children feed `Store`. Kopf runs
  no handler before every index has seen its initial listing, so the first
  reconcile already knows all live children and writes nothing that is current.
* Event handlers reconcile a resource on any event of it or of its children
  (a deleted or edited child is restored). No Kopf state is stored on the
  resources (no progress annotations, no finalizers: children go with their
  owner through garbage collection).
* A Kopf timer per TranscodePool reads its consumer lag; Kopf stops timers while
  peering pauses this replica, as it does the watches.
* The shared state (`runtime.Runtime`) lives in Kopf's memo: the startup handler
  builds it, every handler reaches it through its `memo` kwarg.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, cast

import kopf

from reelplane_operator.kinds import KINDS, TRANSCODE_POOL
from reelplane_operator.kube import AioKube
from reelplane_operator.meta import MANAGED_BY, key_of, parent_key
from reelplane_operator.models import GROUP, VERSION
from reelplane_operator.render.edge import ROUTING_TABLE
from reelplane_operator.runtime import RUNTIME_KEY, Runtime, config_of, runtime_of
from reelplane_operator.store import owner_of_child

log = logging.getLogger("reelplane_operator")

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
#: (group, version, plural) of every kind of child.
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("ray.io", "v1", "rayservices"),
)
#: How often each TranscodePool's timer runs; its spec's pollIntervalSeconds decides
#: whether a tick reads Kafka.
LAG_TICK_S = 1.0
LAG_TIMER_ID = f"{TRANSCODE_POOL.plural}-lag"


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
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure Kopf and put the shared runtime in the operator memo (before any
    resource handler runs, so every resource's memo copy holds it)."""
    config = config_of(memo)
    # Only warnings become Kubernetes Events: a healthy resource costs no writes.
    settings.posting.level = logging.WARNING
    settings.peering.priority = config.priority
    settings.peering.lifetime = config.peering_lifetime_s
    settings.peering.clusterwide = config.namespace is None
    if config.peering:
        settings.peering.name = config.peering
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    runtime = Runtime(config, AioKube(lambda: credentials(settings)))
    memo[RUNTIME_KEY] = runtime
    runtime.start()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the routing publisher and the retries, close the clients."""
    runtime = memo.pop(RUNTIME_KEY, None)
    if isinstance(runtime, Runtime):
        await runtime.stop()


# -- the four kinds ----------------------------------------------------------------------
def _plain(body: kopf.Body) -> dict[str, Any]:
    return {k: v for k, v in body.items()}


async def index_parent(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keep the Store's copy of a custom resource current (indexes run first)."""
    runtime_of(memo).store.observe_parent(_plain(body))


async def on_parent_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Reconcile a custom resource on any of its events; forget it when deleted."""
    rt = runtime_of(memo)
    key = parent_key(body)
    if type == "DELETED":
        rt.forget(key, str(body.get("metadata", {}).get("uid", "")))
        rt.reconciler.routing_dirty.add(key[1])
        return
    plain = _plain(body)
    if rt.expectations.is_echo(key, plain):
        return  # our own status write coming back: already reconciled with it
    rt.store.observe_parent(plain)
    if key[0] == "EdgePoP":
        rt.reconciler.routing_dirty.add(key[1])
    await rt.reconcile(key)


# -- consumer lag --------------------------------------------------------------------------
async def poll_lag(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Read a TranscodePool's consumer lag when due; rescale it if the reading says so."""
    rt = runtime_of(memo)
    stored = rt.store.parents.get(parent_key(body))
    if stored is None:
        return
    try:
        await rt.poll_pool(stored)
    except Exception:
        # Kopf would retry after its backoff and post an Event; the next tick is sooner.
        log.exception("lag poll of %s failed", "/".join(parent_key(body)))


def _stored(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    """The timer's filter: the pool is still in the Store. The DELETED event's handler
    removes it before Kopf re-matches the timers, so Kopf stops the timer then."""
    return parent_key(body) in runtime_of(memo).store.parents


def timer_without_finalizer(
    registry: kopf.OperatorRegistry, fn: Callable[..., Any], *resource: str, **options: Any
) -> None:
    """Register `fn` as `@kopf.timer(*resource, **options)`, less the finalizer Kopf puts
    on every resource with a timer.

    Kopf's finalizer lets it stop a timer before its resource goes; here the `when`
    filter stops it on the deletion event instead. So the operator writes nothing but
    status to its resources (the chart's RBAC allows no more), and a pool deleted while
    no operator runs is not left Terminating. Kopf has no public switch for this: the
    timer is built by `kopf.timer` in a scratch registry and moved over without it.
    """
    scratch = kopf.OperatorRegistry()
    kopf.timer(*resource, registry=scratch, **options)(fn)
    (handler,) = scratch._spawning.get_all_handlers()
    registry._spawning.append(dataclasses.replace(handler, requires_finalizer=False))


# -- children ----------------------------------------------------------------------------
async def index_child(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keep the Store's copy of a child current."""
    runtime_of(memo).store.observe_child(_plain(body))


async def on_child_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A child changed or went away: reconcile its owner (drift correction, status)."""
    rt = runtime_of(memo)
    child = _plain(body)
    key = key_of(child)
    if type == "DELETED":
        rt.expectations.forget(key)
        rt.store.forget_child(key)
    elif rt.expectations.is_echo(key, child):
        return  # our own apply coming back: the reconcile that made it saw this version
    else:
        rt.store.observe_child(child)
    if child.get("metadata", {}).get("name") == ROUTING_TABLE and child.get("kind") == "ConfigMap":
        rt.reconciler.routing_dirty.add(str(child["metadata"].get("namespace", "")))
        return
    owner = owner_of_child(child)
    if owner is not None and owner in rt.store.parents:
        await rt.reconcile(owner)


def register(registry: kopf.OperatorRegistry | None = None) -> None:
    """Register the per-resource handlers (in Kopf's default registry unless given)."""
    registry = registry or kopf.get_default_registry()
    for kind in KINDS:
        plural = kind.plural
        kopf.index(GROUP, VERSION, plural, id=f"{plural}-store", registry=registry)(index_parent)
        kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-reconcile", registry=registry)(
            on_parent_event
        )
    timer_without_finalizer(
        registry,
        poll_lag,
        GROUP,
        VERSION,
        TRANSCODE_POOL.plural,
        id=LAG_TIMER_ID,
        interval=LAG_TICK_S,
        when=_stored,
    )
    for group, version, plural in CHILD_RESOURCES:
        api = f"{group}/{version}" if group else version
        kopf.index(api, plural, labels=MANAGED, id=f"{plural}-store", registry=registry)(
            index_child
        )
        kopf.on.event(api, plural, labels=MANAGED, id=f"{plural}-drift", registry=registry)(
            on_child_event
        )


register()
