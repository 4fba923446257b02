"""Liveness and readiness, two questions with two endpoints.

`/healthz` (liveness): the process is alive and its event loop answers. It
never looks at a backend, so a Redis or Kafka outage does not get every Pod
restarted; a Pod whose loop is stuck does not answer and is restarted.

`/readyz` (readiness): every backend answers its ping and every background
task is running. 503 otherwise, with the reason of each failing check, so a
Pod that cannot do its work leaves the Service's endpoints until it can.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

import reelplane
from reelplane.backends import Backends
from reelplane.http.supervisor import Supervisor, TaskPhase, TaskState
from reelplane.settings import Settings

#: The prefix of a background task's entry among the readiness checks.
TASK_CHECK = "task:"


class CheckResult(BaseModel):
    """One readiness check: ok, or error with the reason."""

    status: Literal["ok", "error"]
    detail: str | None = None


class TaskCheck(CheckResult):
    """A background task's check: its phase, restarts so far and last failure."""

    phase: TaskPhase
    restarts: int = Field(ge=0)
    last_error: str | None = None
    failed_at: datetime | None = None
    restart_at: datetime | None = None


class Liveness(BaseModel):
    status: Literal["ok"]
    version: str
    services: list[str]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str
    services: list[str]
    #: Backends by name (database, cache, bus, widerow, objects, and a service's
    #: own, e.g. search), then
    #: `task:<name>` for every background task.
    checks: dict[str, TaskCheck | CheckResult]


def task_check(state: TaskState) -> TaskCheck:
    """A task's readiness: ok while it runs; otherwise why not."""
    if state.phase == "running":
        detail = None
    elif state.phase == "restarting":
        detail = f"restarting (restart {state.restarts}) after: {state.last_error}"
    else:
        detail = "not running"
    return TaskCheck(
        status="ok" if state.phase == "running" else "error",
        detail=detail,
        phase=state.phase,
        restarts=state.restarts,
        last_error=state.last_error,
        failed_at=state.failed_at,
        restart_at=state.restart_at,
    )


async def _probe(probe: Callable[[], Awaitable[None]], timeout_s: float) -> CheckResult:
    try:
        await asyncio.wait_for(probe(), timeout_s)
    except TimeoutError:
        return CheckResult(status="error", detail=f"no answer within {timeout_s:g} s")
    except Exception as exc:
        return CheckResult(status="error", detail=str(exc)[:200] or type(exc).__name__)
    return CheckResult(status="ok")


def health_router(services: list[str]) -> APIRouter:
    """`/healthz` and `/readyz` for an app serving `services`."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Liveness, summary="Liveness: the process is alive")
    async def healthz() -> Liveness:
        """200 while the process serves requests; never depends on a backend."""
        return Liveness(status="ok", version=reelplane.__version__, services=services)

    @router.get(
        "/readyz",
        response_model=Readiness,
        summary="Readiness: backends reachable, background tasks running",
        responses={503: {"model": Readiness, "description": "A check failed"}},
    )
    async def readyz(request: Request, response: Response) -> Readiness:
        """200 when every backend answers and every background task runs; 503
        with each failing check's reason otherwise."""
        backends: Backends = request.app.state.backends
        settings: Settings = request.app.state.settings
        probes: dict[str, Callable[[], Awaitable[None]]] = {
            "database": backends.database.ping,
            "cache": backends.cache.ping,
            "bus": backends.bus.ping,
            "widerow": backends.widerow.ping,
            "objects": backends.objects.ping,
            # A service's own backends (e.g. the search index), added by its configure hook.
            **getattr(request.app.state, "readiness_probes", {}),
        }
        results = await asyncio.gather(
            *(_probe(p, settings.readiness_timeout_s) for p in probes.values())
        )
        checks: dict[str, TaskCheck | CheckResult] = dict(zip(probes, results, strict=True))
        supervisor: Supervisor | None = getattr(request.app.state, "supervisor", None)
        for state in supervisor.states() if supervisor is not None else []:
            checks[TASK_CHECK + state.name] = task_check(state)
        ready = all(c.status == "ok" for c in checks.values())
        if not ready:
            response.status_code = 503
        return Readiness(
            status="ok" if ready else "unavailable",
            version=reelplane.__version__,
            services=services,
            checks=checks,
        )

    return router
