"""Background tasks under supervision: a task that fails is logged at once (with
its exception), restarted after an exponential backoff, and its state is kept
for the readiness check (`/readyz`).

A background task (a consumer, a worker loop, a janitor) runs until the app's
stop event is set. One that raises, or returns before that, has failed: the
supervisor logs it, waits `backoff.delay_s(failures)` and runs it again. A run
that lasted longer than the longest backoff starts the count of failures in a
row again, so an occasional failure is retried quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import structlog

from reelplane.backends import Backends
from reelplane.events.envelope import utc_now
from reelplane.http.services import BackgroundTask

log = structlog.get_logger("reelplane.tasks")

TaskPhase = Literal["running", "restarting", "stopped"]

#: Longest error text kept for the readiness report (characters).
ERROR_CHARS = 500


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between restarts: `first_s`, doubling up to `max_s`."""

    first_s: float = 1.0
    max_s: float = 60.0

    def delay_s(self, failures: int) -> float:
        """Wait before the restart that follows the `failures`-th failure in a row (1-based)."""
        return float(min(self.max_s, self.first_s * 2.0 ** min(max(failures, 1) - 1, 64)))


@dataclass(frozen=True)
class TaskState:
    """What readiness reports of one task: its phase, how often it was restarted,
    and its last failure (`last_error`, `failed_at`; None while it never failed)."""

    name: str
    phase: TaskPhase
    restarts: int = 0
    last_error: str | None = None
    failed_at: datetime | None = None
    #: When a restarting task runs again (None unless restarting).
    restart_at: datetime | None = None


def describe_error(exc: BaseException) -> str:
    """`Type: message` of an exception, on one line and at most ERROR_CHARS long."""
    text = " ".join(str(exc).split())
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described[:ERROR_CHARS]


class Supervisor:
    """Runs named background tasks until `stop()`, restarting each that fails."""

    def __init__(self, tasks: Mapping[str, BackgroundTask], backoff: Backoff | None = None) -> None:
        self.tasks = dict(tasks)
        self.backoff = backoff or Backoff()
        self._states = {name: TaskState(name, "stopped") for name in self.tasks}
        self._stop = asyncio.Event()
        self._running: list[asyncio.Task[None]] = []

    def start(self, backends: Backends) -> None:
        """Start every task (in the running event loop)."""
        self._stop = asyncio.Event()
        self._running = [
            asyncio.create_task(self._supervise(name, task, backends), name=f"task:{name}")
            for name, task in self.tasks.items()
        ]

    def states(self) -> list[TaskState]:
        """Every task's state now, in the order the tasks were given."""
        return list(self._states.values())

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Set the tasks' stop event and wait up to `timeout_s` for all of them
        together; those still running then are cancelled."""
        self._stop.set()
        if not self._running:
            return
        _, late = await asyncio.wait(self._running, timeout=timeout_s)
        for task in late:
            log.warning("background task did not stop in time; cancelled", task=task.get_name())
            task.cancel()
        for task in self._running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._running = []

    async def _supervise(self, name: str, task: BackgroundTask, backends: Backends) -> None:
        failures = 0
        while not self._stop.is_set():
            self._states[name] = replace(self._states[name], phase="running", restart_at=None)
            started = time.monotonic()
            try:
                await task(backends, self._stop)
            except asyncio.CancelledError as exc:
                current = asyncio.current_task()
                if current is None or current.cancelling():
                    raise  # we are being cancelled (shutdown), not the task failing
                error: BaseException | None = exc
            except Exception as exc:
                error = exc
            else:
                if self._stop.is_set():
                    break
                error = None  # it returned while it should still run: a failure too
            if time.monotonic() - started >= self.backoff.max_s:
                failures = 0  # it ran well for a while: back off from the start again
            failures += 1
            delay = self.backoff.delay_s(failures)
            state = self._states[name]
            now = utc_now()
            reason = (
                describe_error(error) if error is not None else "returned before the app stopped"
            )
            self._states[name] = TaskState(
                name,
                "restarting",
                restarts=state.restarts + 1,
                last_error=reason,
                failed_at=now,
                restart_at=datetime.fromtimestamp(now.timestamp() + delay, tz=now.tzinfo),
            )
            log.error(
                "background task failed; restarting",
                task=name,
                error=reason,
                failures_in_a_row=failures,
                retry_in_s=round(delay, 3),
                exc_info=error,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        self._states[name] = replace(self._states[name], phase="stopped", restart_at=None)


def task_name(task: BackgroundTask) -> str:
    """A readable, stable name for a service's task: its module below `reelplane.`
    (without a trailing `.api`) and its function, e.g. `upload.run_janitor`."""
    module = task.__module__.removeprefix("reelplane.").removesuffix(".api")
    return f"{module}.{getattr(task, '__name__', type(task).__name__)}"
