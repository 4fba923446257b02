"""EdgePoP: a Varnish Deployment, its config and Service; and, for a namespace, the
routing table of its ready PoPs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from reelplane_operator.meta import Owner
from reelplane_operator.models import EdgePoPSpec
from reelplane_operator.planners.plan import Plan, Render, serving_plan
from reelplane_operator.render import edge


def plan(owner: Owner, spec: EdgePoPSpec, render: Render) -> Plan:
    children = render(owner, None, lambda: edge.render_edge_pop(owner, spec))
    return serving_plan(owner, children, edge.APP, "edge", edge.edge_endpoint(owner))


def _deleting(body: Mapping[str, Any]) -> bool:
    return bool(body.get("metadata", {}).get("deletionTimestamp"))


def routing_owners(pops: Iterable[Mapping[str, Any]]) -> list[Owner]:
    """The EdgePoPs of a namespace that are not being deleted: the table's owners."""
    return [Owner.from_body(body) for body in pops if not _deleting(body)]


def routing_entries(pops: Iterable[Mapping[str, Any]]) -> list[edge.RoutingEntry]:
    """The ready PoPs of a namespace, as the gateway's geo-routing lists them."""
    entries = []
    for body in pops:
        status = body.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions", [])
        )
        if not ready or _deleting(body):
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
