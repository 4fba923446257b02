"""The local Kubernetes control plane, used as a person would: kubectl and helm
against the admin kubeconfig that `reelplane cluster up` prints."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reelplane.infra.cluster import DEFAULT_NODES, SERVICE_ACCOUNT_ISSUER, LocalCluster
from reelplane.infra.k8s_build import HELM_VERSION, KUBERNETES_VERSION

pytestmark = pytest.mark.integration


def kubectl(
    cluster: LocalCluster, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    result = subprocess.run(
        [str(cluster.kubectl), *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result


def kubectl_json(cluster: LocalCluster, *args: str) -> Any:
    return json.loads(kubectl(cluster, *args, "-o", "json").stdout)


def wait_for(what: str, check: Any, timeout_s: float = 60.0) -> Any:
    """Poll `check()` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl(cluster, "create", "namespace", name)
    yield name
    kubectl(cluster, "delete", "namespace", name, "--wait=false", check=False)


def deployment(name: str, replicas: int, gpus: int = 0) -> str:
    container: dict[str, Any] = {"name": "app", "image": "registry.invalid/reelplane/app:1"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [container]},
                },
            },
        }
    )


def running_pods(cluster: LocalCluster, namespace: str, app: str, want: int) -> list[Any]:
    pods = kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    return running if len(running) == want else []


def test_kwok_nodes_are_registered_and_ready(cluster: LocalCluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in kubectl_json(cluster, "get", "nodes")["items"]}
    for fake in DEFAULT_NODES:
        node = nodes[fake.name]
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True", node["status"]["conditions"]
    assert nodes["kwok-node-1"]["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    table = kubectl(cluster, "get", "nodes").stdout
    assert "kwok-node-0" in table
    assert " Ready " in table


def test_binaries_report_their_pinned_versions(cluster: LocalCluster) -> None:
    version = kubectl_json(cluster, "version")
    assert version["serverVersion"]["gitVersion"] == KUBERNETES_VERSION
    assert version["clientVersion"]["gitVersion"] == KUBERNETES_VERSION
    helm = subprocess.run(
        [str(cluster.helm), "version", "--short"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert helm.stdout.startswith(HELM_VERSION)


def test_rbac_forbids_a_service_account_without_bindings(cluster: LocalCluster) -> None:
    nobody = kubectl(
        cluster,
        "auth",
        "can-i",
        "--as=system:serviceaccount:default:nobody",
        "list",
        "pods",
        check=False,
    )
    assert nobody.stdout.strip() == "no"
    assert kubectl(cluster, "auth", "can-i", "list", "pods").stdout.strip() == "yes"


def test_service_account_tokens_are_issued_by_the_cluster(
    cluster: LocalCluster, namespace: str
) -> None:
    wait_for(
        "the default service account",
        lambda: (
            kubectl(cluster, "get", "sa", "default", "-n", namespace, check=False).returncode == 0
        ),
    )
    token = kubectl(cluster, "create", "token", "default", "-n", namespace).stdout.strip()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == SERVICE_ACCOUNT_ISSUER
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"


def test_deployment_pods_run_on_kwok_nodes(cluster: LocalCluster, namespace: str) -> None:
    kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=deployment("web", replicas=3))

    pods = wait_for("3 Running pods", lambda: running_pods(cluster, namespace, "web", 3))

    fake_nodes = {n.name for n in DEFAULT_NODES}
    assert {p["spec"]["nodeName"] for p in pods} <= fake_nodes
    assert all(p["status"]["podIP"] for p in pods)
    wait_for(
        "the Deployment to report 3 available replicas",
        lambda: (
            kubectl_json(cluster, "get", "deployment", "web", "-n", namespace)["status"].get(
                "availableReplicas"
            )
            == 3
        ),
    )


def test_scaled_down_pods_go_away(cluster: LocalCluster, namespace: str) -> None:
    kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=deployment("api", replicas=3))
    wait_for("3 Running pods", lambda: running_pods(cluster, namespace, "api", 3))

    kubectl(cluster, "scale", "deployment/api", "-n", namespace, "--replicas=1")

    def one_pod_left() -> bool:
        pods = kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", "app=api")["items"]
        return len(pods) == 1

    wait_for("the extra pods to be deleted", one_pod_left)


def test_job_pods_complete(cluster: LocalCluster, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "migrate", "image": "registry.invalid/migrate:1"}],
                }
            }
        },
    }
    kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(job))

    kubectl(cluster, "wait", "--for=condition=Complete", "job/migrate", "-n", namespace)


def test_gpu_pods_land_on_the_gpu_node(cluster: LocalCluster, namespace: str) -> None:
    kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=deployment("tx", 2, gpus=2))

    pods = wait_for("2 Running GPU pods", lambda: running_pods(cluster, namespace, "tx", 2))

    assert {p["spec"]["nodeName"] for p in pods} == {"kwok-node-1"}


def test_custom_resources_are_served(cluster: LocalCluster, namespace: str) -> None:
    group = f"{namespace}.reelplane.io"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(crd))
    try:
        kubectl(cluster, "wait", "--for=condition=Established", f"crd/widgets.{group}")
        widget = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w1", "namespace": namespace},
            "spec": {"size": 3},
        }
        kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(widget))
        got = kubectl_json(cluster, "get", f"widgets.{group}", "w1", "-n", namespace)
        assert got["spec"] == {"size": 3}
        bad = {**widget, "metadata": {"name": "w2", "namespace": namespace}, "spec": {"size": 0}}
        rejected = kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(bad), check=False)
        assert rejected.returncode != 0
        assert "spec.size" in rejected.stderr
    finally:
        kubectl(cluster, "delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def test_up_again_reuses_the_running_components(cluster: LocalCluster) -> None:
    before = {s.name: s.pid for s in cluster.harness.status()}
    started = time.monotonic()

    rows = cluster.up()

    assert time.monotonic() - started < 30
    assert all(r.state == "ready" for r in rows), rows
    assert {r.name: r.pid for r in rows} == before
