"""Lag-based autoscaling of a TranscodePool, as KEDA's Kafka scaler does it.

Pure functions: the lag of each partition from offsets, the replica count the
lag asks for, and the scale-down stabilization window (the HPA's rule: scale
down only to the highest recommendation made within the window, scale up at
once). The handlers feed them offsets read from Kafka and a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal


def partition_lag(
    end_offsets: Mapping[int, int],
    committed: Mapping[int, int | None],
    beginning_offsets: Mapping[int, int] | None = None,
    reset_policy: Literal["earliest", "latest"] = "earliest",
) -> dict[int, int]:
    """Lag (messages) of each partition: end offset minus the committed offset.

    A partition with no committed offset counts its whole retained backlog
    (`earliest`, from its beginning offset) or nothing (`latest`), as the
    workers' `auto.offset.reset` would consume it. Never negative.
    """
    starts = beginning_offsets or {}
    lags: dict[int, int] = {}
    for partition, end in end_offsets.items():
        offset = committed.get(partition)
        if offset is None or offset < 0:
            offset = starts.get(partition, 0) if reset_policy == "earliest" else end
        lags[partition] = max(0, end - offset)
    return lags


def desired_replicas(
    total_lag: int, lag_per_replica: int, min_replicas: int, max_replicas: int, partitions: int
) -> int:
    """Replicas for a lag: ceil(lag / lagPerReplica), clamped to the partition count
    (an extra consumer would idle) and to [min_replicas, max_replicas].

    `partitions` <= 0 means unknown (no partition clamp). min_replicas wins over
    the partition clamp: it is the floor the user asked for.
    """
    if lag_per_replica <= 0:
        raise ValueError("lag_per_replica must be positive")
    if min_replicas > max_replicas:
        raise ValueError("min_replicas must be <= max_replicas")
    wanted = math.ceil(max(0, total_lag) / lag_per_replica)
    upper = min(max_replicas, partitions) if partitions > 0 else max_replicas
    return max(min_replicas, min(wanted, upper))


@dataclass(frozen=True)
class Recommendation:
    """A replica count recommended at a time (seconds, any monotonic clock)."""

    at_s: float
    replicas: int


def record(
    history: Iterable[Recommendation], new: Recommendation, window_s: float
) -> tuple[Recommendation, ...]:
    """The history with `new` appended and entries older than the window dropped."""
    kept = [r for r in history if r.at_s >= new.at_s - window_s]
    return (*kept, new)


def stabilized_replicas(history: Sequence[Recommendation], now_s: float, window_s: float) -> int:
    """The highest recommendation within the window: a rise applies at once, a fall
    only after it has been the highest for `window_s` seconds."""
    recent = [r.replicas for r in history if r.at_s >= now_s - window_s]
    if not recent:
        raise ValueError("no recommendation within the window")
    return max(recent)
