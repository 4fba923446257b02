"""The operator's CLI, the handlers' runtime glue (retries, lag polling) and how the
handlers are registered with Kopf, no cluster."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import kopf
import pytest
from click.testing import CliRunner

from reelplane.cli import main
from reelplane_operator import handlers, runtime
from reelplane_operator.lag import LagReading
from tests.unit.test_operator_reconcile import PARENTS, FakeKube, _resource

pytestmark = pytest.mark.unit


def test_operator_run_is_a_reelplane_command() -> None:
    result = CliRunner().invoke(main, ["operator", "run", "--help"])
    assert result.exit_code == 0
    for option in ("--namespace", "--peering", "--priority", "--kubeconfig", "--liveness"):
        assert option in result.output


class FakeReader:
    def __init__(self, lag: int | None) -> None:
        self.lag = lag

    async def read(self, topic: str, group: str, reset_policy: str) -> LagReading:
        if self.lag is None:
            raise ConnectionError("no brokers")
        return LagReading(self.lag, 6)

    async def close(self) -> None:
        return None


def _runtime(kube: FakeKube) -> runtime.Runtime:
    PARENTS.clear()
    return runtime.Runtime(runtime.OperatorConfig(), kube)


async def test_poll_pool_scales_the_deployment_and_reports_errors() -> None:
    kube = FakeKube()
    rt = _runtime(kube)
    body = _resource("TranscodePool", "pool", {"maxReplicas": 5})
    rt.store.observe_parent(body)
    reader = FakeReader(lag=42)
    rt.lag_readers["kafka:9092"] = reader  # type: ignore[assignment]
    await rt.poll_pool(rt.store.parents[("TranscodePool", "ns", "pool")])
    deployment = kube.objects[("apps/v1", "Deployment", "ns", "pool-gpu-workers")]
    assert deployment["spec"]["replicas"] == 5
    assert PARENTS[("TranscodePool", "ns", "pool")]["status"]["lag"] == 42

    reader.lag = None
    key = ("ns", "pool")
    rt.autoscaler.pools[key] = replace(rt.autoscaler.pools[key], polled_at_s=None)  # due now
    await rt.poll_pool(rt.store.parents[("TranscodePool", "ns", "pool")])
    conditions = {
        c["type"]: c for c in PARENTS[("TranscodePool", "ns", "pool")]["status"]["conditions"]
    }
    assert conditions["Degraded"]["status"] == "True"
    assert "no brokers" in conditions["Degraded"]["message"]


async def test_failed_reconcile_is_retried_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "RETRY_DELAYS_S", (0.01,))
    kube = FakeKube()
    kube.fail_on = "fra-edge"
    rt = _runtime(kube)
    spec: dict[str, Any] = {"region": "eu", "location": {"latitude": 1, "longitude": 2}}
    rt.store.observe_parent(_resource("EdgePoP", "fra", spec))
    await rt.reconcile(("EdgePoP", "ns", "fra"))
    assert rt.failures[("EdgePoP", "ns", "fra")] == 1
    kube.fail_on = None
    for _ in range(100):
        await asyncio.sleep(0.01)
        if ("EdgePoP", "ns", "fra") not in rt.failures:
            break
    assert ("EdgePoP", "ns", "fra") not in rt.failures
    assert ("apps/v1", "Deployment", "ns", "fra-edge") in kube.objects


async def test_a_burst_of_events_coalesces_into_at_most_two_passes() -> None:
    kube = FakeKube()
    rt = _runtime(kube)
    spec: dict[str, Any] = {"region": "eu", "location": {"latitude": 1, "longitude": 2}}
    rt.store.observe_parent(_resource("EdgePoP", "fra", spec))
    passes = 0
    real = rt.reconciler.reconcile

    async def counting(body: Any) -> int:
        nonlocal passes
        passes += 1
        await asyncio.sleep(0.01)
        return await real(body)

    rt.reconciler.reconcile = counting  # type: ignore[method-assign]
    await asyncio.gather(*(rt.reconcile(("EdgePoP", "ns", "fra")) for _ in range(20)))
    assert passes == 2
    assert not rt.running and not rt.rerun


def test_lag_is_polled_by_a_kopf_timer_that_puts_no_finalizer_on_pools() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    timers = [h for h in registry._spawning.get_all_handlers() if h.id == handlers.LAG_TIMER_ID]
    assert len(timers) == 1
    timer = timers[0]
    assert timer.fn is handlers.poll_lag
    assert timer.requires_finalizer is False  # the operator writes only status
    assert getattr(timer, "interval", None) == handlers.LAG_TICK_S
    assert (timer.selector.group, timer.selector.any_name) == ("reelplane.io", "transcodepools")


async def test_a_pools_timer_polls_it_while_stored_and_stops_matching_when_deleted() -> None:
    kube = FakeKube()
    rt = _runtime(kube)
    memo = kopf.Memo({runtime.RUNTIME_KEY: rt})
    body = _resource("TranscodePool", "pool", {"maxReplicas": 5})
    rt.store.observe_parent(body)
    rt.lag_readers["kafka:9092"] = FakeReader(lag=42)  # type: ignore[assignment]
    assert handlers._stored(body=kopf.Body(body), memo=memo)
    await handlers.poll_lag(body=kopf.Body(body), memo=memo)
    assert (
        kube.objects[("apps/v1", "Deployment", "ns", "pool-gpu-workers")]["spec"]["replicas"] == 5
    )

    await handlers.on_parent_event(body=kopf.Body(body), type="DELETED", memo=memo)
    assert not handlers._stored(body=kopf.Body(body), memo=memo)  # Kopf stops the timer
    assert ("ns", "pool") not in rt.autoscaler.pools
