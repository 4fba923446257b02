"""Two operator replicas coordinate through Kopf peering: the higher priority one
acts, the other waits; when the active one dies (SIGKILL, no goodbye), the
standby takes over once the dead one's heartbeat lapses. Both run out of
cluster with the chart's least-privilege identity."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.operator_support import (
    PEERING,
    Kubectl,
    OperatorProcess,
    condition,
    install_charts,
    operator_kubeconfig,
    uninstall,
    unique_namespace,
    wait_for,
)

pytestmark = pytest.mark.e2e

LIFETIME_S = 8  # short heartbeats, so a takeover is quick to see


@pytest.fixture(scope="module")
def namespace(k8s: Kubectl) -> Iterator[str]:
    ns = unique_namespace("rp-peering")
    install_charts(k8s, ns, operator_replicas=0, with_services=False)
    yield ns
    uninstall(k8s, ns)


def pop(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "reelplane.io/v1alpha1",
        "kind": "EdgePoP",
        "metadata": {"name": name},
        "spec": {"region": "eu-central", "location": {"latitude": 50.1, "longitude": 8.7}},
    }


def ready(k: Kubectl, name: str, ns: str) -> bool | None:
    return condition(k.get("edgepop", name, ns), "Ready") == "True" or None


def test_the_standby_takes_over_when_the_active_replica_dies(
    k8s: Kubectl, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("peering")
    kubeconfig = operator_kubeconfig(k8s, namespace, tmp / "kubeconfig")
    active, standby = (
        OperatorProcess(
            kubeconfig, namespace, tmp / f"{role}.log", priority=prio, peering_lifetime_s=LIFETIME_S
        )
        for role, prio in (("active", 200), ("standby", 100))
    )

    def peers(n: int) -> bool | None:
        peering = k8s.get("kopfpeering", PEERING, namespace) or {}
        return len(peering.get("status") or {}) == n or None

    try:
        # The active one first, so the standby finds a live higher peer from its start.
        active.start()
        wait_for(lambda: peers(1), 60, "the active replica in the peering object")
        wait_for(lambda: "Resuming operations" in active.log() or None, 60, "the active acting")
        standby.start()
        wait_for(lambda: peers(2), 60, "both replicas in the peering object")
        k8s.apply([pop("pop-a")], namespace)
        wait_for(lambda: ready(k8s, "pop-a", namespace), 60, "pop-a Ready (active replica)")
        time.sleep(LIFETIME_S)  # a heartbeat or more: the standby has weighed its peers
        # Kopf starts paused; the standby never resumed while a higher peer lived.
        assert "Resuming operations" not in standby.log()
        assert "Resuming operations" in active.log()

        active.stop(kill=True)
        killed_at = time.monotonic()
        k8s.apply([pop("pop-b")], namespace)
        wait_for(
            lambda: ready(k8s, "pop-b", namespace),
            LIFETIME_S + 60,
            "pop-b Ready after the takeover",
        )
        took_s = time.monotonic() - killed_at
        assert "Resuming operations" in standby.log()
        print(f"standby took over and reconciled within {took_s:.1f} s of the kill")
    finally:
        active.stop()
        standby.stop()
        print(standby.log()[-4000:])
