"""The FastAPI app factory: one app per service in a cluster, all of them in one
process for `reelplane dev` (same code, different settings)."""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import reelplane
from reelplane.backends import Backends, open_backends
from reelplane.http.access import log_access, request_id_of
from reelplane.http.bodies import install_body_limit
from reelplane.http.docs import install_docs
from reelplane.http.edge import Edge, install_edge
from reelplane.http.health import health_router
from reelplane.http.home import install_home
from reelplane.http.problems import install_problem_handlers, problem_response
from reelplane.http.services import (
    SERVICES,
    BackgroundTask,
    load_service,
    load_worker,
    served_services,
)
from reelplane.http.supervisor import Backoff, Supervisor, task_name
from reelplane.logs import REQUEST_ID
from reelplane.settings import Settings

log = structlog.get_logger("reelplane.http")


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
            log_access(scope, status, started)
            REQUEST_ID.reset(token)


class ReelplaneAPI(FastAPI):
    """FastAPI, with the edge's cached reads answered before the middleware
    stack: a cached For You page is the hottest request there is, and the
    layers it would pass through cost as much as the page read itself."""

    edge: Edge | None = None
    #: `state.backends` while the app runs (an attribute: read on every request).
    backends: Backends | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge, backends = self.edge, self.backends
        if (
            edge is not None
            and backends is not None
            and scope["type"] == "http"
            and await edge.serve_cached_read(scope, backends, send)
        ):
            return
        await super().__call__(scope, receive, send)


def freeze_startup_heap() -> None:
    """Call once, when a server has built its app and opened its backends: what
    exists then (modules, routes, models, clients: ~170k objects) lives as long as
    the process, so the cyclic GC stops walking it. Otherwise every full
    collection walks it all, a 0.1-0.5 s pause that every request in flight waits
    out (the p99 of the cached feed reads)."""
    gc.collect()
    gc.freeze()


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
    served = served_services(chosen)  # a service not built yet has no routes to list
    # Services may share a task (the outbox relay): it runs once per process.
    tasks: dict[str, BackgroundTask] = {task_name(t): t for s in loaded for t in s.background}
    for name in workers or []:
        worker = load_worker(name)
        if worker is not None:
            tasks[name] = worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = backends is None
        app.state.backends = backends or await open_backends(settings)
        if isinstance(app, ReelplaneAPI):
            app.backends = app.state.backends
        # Supervised: a task that fails is logged at once and restarted with
        # backoff, and /readyz reports it until it runs again.
        supervisor = Supervisor(
            tasks if run_background else {},
            Backoff(settings.task_restart_backoff_s, settings.task_restart_max_backoff_s),
        )
        app.state.supervisor = supervisor
        supervisor.start(app.state.backends)
        try:
            yield
        finally:
            await supervisor.stop(timeout_s=15)
            for close in app.state.closers:
                await close()
            if isinstance(app, ReelplaneAPI):
                app.backends = None
            if owned:
                await app.state.backends.close()

    app = ReelplaneAPI(
        title="Reelplane API",
        version=reelplane.__version__,
        description=f"Short-video platform. Served here: {', '.join(served) or 'health only'}.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from install_docs: no CDN
        redoc_url=None,
        # Request ids and structlog access logs are the observability here; FastAPI's
        # OpenTelemetry hooks would only cost a provider lookup on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.mounted_services = chosen
    app.state.closers = []  # async callables run at shutdown (clients a hook opened)
    install_problem_handlers(app)
    # The innermost middleware (added first): what the proxy forwards is limited
    # by the service that reads it.
    install_body_limit(
        app, settings.http_max_body_bytes, [p for s in loaded for p in s.streamed_bodies]
    )
    app.include_router(health_router(served))
    install_docs(app)
    install_home(app, served)
    for service in loaded:
        for router in service.routers:
            app.include_router(router)
        for hook in service.configure:
            hook(app, settings)

    app.edge = install_edge(app, [r for s in loaded for r in s.cached_reads])
    app.add_middleware(RequestIdMiddleware)  # added last: outermost
    return app
