"""The wiring check (e2e/wiring.py) on small hand-made manifests: it finds each kind of
dangling reference, and says nothing when all is wired."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from e2e.wiring import dangling_references, in_cluster_service

pytestmark = pytest.mark.unit


def _wired() -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "upload"}
    pod_spec = {
        "serviceAccountName": "rp",
        "containers": [
            {
                "name": "upload",
                "envFrom": [
                    {"configMapRef": {"name": "settings"}},
                    {"secretRef": {"name": "secrets", "optional": False}},
                ],
                "env": [
                    {
                        "name": "REELPLANE_DATABASE_URL",
                        "valueFrom": {"secretKeyRef": {"name": "secrets", "key": "DB"}},
                    },
                    {"name": "URLS", "value": json.dumps({"upload": "http://upload"})},
                    {"name": "OUTSIDE", "value": "https://cdn.example.com/x"},
                    {"name": "BUS", "value": "kafka://kafka:9092"},
                ],
                "ports": [{"name": "http", "containerPort": 8080}],
            }
        ],
        "volumes": [
            {"name": "vcl", "configMap": {"name": "vcl", "items": [{"key": "default.vcl"}]}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    vcl = 'vcl 4.1;\nbackend origin {\n    .host = "upload";\n    .port = "80";\n}\n'
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "rp"}},
        {
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"REELPLANE_PLAYBACK_ORIGIN_BASE": "http://upload.media.svc:80"},
        },
        {"kind": "Secret", "metadata": {"name": "secrets"}, "stringData": {"DB": "x"}},
        {"kind": "ConfigMap", "metadata": {"name": "vcl"}, "data": {"default.vcl": vcl}},
        {
            "kind": "Deployment",
            "metadata": {"name": "upload"},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": pod_spec}},
        },
        {
            "kind": "Service",
            "metadata": {"name": "upload"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
        },
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "upload"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "upload"}},
        },
    ]


def _without(kind: str, name: str) -> list[dict[str, Any]]:
    return [m for m in _wired() if (m["kind"], m["metadata"]["name"]) != (kind, name)]


def _named(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(m for m in manifests if (m["kind"], m["metadata"]["name"]) == (kind, name))


def test_a_fully_wired_set_has_no_dangling_references() -> None:
    assert dangling_references(_wired(), "media") == []


def test_a_missing_secret_is_named_once_per_reference() -> None:
    problems = dangling_references(_without("Secret", "secrets"), "media")
    assert problems == [
        "Deployment media/upload container upload: envFrom -> Secret media/secrets is not rendered",
        "Deployment media/upload container upload: env REELPLANE_DATABASE_URL -> "
        "Secret media/secrets is not rendered",
    ]


def test_a_missing_key_configmap_or_service_account_is_found() -> None:
    manifests = _wired()
    _named(manifests, "Secret", "secrets")["stringData"] = {"OTHER": "x"}
    _named(manifests, "ConfigMap", "vcl")["data"] = {"other.vcl": ""}
    problems = dangling_references(manifests, "media")
    assert any("has no key 'DB'" in p for p in problems)
    assert any("volume vcl: volume item -> ConfigMap media/vcl has no key" in p for p in problems)
    assert any(
        "ServiceAccount media/rp" in p
        for p in dangling_references(_without("ServiceAccount", "rp"), "media")
    )


def test_a_vcl_backend_on_a_port_the_service_lacks_is_found() -> None:
    manifests = _wired()
    vcl = _named(manifests, "ConfigMap", "vcl")
    vcl["data"]["default.vcl"] = vcl["data"]["default.vcl"].replace('"80"', '"8080"')
    assert dangling_references(manifests, "media") == [
        "ConfigMap media/vcl default.vcl: VCL backend origin (upload:8080) -> "
        "Service media/upload has no port 8080 (it has [80])"
    ]


def test_urls_in_env_and_envfrom_settings_must_reach_a_service() -> None:
    manifests = _wired()
    service = _named(manifests, "Service", "upload")
    service["metadata"]["name"] = "reelplane-upload"
    problems = dangling_references(manifests, "media")
    assert any("env URLS URL -> Service media/upload is not rendered" in p for p in problems)
    assert any("envFrom settings REELPLANE_PLAYBACK_ORIGIN_BASE URL" in p for p in problems)
    assert any("VCL backend origin (upload:80)" in p for p in problems)
    # Outside names and the data servers' schemes are not the charts' business.
    assert not any("cdn.example.com" in p or "kafka" in p for p in problems)


def test_a_service_must_select_pods_that_have_its_target_port() -> None:
    manifests = _wired()
    service = copy.deepcopy(_named(manifests, "Service", "upload"))
    service["metadata"]["name"] = "other"
    service["spec"]["ports"] = [{"port": 80, "targetPort": "metrics"}]
    lonely = copy.deepcopy(service)
    lonely["metadata"]["name"] = "lonely"
    lonely["spec"]["selector"] = {"app.kubernetes.io/name": "nobody"}
    problems = dangling_references([*manifests, service, lonely], "media")
    assert any("Service media/other: targetPort metrics" in p for p in problems)
    assert any("Service media/lonely: selector" in p for p in problems)


def test_in_cluster_host_names_resolve_to_a_service() -> None:
    assert in_cluster_service("upload", "demo") == ("demo", "upload")
    assert in_cluster_service("upload.media.svc", "demo") == ("media", "upload")
    assert in_cluster_service("upload.media.svc.cluster.local", "demo") == ("media", "upload")
    assert in_cluster_service("cdn.example.com", "demo") is None
    assert in_cluster_service("10.0.0.1", "demo") is None
