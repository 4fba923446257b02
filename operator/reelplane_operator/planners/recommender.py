"""Recommender: a KubeRay RayService when the RayService API is served, else Ray head
and worker Deployments with the Serve config."""

from __future__ import annotations

from reelplane_operator import conditions
from reelplane_operator.conditions import Health
from reelplane_operator.meta import Owner, key_of
from reelplane_operator.models import RecommenderSpec
from reelplane_operator.planners.plan import (
    LiveChildren,
    Plan,
    Render,
    deployment_health,
    deployments,
)
from reelplane_operator.render import recommender


def plan(owner: Owner, spec: RecommenderSpec, kuberay: bool, render: Render) -> Plan:
    """`kuberay`: whether the RayService API is served (the mode is chosen per pass, so
    installing KubeRay later switches the resource over and prunes the Deployments)."""
    children = render(owner, kuberay, lambda: recommender.render_recommender(owner, spec, kuberay))
    if kuberay:
        rayservice = children[0]

        def health(live: LiveChildren) -> Health:
            return conditions.rayservice_health(
                rayservice["metadata"]["name"], live.child(key_of(rayservice))
            )

        endpoint = recommender.rayservice_endpoint(owner)
    else:
        ray_deployments = deployments(children)

        def health(live: LiveChildren) -> Health:
            return conditions.combine(deployment_health(d)(live) for d in ray_deployments)

        endpoint = recommender.ray_head_endpoint(owner)
    mode = "RayService" if kuberay else "Deployments"
    return Plan(children, health, lambda _live: {"mode": mode, "endpoint": endpoint})
