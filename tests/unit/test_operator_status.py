"""Conditions, drift detection and quantities (pure parts)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from reelplane_operator.conditions import (
    Health,
    combine,
    deployment_health,
    next_conditions,
    rayservice_health,
)
from reelplane_operator.drift import contains, up_to_date
from reelplane_operator.meta import DIGEST_ANNOTATION, stamped
from reelplane_operator.quantity import mebibytes, parse_quantity, same_quantity

pytestmark = pytest.mark.unit


def _deployment(
    replicas: int = 2, generation: int = 1, observed: int = 1, **status: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": "d", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, **status},
    }


# -- health ----------------------------------------------------------------------------
def test_deployment_health_states() -> None:
    assert deployment_health("d", None).reason == "Creating"
    assert deployment_health("d", _deployment(generation=2, observed=1)).progressing
    rolling = deployment_health("d", _deployment(updatedReplicas=2, availableReplicas=1))
    assert (rolling.ready, rolling.progressing, rolling.message) == (
        False,
        True,
        "d: 1/2 replicas available",
    )
    surplus = _deployment(replicas=2, updatedReplicas=2, availableReplicas=2, replicas_=3)
    surplus["status"]["replicas"] = 3  # old Pods still terminating
    assert not deployment_health("d", surplus).ready
    ready = deployment_health(
        "d", _deployment(updatedReplicas=2, availableReplicas=2, readyReplicas=2, replicas=2)
    )
    assert ready.ready and not ready.progressing and not ready.degraded
    assert deployment_health("d", _deployment(replicas=0)).ready


def test_deployment_health_degraded() -> None:
    stuck = _deployment(
        conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ]
    )
    assert deployment_health("d", stuck).degraded
    quota = _deployment(
        conditions=[{"type": "ReplicaFailure", "status": "True", "message": "exceeded quota"}]
    )
    got = deployment_health("d", quota)
    assert got.degraded and "exceeded quota" in got.message


def test_rayservice_health() -> None:
    assert not rayservice_health("r", None).ready
    assert rayservice_health("r", {"status": {"serviceStatus": "Running"}}).ready
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert rayservice_health("r", ready).ready
    assert not rayservice_health("r", {"status": {}}).ready


def test_combine_prefers_degraded_then_progressing() -> None:
    ok = Health(True, False, False, "Available", "a ok")
    slow = Health(False, True, False, "RollingOut", "b slow")
    bad = Health(False, False, True, "ReplicaFailure", "c bad")
    assert combine([ok, ok]).ready
    assert combine([ok, slow]).reason == "RollingOut"
    assert combine([slow, bad, ok]).reason == "ReplicaFailure"
    assert combine([slow, bad]).message == "c bad"


def test_conditions_keep_transition_time_until_status_flips() -> None:
    slow = Health(False, True, False, "RollingOut", "1/2")
    first = next_conditions([], slow, 4, "T1")
    assert {c["type"]: c["status"] for c in first} == {
        "Ready": "False",
        "Progressing": "True",
        "Degraded": "False",
    }
    assert all(c["lastTransitionTime"] == "T1" and c["observedGeneration"] == 4 for c in first)
    again = next_conditions(first, Health(False, True, False, "RollingOut", "1/2"), 4, "T2")
    assert again == first
    ready = next_conditions(again, Health(True, False, False, "Available", "2/2"), 5, "T3")
    times = {c["type"]: c["lastTransitionTime"] for c in ready}
    assert times == {"Ready": "T3", "Progressing": "T3", "Degraded": "T1"}
    assert {c["reason"] for c in ready} == {"Available", "Complete", "AsExpected"}


def test_degraded_can_explain_itself_apart_from_ready() -> None:
    lag_down = Health(
        True,
        False,
        True,
        "Available",
        "2/2",
        degraded_reason="LagUnavailable",
        degraded_message="x",
    )
    conds = {c["type"]: c for c in next_conditions([], lag_down, 1, "T")}
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("True", "Available")
    assert (conds["Degraded"]["reason"], conds["Degraded"]["message"]) == ("LagUnavailable", "x")


# -- drift -----------------------------------------------------------------------------
def test_contains_tolerates_server_defaults_and_quantity_spelling() -> None:
    rendered = {
        "spec": {
            "ports": [{"name": "http", "port": 80}],
            "resources": {"cpu": "0.5", "memory": "1Gi"},
            "nodeSelector": {},
            "flag": True,
        }
    }
    live = {
        "spec": {
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "resources": {"cpu": "500m", "memory": "1024Mi"},
            "flag": True,
            "extra": 1,
        }
    }
    assert contains(live, rendered)
    assert not contains({"spec": {**live["spec"], "flag": 1}}, rendered)
    assert not contains({"spec": {**live["spec"], "ports": []}}, rendered)
    edited = {"spec": {**live["spec"], "resources": {"cpu": "1", "memory": "1Gi"}}}
    assert not contains(edited, rendered)


def test_up_to_date_needs_equal_digest_and_fields() -> None:
    rendered = stamped({"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v"}})
    assert DIGEST_ANNOTATION in rendered["metadata"]["annotations"]
    assert up_to_date(rendered, rendered)
    assert not up_to_date(rendered, None)
    hand_edit = {**rendered, "data": {"k": "changed"}}
    assert not up_to_date(rendered, hand_edit)
    # a field removed from the rendering is caught by the digest, not the subset check
    bare = {"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v"}}
    old = stamped({"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v", "g": "1"}})
    assert contains(old, bare) and not up_to_date(stamped(bare), old)


def test_stamped_digest_ignores_its_own_annotation() -> None:
    once = stamped({"metadata": {"name": "x"}, "data": {}})
    assert stamped(once) == once


# -- quantities --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "0.5"), ("2", "2"), ("1Ki", "1024"), ("1.5Gi", str(1.5 * 2**30)), ("1e3", "1000")],
)
def test_parse_quantity(text: str, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)


def test_quantity_helpers() -> None:
    assert same_quantity("1000m", "1") and not same_quantity("1", "2")
    assert not same_quantity("http", "http2")
    assert mebibytes("1Gi") == 1024 and mebibytes("1G") == 954
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity("lots")
