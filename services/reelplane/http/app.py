"""The FastAPI app factory: one app per service in a cluster, all of them in one
process for `reelplane dev` (same code, different settings)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import reelplane
from reelplane.backends import Backends, open_backends
from reelplane.http.problems import install_problem_handlers
from reelplane.http.services import SERVICES, BackgroundTask, load_service, load_worker
from reelplane.settings import Settings

log = structlog.get_logger("reelplane.http")


class CheckResult(BaseModel):
    status: Literal["ok", "error"]
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    services: list[str]
    checks: dict[str, CheckResult]


def _health_router(services: list[str]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health, summary="Liveness and backend health")
    async def healthz(request: Request, response: Response) -> Health:
        backends: Backends = request.app.state.backends
        checks: dict[str, CheckResult] = {}
        probes: dict[str, Callable[[], Awaitable[None]]] = {
            "database": backends.database.ping,
            "cache": backends.cache.ping,
            "bus": backends.bus.ping,
            "widerow": backends.widerow.ping,
            "objects": backends.objects.ping,
        }
        for name, probe in probes.items():
            try:
                await probe()
                checks[name] = CheckResult(status="ok")
            except Exception as exc:
                checks[name] = CheckResult(status="error", detail=str(exc)[:200])
        ok = all(c.status == "ok" for c in checks.values())
        if not ok:
            response.status_code = 503
        return Health(
            status="ok" if ok else "degraded",
            version=reelplane.__version__,
            services=services,
            checks=checks,
        )

    return router


def create_app(
    settings: Settings,
    services: list[str] | None = None,
    *,
    workers: list[str] | None = None,
    backends: Backends | None = None,
    run_background: bool = True,
) -> FastAPI:
    """Build the HTTP API for `services` (default: all of them), running their
    background tasks and the named `workers` for the app's lifetime.

    With `backends` given the app uses them as they are (tests); otherwise it
    opens them from settings at startup and closes them at shutdown.
    """
    chosen = list(services or SERVICES)
    loaded = [load_service(name) for name in chosen]
    tasks: list[BackgroundTask] = [t for s in loaded for t in s.background]
    for name in workers or []:
        worker = load_worker(name)
        if worker is not None:
            tasks.append(worker)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = backends is None
        app.state.backends = backends or await open_backends(settings)
        stop = asyncio.Event()
        running = (
            [asyncio.create_task(t(app.state.backends, stop)) for t in tasks]
            if run_background
            else []
        )
        try:
            yield
        finally:
            stop.set()
            for task in running:
                try:
                    await asyncio.wait_for(task, 15)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()
                except Exception:
                    log.exception("background task failed")
            if owned:
                await app.state.backends.close()

    app = FastAPI(
        title="Reelplane API",
        version=reelplane.__version__,
        description="Short-video platform: upload, feeds, engagement, graph, notify, search.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(_health_router(chosen))
    for service in loaded:
        for router in service.routers:
            app.include_router(router)
        for hook in service.configure:
            hook(app, settings)

    @app.middleware("http")
    async def request_id_and_access_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unhandled error", path=request.url.path)
            response = JSONResponse(
                {"type": "about:blank", "title": "Internal error", "status": 500},
                status_code=500,
                media_type="application/problem+json",
            )
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        response.headers["x-request-id"] = request_id
        log.info(
            "request",
            request_id=request_id,
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response

    return app
