"""What every planner returns, and the pieces the four kinds share (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from reelplane_operator import conditions
from reelplane_operator.conditions import Health
from reelplane_operator.meta import (
    ChildKey,
    Manifest,
    Owner,
    key_of,
    selector_labels,
    selector_string,
)


class LiveChildren(Protocol):
    """Where a plan reads the children's live state (the reconciler's Store)."""

    def child(self, key: ChildKey) -> dict[str, Any] | None: ...


#: Renders a resource's stamped children for a variant (what, besides the spec, the
#: rendering depends on); the reconciler's implementation remembers the last result.
Render = Callable[[Owner, Any, Callable[[], list[Manifest]]], list[Manifest]]


@dataclass
class Plan:
    """What one resource should look like: its children and its status fields."""

    children: list[Manifest]
    health: Callable[[LiveChildren], Health]
    status: Callable[[LiveChildren], dict[str, Any]] = field(default=lambda _live: {})


def deployment_health(manifest: Manifest) -> Callable[[LiveChildren], Health]:
    """Health read from the live version of a rendered Deployment."""

    def health(live: LiveChildren) -> Health:
        return conditions.deployment_health(
            manifest["metadata"]["name"], live.child(key_of(manifest))
        )

    return health


def deployments(children: Iterable[Manifest]) -> list[Manifest]:
    return [c for c in children if c["kind"] == "Deployment"]


def replica_status(live: LiveChildren, deployment: Manifest) -> dict[str, int]:
    """`replicas` (the live spec's, else the rendered) and `readyReplicas` of a Deployment."""
    obj = live.child(key_of(deployment)) or {}
    status = obj.get("status", {})
    return {
        "replicas": int(obj.get("spec", {}).get("replicas", deployment["spec"]["replicas"])),
        "readyReplicas": int(status.get("readyReplicas", 0)),
    }


def serving_plan(
    owner: Owner, children: list[Manifest], app: str, component: str, endpoint: str
) -> Plan:
    """A kind served by one Deployment behind a Service (FeedShard, EdgePoP): its health
    is the Deployment's; its status gives the replicas, the Pods' selector (the scale
    subresource's) and the Service's URL."""
    deployment = deployments(children)[0]
    selector = selector_string(selector_labels(owner, app, component))
    return Plan(
        children,
        deployment_health(deployment),
        lambda live: {
            **replica_status(live, deployment),
            "selector": selector,
            "endpoint": endpoint,
        },
    )
