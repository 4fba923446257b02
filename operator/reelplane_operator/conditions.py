"""Status conditions (Ready, Progressing, Degraded) from what the children report.

Pure: a child's live object in, a `Health` out; healths combined; conditions
computed from the previous ones so `lastTransitionTime` moves only when a
condition's status flips (Kubernetes API conventions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Health:
    """How a resource's children are doing. `reason`/`message` explain Ready and
    Progressing, and Degraded too unless `degraded_reason` gives its own."""

    ready: bool
    progressing: bool
    degraded: bool
    reason: str
    message: str
    degraded_reason: str = ""
    degraded_message: str = ""


def now_rfc3339() -> str:
    """The current time as Kubernetes writes it (seconds, UTC, `Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment_health(name: str, live: Mapping[str, Any] | None) -> Health:
    """Health of a Deployment from its live object (None: not observed yet)."""
    if live is None:
        return Health(False, True, False, "Creating", f"Deployment {name} is being created")
    meta, spec, status = live.get("metadata", {}), live.get("spec", {}), live.get("status", {})
    for cond in status.get("conditions", []):
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return Health(
                False, False, True, "ReplicaFailure", f"{name}: {cond.get('message', '')}"
            )
        if (
            cond.get("type") == "Progressing"
            and cond.get("status") == "False"
            and cond.get("reason") == "ProgressDeadlineExceeded"
        ):
            return Health(False, False, True, "ProgressDeadlineExceeded", f"{name}: rollout stuck")
    want = int(spec.get("replicas", 1))
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0)):
        return Health(False, True, False, "RollingOut", f"{name}: new generation not observed")
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    if updated < want or available < want or total > want:
        return Health(
            False, True, False, "RollingOut", f"{name}: {available}/{want} replicas available"
        )
    return Health(True, False, False, "Available", f"{name}: {available}/{want} available")


def rayservice_health(name: str, live: Mapping[str, Any] | None) -> Health:
    """Health of a KubeRay RayService (its Ready condition, or serviceStatus Running)."""
    if live is None:
        return Health(False, True, False, "Creating", f"RayService {name} is being created")
    status = live.get("status", {})
    for cond in status.get("conditions", []):
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return Health(True, False, False, "Available", f"RayService {name} is ready")
            return Health(
                False, True, False, "RollingOut", f"{name}: {cond.get('message') or 'not ready'}"
            )
    if status.get("serviceStatus") == "Running":
        return Health(True, False, False, "Available", f"RayService {name} is running")
    return Health(False, True, False, "RollingOut", f"RayService {name} is starting")


def combine(healths: Iterable[Health]) -> Health:
    """One Health for several children: degraded wins, then progressing, else ready."""
    items = list(healths)
    if not items:
        return Health(True, False, False, "Available", "no workload")
    for pick in (
        [h for h in items if h.degraded],
        [h for h in items if h.progressing or not h.ready],
    ):
        if pick:
            first = pick[0]
            message = "; ".join(h.message for h in pick)
            return Health(False, first.progressing, first.degraded, first.reason, message)
    return Health(True, False, False, "Available", "; ".join(h.message for h in items))


def apply_failed(message: str) -> Health:
    """Health when the operator could not apply the children."""
    return Health(False, False, True, "ApplyFailed", message)


def _condition(
    ctype: str, status: bool, reason: str, message: str, generation: int
) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def next_conditions(
    previous: Sequence[Mapping[str, Any]], health: Health, generation: int, now: str
) -> list[dict[str, Any]]:
    """Ready, Progressing and Degraded for `health`, keeping each one's
    lastTransitionTime unless its status changed."""
    wanted = [
        _condition("Ready", health.ready, health.reason, health.message, generation),
        _condition(
            "Progressing",
            health.progressing,
            health.reason if health.progressing else "Complete",
            health.message if health.progressing else "",
            generation,
        ),
        _condition(
            "Degraded",
            health.degraded,
            (health.degraded_reason or health.reason) if health.degraded else "AsExpected",
            (health.degraded_message or health.message) if health.degraded else "",
            generation,
        ),
    ]
    before = {str(c.get("type")): c for c in previous}
    for cond in wanted:
        old = before.get(cond["type"])
        same = old is not None and old.get("status") == cond["status"]
        cond["lastTransitionTime"] = old.get("lastTransitionTime", now) if same and old else now
    return wanted
