"""Pod-template pieces shared by the renderers."""

from __future__ import annotations

from typing import Any

from reelplane_operator.models import Resources, Settings, Toleration, wire


def env(values: dict[str, str]) -> list[dict[str, str]]:
    """Explicit env vars, in a stable order."""
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


def env_from(settings: Settings) -> list[dict[str, Any]]:
    """The platform's REELPLANE_* settings: the chart's ConfigMap and, if named, the Secret.

    Both are optional so a Pod still starts (with its explicit env) before the
    reelplane chart is installed.
    """
    sources: list[dict[str, Any]] = [
        {"configMapRef": {"name": settings.config_map, "optional": True}}
    ]
    if settings.secret:
        sources.append({"secretRef": {"name": settings.secret, "optional": True}})
    return sources


def resources(res: Resources, extra_limits: dict[str, str] | None = None) -> dict[str, Any]:
    """Requests for CPU and memory; memory is also the limit (no overcommit of memory)."""
    return {
        "requests": {"cpu": res.cpu, "memory": res.memory},
        "limits": {"memory": res.memory, **(extra_limits or {})},
    }


def tolerations(items: list[Toleration]) -> list[dict[str, Any]]:
    """core/v1 tolerations from the spec's."""
    return [wire(t) for t in items]


def restricted_security() -> dict[str, Any]:
    """Container securityContext meeting the `restricted` Pod Security Standard."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def http_probe(
    path: str = "/healthz", port: str = "http", period_s: int = 10, failures: int = 3
) -> dict[str, Any]:
    """A probe on an HTTP path: every `period_s` seconds, failed after `failures` misses."""
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def service_probes() -> dict[str, Any]:
    """A Reelplane service's probes. Liveness asks `/healthz` (the process answers: it
    never fails because a backend is down, so an outage of Redis or Kafka restarts
    nothing); readiness asks `/readyz` (backends reachable and background tasks running),
    so a Pod that cannot serve is taken out of its Service until it can."""
    return {
        "readinessProbe": http_probe("/readyz", period_s=5),
        "livenessProbe": http_probe("/healthz", failures=6),
    }


def deployment(
    metadata: dict[str, Any],
    selector: dict[str, str],
    replicas: int,
    pod_spec: dict[str, Any],
    pod_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An apps/v1 Deployment around a Pod spec (Pods carry the child's labels)."""
    template_meta: dict[str, Any] = {"labels": dict(metadata["labels"])}
    if pod_annotations:
        template_meta["annotations"] = dict(pod_annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(selector)},
            "template": {"metadata": template_meta, "spec": pod_spec},
        },
    }


def service(
    metadata: dict[str, Any], selector: dict[str, str], ports: list[dict[str, Any]]
) -> dict[str, Any]:
    """A ClusterIP Service."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"type": "ClusterIP", "selector": dict(selector), "ports": ports},
    }


def config_map(metadata: dict[str, Any], data: dict[str, str]) -> dict[str, Any]:
    """A ConfigMap."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
