"""A Recommender becomes a KubeRay RayService where KubeRay is installed: the
RayService CRD (from KubeRay's own Go module) on the local control plane, the
operator running with the chart's least-privilege identity. No KubeRay
controller runs here (no containers), so the test plays its part: it reports
the RayService Ready, as KubeRay would once Serve is up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.operator_support import (
    Kubectl,
    OperatorProcess,
    condition,
    install_charts,
    kuberay_crd,
    running_operator,
    uninstall,
    unique_namespace,
    wait_for,
)

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[1] / "crds" / "examples" / "recommender.yaml"
CRD = "rayservices.ray.io"


@pytest.fixture(scope="module")
def rayservice_crd(k8s: Kubectl) -> Iterator[None]:
    """KubeRay's RayService CRD served for this module (removed afterwards)."""
    # Server-side: the CRD is too big for kubectl's last-applied annotation.
    k8s.run("apply", "--server-side", "-f", str(kuberay_crd()))

    def established() -> bool:
        crd = k8s.json("get", "crd", CRD)
        return condition(crd, "Established") == "True"

    wait_for(established, 60, "the RayService CRD served")
    yield
    # Gone before other modules run: their operator must find no KubeRay.
    k8s.run("delete", "crd", CRD, "--wait=false", check=False)
    wait_for(
        lambda: k8s.run("get", "crd", CRD, check=False).returncode != 0 or None,
        120,
        "the RayService CRD removed",
    )


@pytest.fixture(scope="module")
def namespace(k8s: Kubectl, rayservice_crd: None) -> Iterator[str]:
    ns = unique_namespace("rp-kuberay")
    install_charts(k8s, ns, operator_replicas=0, with_services=False)
    yield ns
    uninstall(k8s, ns)


@pytest.fixture(scope="module")
def operator(
    k8s: Kubectl, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with running_operator(k8s, namespace, tmp_path_factory.mktemp("operator-kuberay")) as proc:
        yield proc


def test_a_recommender_becomes_a_rayservice_with_serve_autoscaling(
    k8s: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    rec: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    k8s.apply([rec], namespace)
    name = rec["metadata"]["name"]

    service = wait_for(lambda: k8s.get("rayservice", name, namespace), 60, "the RayService")
    owner = service["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Recommender", name, True)
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])
    deployments = {d["name"]: d for d in serve["applications"][0]["deployments"]}
    assert list(deployments) == ["Recommender", "Retriever", "Ranker"]
    spec = rec["spec"]
    for deployment in deployments.values():
        assert deployment["autoscaling_config"] == {
            "min_replicas": spec["minReplicas"],
            "max_replicas": spec["maxReplicas"],
            "target_ongoing_requests": spec["targetOngoingRequests"],
        }
        assert deployment["user_config"]["index"]["nprobe"] == spec["index"]["nprobe"]
    assert deployments["Ranker"]["ray_actor_options"]["num_gpus"] == spec["gpusPerReplica"]
    workers = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"]
    # No Ray head/worker Deployments in this mode.
    assert k8s.get("deployment", f"{name}-ray-head", namespace) is None

    def mode() -> str | None:
        obj = k8s.get("recommender", name, namespace)
        got: str | None = (obj or {}).get("status", {}).get("mode")
        return got if got == "RayService" else None

    wait_for(mode, 60, "status.mode RayService")
    assert condition(k8s.get("recommender", name, namespace), "Ready") != "True"

    # KubeRay's part: the service is up.
    k8s.run(
        "patch", "rayservice", name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", '{"status": {"serviceStatus": "Running"}}',
    )  # fmt: skip
    wait_for(
        lambda: condition(k8s.get("recommender", name, namespace), "Ready") == "True" or None,
        60,
        "the Recommender Ready once its RayService runs",
    )
    # Deleting the Recommender removes its RayService (owner reference).
    k8s.run("delete", "recommender", name, "-n", namespace, "--wait=true")
    wait_for(lambda: k8s.get("rayservice", name, namespace) is None or None, 60, "RayService gone")
    assert "Forbidden" not in operator.log()
