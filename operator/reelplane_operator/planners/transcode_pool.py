"""TranscodePool: the ladder ConfigMap and the gpu-workers Deployment, sized by the
autoscaler's decision (`scaling.PoolScale`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from reelplane_operator import conditions
from reelplane_operator.conditions import Health
from reelplane_operator.meta import ChildKey, Owner, key_of
from reelplane_operator.models import TranscodePoolSpec
from reelplane_operator.planners.plan import LiveChildren, Plan, Render, replica_status
from reelplane_operator.render import transcode
from reelplane_operator.scaling import PoolScale


def workers_key(owner: Owner) -> ChildKey:
    """The workers Deployment's key (the autoscaler starts from its live replicas)."""
    return ("apps/v1", "Deployment", owner.namespace, transcode.workers_name(owner))


def plan(
    owner: Owner,
    spec: TranscodePoolSpec,
    scale: PoolScale,
    last_scale_time: str | None,
    render: Render,
) -> Plan:
    """`scale`: the autoscaler's state of the pool; `last_scale_time`: what the status
    said (after a restart the autoscaler's memory is empty, and this is kept)."""
    children = render(
        owner,
        scale.replicas,
        lambda: transcode.render_transcode_pool(owner, spec, scale.replicas),
    )
    workers = next(c for c in children if key_of(c) == workers_key(owner))

    def health(live: LiveChildren) -> Health:
        current = conditions.deployment_health(
            workers["metadata"]["name"], live.child(key_of(workers))
        )
        if scale.error and not current.degraded:
            # The workers may be fine; only Degraded tells that the size is stale.
            return replace(
                current,
                degraded=True,
                degraded_reason="LagUnavailable",
                degraded_message=scale.error,
            )
        return current

    def status(live: LiveChildren) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lag": scale.lag,
            "partitions": scale.partitions,
            "desiredReplicas": scale.desired,
            **replica_status(live, workers),
        }
        if scale.last_scale_time or last_scale_time:
            out["lastScaleTime"] = scale.last_scale_time or last_scale_time
        return out

    return Plan(children, health, status)
