"""The FastAPI app factory: one app per service in a cluster, all of them in one
process for `reelplane dev` (same code, different settings)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import reelplane
from reelplane.backends import Backends, open_backends
from reelplane.gateway.edge import install_edge
from reelplane.http.problems import header, install_problem_handlers, problem_response
from reelplane.http.services import SERVICES, BackgroundTask, load_service, load_worker
from reelplane.logs import REQUEST_ID
from reelplane.settings import Settings

log = structlog.get_logger("reelplane.http")
ACCESS_LOG = logging.getLogger("reelplane.http")


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


#: A client's own request id is kept when it is this long at most and printable
#: ASCII (it goes into log lines and response headers as it is).
REQUEST_ID_MAX_LENGTH = 128


def request_id_of(scope: Scope) -> str:
    """The client's `x-request-id` when it is a sane one, else a new random id."""
    given = header(scope, b"x-request-id")
    if given and len(given) <= REQUEST_ID_MAX_LENGTH and given.isprintable() and given.isascii():
        return given
    return os.urandom(16).hex()


class RequestIdMiddleware:
    """Pure ASGI: a request id (the client's `x-request-id` or a new one) on the
    response and in every log line of the request, one access-log line per
    request, and a problem+json 500 for an error nothing else handled. Kept
    lean: it runs on every request, the cached feed reads included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        id_header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        token = REQUEST_ID.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", path=scope["path"])
            if status == 0:  # nothing sent yet: the client gets a problem, not a reset
                response = problem_response(
                    Request(scope),
                    500,
                    "internal-error",
                    "Internal error",
                    "an unexpected error occurred",
                )
                await response(scope, receive, send_with_id)
        finally:
            # Checked here: a dropped access line then costs no structlog call.
            if ACCESS_LOG.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            REQUEST_ID.reset(token)


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
    # Services may share a task (the outbox relay): it runs once per process.
    tasks: list[BackgroundTask] = list(dict.fromkeys(t for s in loaded for t in s.background))
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
            for close in app.state.closers:
                await close()
            if owned:
                await app.state.backends.close()

    app = FastAPI(
        title="Reelplane API",
        version=reelplane.__version__,
        description="Short-video platform: upload, feeds, engagement, graph, notify, search.",
        lifespan=lifespan,
        # Request ids and structlog access logs are the observability here; FastAPI's
        # OpenTelemetry hooks would only cost a provider lookup on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.mounted_services = chosen
    app.state.closers = []  # async callables run at shutdown (clients a hook opened)
    install_problem_handlers(app)
    app.include_router(_health_router(chosen))
    for service in loaded:
        for router in service.routers:
            app.include_router(router)
        for hook in service.configure:
            hook(app, settings)

    install_edge(app, [r for s in loaded for r in s.cached_reads])
    app.add_middleware(RequestIdMiddleware)  # added last: outermost
    return app
