"""The autoscaler's memory of each TranscodePool: lag readings and recommendations.

Like the HPA controller, the recommendation history lives in memory only; after
a restart it is seeded with the Deployment's current replicas, so a restart
delays a scale-down by one stabilization window and never causes one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from reelplane_operator.autoscale import (
    Recommendation,
    desired_replicas,
    record,
    stabilized_replicas,
)
from reelplane_operator.lag import LagReading
from reelplane_operator.models import TranscodePoolSpec

PoolKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class PoolScale:
    """What the autoscaler knows about one pool."""

    replicas: int
    history: tuple[Recommendation, ...] = ()
    lag: int = 0
    partitions: int = 0
    desired: int = 0
    last_scale_time: str | None = None
    error: str | None = None
    polled_at_s: float | None = None


def clamp(value: int, spec: TranscodePoolSpec) -> int:
    """A replica count within the spec's [minReplicas, maxReplicas]."""
    return max(spec.min_replicas, min(spec.max_replicas, value))


class Autoscaler:
    """Per-pool scaling state; the lag poller and the reconciler share it."""

    def __init__(self) -> None:
        self.pools: dict[PoolKey, PoolScale] = {}

    def replicas_for(
        self, key: PoolKey, spec: TranscodePoolSpec, live_replicas: int | None, now_s: float
    ) -> PoolScale:
        """The pool's state, created from the live Deployment's replicas (or minReplicas)
        on first sight, and re-clamped to the current spec."""
        state = self.pools.get(key)
        if state is None:
            start = clamp(spec.min_replicas if live_replicas is None else live_replicas, spec)
            state = PoolScale(
                replicas=start, desired=start, history=(Recommendation(now_s, start),)
            )
        elif clamp(state.replicas, spec) != state.replicas:
            state = replace(state, replicas=clamp(state.replicas, spec))
        self.pools[key] = state
        return state

    def due(self, key: PoolKey, spec: TranscodePoolSpec, now_s: float) -> bool:
        """Whether the pool's lag should be read now."""
        state = self.pools.get(key)
        if state is None or state.polled_at_s is None:
            return True
        return now_s - state.polled_at_s >= spec.autoscaling.poll_interval_seconds

    def observe(
        self,
        key: PoolKey,
        spec: TranscodePoolSpec,
        reading: LagReading | None,
        error: str | None,
        now_s: float,
        now_ts: str,
        live_replicas: int | None = None,
    ) -> bool:
        """Record a lag reading (or the error that prevented one); returns whether anything
        the status or the Deployment shows has changed."""
        state = self.replicas_for(key, spec, live_replicas, now_s)
        if reading is None:
            new = replace(state, error=error, polled_at_s=now_s)
        else:
            window = spec.autoscaling.scale_down_stabilization_seconds
            wanted = desired_replicas(
                reading.total,
                spec.autoscaling.lag_per_replica,
                spec.min_replicas,
                spec.max_replicas,
                reading.partitions,
            )
            history = record(state.history, Recommendation(now_s, wanted), window)
            replicas = clamp(stabilized_replicas(history, now_s, window), spec)
            new = PoolScale(
                replicas=replicas,
                history=history,
                lag=reading.total,
                partitions=reading.partitions,
                desired=wanted,
                last_scale_time=now_ts if replicas != state.replicas else state.last_scale_time,
                error=None,
                polled_at_s=now_s,
            )
        self.pools[key] = new
        visible = ("replicas", "lag", "partitions", "desired", "error")
        return any(getattr(new, f) != getattr(state, f) for f in visible)

    def forget(self, key: PoolKey) -> None:
        """Drop a deleted pool."""
        self.pools.pop(key, None)
