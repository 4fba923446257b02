"""Lag-based autoscaling: desired replicas, partition lag, stabilization, the Autoscaler."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reelplane_operator.autoscale import (
    Recommendation,
    desired_replicas,
    partition_lag,
    record,
    stabilized_replicas,
)
from reelplane_operator.lag import LagReading
from reelplane_operator.models import TranscodePoolSpec
from reelplane_operator.scaling import Autoscaler

pytestmark = pytest.mark.unit

lags = st.integers(min_value=0, max_value=10**9)
per_replica = st.integers(min_value=1, max_value=10**6)
bounds = st.tuples(st.integers(0, 1000), st.integers(1, 1000)).filter(lambda b: b[0] <= b[1])
partitions = st.integers(min_value=0, max_value=2048)


@given(lags, per_replica, bounds, partitions)
def test_desired_is_always_within_min_and_max(
    lag: int, per: int, b: tuple[int, int], parts: int
) -> None:
    low, high = b
    assert low <= desired_replicas(lag, per, low, high, parts) <= high


@given(lags, lags, per_replica, bounds, partitions)
def test_desired_is_monotone_in_lag(
    a: int, c: int, per: int, b: tuple[int, int], parts: int
) -> None:
    small, big = sorted((a, c))
    assert desired_replicas(small, per, *b, parts) <= desired_replicas(big, per, *b, parts)


@given(lags, per_replica, bounds, st.integers(1, 2048))
def test_never_more_replicas_than_partitions_unless_min_asks(
    lag: int, per: int, b: tuple[int, int], parts: int
) -> None:
    got = desired_replicas(lag, per, *b, parts)
    assert got <= max(parts, b[0])


@given(per_replica, bounds)
def test_within_bounds_it_is_ceil_of_lag_over_target(per: int, b: tuple[int, int]) -> None:
    low, high = b
    for replicas in {low, (low + high) // 2, high}:
        assume(replicas >= 1)
        lag = replicas * per - (per // 2)  # needs exactly `replicas` by ceil
        assert math.ceil(lag / per) == replicas
        assert desired_replicas(lag, per, low, high, 0) == replicas


def test_examples_like_keda() -> None:
    assert desired_replicas(0, 10, 1, 10, 6) == 1
    assert desired_replicas(0, 10, 0, 10, 6) == 0
    assert desired_replicas(35, 10, 1, 10, 6) == 4
    assert desired_replicas(1000, 10, 1, 10, 6) == 6  # partition clamp
    assert desired_replicas(1000, 10, 1, 4, 6) == 4  # max clamp
    assert desired_replicas(1000, 10, 8, 10, 6) == 8  # min beats the partition clamp
    with pytest.raises(ValueError, match="lag_per_replica"):
        desired_replicas(1, 0, 1, 2, 1)
    with pytest.raises(ValueError, match="min_replicas"):
        desired_replicas(1, 1, 3, 2, 1)


def test_partition_lag_with_and_without_commits() -> None:
    ends = {0: 100, 1: 50, 2: 7}
    committed = {0: 90, 1: None, 2: -1}
    starts = {0: 0, 1: 20, 2: 0}
    assert partition_lag(ends, committed, starts, "earliest") == {0: 10, 1: 30, 2: 7}
    assert partition_lag(ends, committed, starts, "latest") == {0: 10, 1: 0, 2: 0}
    assert partition_lag({0: 5}, {0: 9}) == {0: 0}  # never negative


@given(st.lists(st.tuples(st.floats(0, 1000), st.integers(0, 50)), min_size=1), st.floats(0, 600))
def test_stabilized_is_the_max_within_the_window(
    recs: list[tuple[float, int]], window: float
) -> None:
    history = sorted((Recommendation(t, r) for t, r in recs), key=lambda r: r.at_s)
    now = history[-1].at_s
    got = stabilized_replicas(history, now, window)
    assert got == max(r.replicas for r in history if r.at_s >= now - window)
    assert got >= history[-1].replicas  # scale-up is never held back


def test_scale_down_waits_for_the_window_scale_up_does_not() -> None:
    window = 300.0
    h = record((), Recommendation(0, 8), window)
    h = record(h, Recommendation(10, 2), window)
    assert stabilized_replicas(h, 10, window) == 8
    h = record(h, Recommendation(299, 2), window)
    assert stabilized_replicas(h, 299, window) == 8
    h = record(h, Recommendation(301, 2), window)
    assert stabilized_replicas(h, 301, window) == 2
    assert all(r.at_s >= 1 for r in h)  # old entries pruned
    h = record(h, Recommendation(302, 9), window)
    assert stabilized_replicas(h, 302, window) == 9
    with pytest.raises(ValueError, match="window"):
        stabilized_replicas(h, 10_000, window)


def _spec(**autoscaling: int) -> TranscodePoolSpec:
    return TranscodePoolSpec.model_validate(
        {
            "minReplicas": 1,
            "maxReplicas": 10,
            "autoscaling": {
                "lagPerReplica": 10,
                "scaleDownStabilizationSeconds": 60,
                **autoscaling,
            },
        }
    )


def test_autoscaler_scales_up_at_once_and_down_after_the_window() -> None:
    scaler, key, spec = Autoscaler(), ("ns", "pool"), _spec()
    assert scaler.replicas_for(key, spec, None, 0).replicas == 1
    assert scaler.observe(key, spec, LagReading(55, 12), None, 1, "t1")
    state = scaler.pools[key]
    assert (state.replicas, state.desired, state.lag, state.last_scale_time) == (6, 6, 55, "t1")
    assert scaler.observe(key, spec, LagReading(0, 12), None, 30, "t2")
    assert scaler.pools[key].replicas == 6  # held by the window
    assert scaler.pools[key].desired == 1
    assert not scaler.observe(key, spec, LagReading(0, 12), None, 40, "t3")  # nothing visible
    assert scaler.observe(key, spec, LagReading(0, 12), None, 62, "t4")
    assert scaler.pools[key].replicas == 1
    assert scaler.pools[key].last_scale_time == "t4"


def test_autoscaler_after_restart_keeps_live_replicas_for_a_window() -> None:
    scaler, key, spec = Autoscaler(), ("ns", "pool"), _spec()
    assert scaler.replicas_for(key, spec, 7, 100).replicas == 7
    scaler.observe(key, spec, LagReading(0, 12), None, 101, "t")
    assert scaler.pools[key].replicas == 7
    scaler.observe(key, spec, LagReading(0, 12), None, 161, "t")
    assert scaler.pools[key].replicas == 1


def test_autoscaler_records_errors_and_reclamps_on_spec_change() -> None:
    scaler, key = Autoscaler(), ("ns", "pool")
    spec = _spec()
    scaler.observe(key, spec, LagReading(100, 12), None, 0, "t")
    assert scaler.observe(key, spec, None, "kafka down", 1, "t")
    assert scaler.pools[key].error == "kafka down"
    assert scaler.pools[key].replicas == 10
    smaller = spec.model_copy(update={"max_replicas": 3})
    assert scaler.replicas_for(key, smaller, None, 2).replicas == 3
    assert not scaler.due(key, spec, 2) and scaler.due(key, spec, 16)
    scaler.forget(key)
    assert key not in scaler.pools
