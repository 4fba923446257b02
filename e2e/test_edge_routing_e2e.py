"""The EdgePoP routing table lives exactly as long as an EdgePoP does: every PoP of the
namespace owns it, and kube-controller-manager's garbage collector deletes it with
the last one (nothing of the operator's stays behind once its resources are gone).
The operator runs out of cluster with the chart's least-privilege identity."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.operator_support import (
    Kubectl,
    OperatorProcess,
    install_charts,
    running_operator,
    uninstall,
    unique_namespace,
    wait_for,
)
from reelplane_operator.render.edge import ROUTING_TABLE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def namespace(k8s: Kubectl) -> Iterator[str]:
    ns = unique_namespace("rp-routing")
    install_charts(k8s, ns, operator_replicas=0, with_services=False)
    yield ns
    uninstall(k8s, ns)


@pytest.fixture(scope="module")
def operator(
    k8s: Kubectl, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with running_operator(k8s, namespace, tmp_path_factory.mktemp("operator")) as proc:
        yield proc


def pop(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "reelplane.io/v1alpha1",
        "kind": "EdgePoP",
        "metadata": {"name": name},
        "spec": {"region": "eu-central", "location": {"latitude": 50.1, "longitude": 8.7}},
    }


def owners(k: Kubectl, ns: str) -> list[tuple[str, str]] | None:
    """(name, uid) of the routing table's owners; None while there is no table."""
    table = k.get("configmap", ROUTING_TABLE, ns)
    if table is None:
        return None
    refs = table["metadata"].get("ownerReferences") or []
    return sorted((r["name"], r["uid"]) for r in refs if r["kind"] == "EdgePoP")


def test_routing_table_goes_with_the_last_edgepop(
    k8s: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    k8s.apply([pop("ams-1"), pop("fra-1")], namespace)
    uids = {
        name: k8s.json("get", "edgepop", name, "-n", namespace)["metadata"]["uid"]
        for name in ("ams-1", "fra-1")
    }
    both = sorted(uids.items())
    wait_for(lambda: owners(k8s, namespace) == both or None, 60, "both PoPs owning the table")
    table = k8s.get("configmap", ROUTING_TABLE, namespace)
    assert table is not None
    assert not any(r.get("controller") for r in table["metadata"]["ownerReferences"])

    # One PoP gone: the table stays, owned by the other.
    k8s.run("delete", "edgepop", "ams-1", "-n", namespace)
    only_fra = [("fra-1", uids["fra-1"])]
    wait_for(lambda: owners(k8s, namespace) == only_fra or None, 60, "fra-1 the only owner")

    # The last one gone: the garbage collector deletes the table.
    k8s.run("delete", "edgepop", "fra-1", "-n", namespace)
    wait_for(
        lambda: k8s.get("configmap", ROUTING_TABLE, namespace) is None,
        60,
        "garbage collection of the routing table",
    )
    # ... and the operator, still running, does not write it back (it publishes every 2 s).
    time.sleep(5)
    assert k8s.get("configmap", ROUTING_TABLE, namespace) is None
    assert operator.alive()
