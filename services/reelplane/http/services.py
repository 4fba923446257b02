"""How a service plugs into the app: routers plus background tasks.

Each service package `reelplane.<name>` that exists exposes `SERVICE` in its
`api` module. `reelplane dev` mounts all of them (and every worker) in one
process; `reelplane serve <name>` mounts one, as its Deployment does.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI

from reelplane.backends import Backends
from reelplane.ports.gate import Expansion
from reelplane.settings import Settings

#: A long-running task (a consumer, a worker loop) that stops when the event is set.
BackgroundTask = Callable[[Backends, asyncio.Event], Coroutine[Any, Any, None]]

#: Called once on the app a service is mounted in (e.g. to add middleware).
AppHook = Callable[[FastAPI, Settings], None]

#: The services of ARCHITECTURE.md, in routing order.
SERVICES = ("gateway", "upload", "engagement", "graph", "feed", "notify", "search")

#: Workers outside the services: name -> "module:attribute" of a BackgroundTask.
WORKERS: dict[str, str] = {
    "transcode": "reelplane_transcode.worker:run_worker",
    # The in-process recommender, when REELPLANE_RECOMMENDER_URL=embedded: (dev's default).
    "recommender": "reelplane_ml.embedded:run_embedded",
}


@dataclass(frozen=True)
class CachedPlan:
    """How to answer one request from the cache: the keys to read (with
    `reelplane.ports.gate.USER_PLACEHOLDER` for the caller's user id), more
    keys one of their values names (`expand`, read in the same round trip) and
    a function from all their values to the response body, or None when the
    cache cannot answer (the route then does)."""

    keys: list[str]
    answer: Callable[[tuple[bytes | None, ...]], bytes | None]
    expand: Expansion | None = None


@dataclass(frozen=True)
class CachedRead:
    """A signed-in GET that the edge answers from the cache before routing, in
    the same cache round trip that checks the session and the rate limits.
    `plan` gets the query parameters and returns None for any query it does not
    serve (the route answers those, errors included). Its answers must be the
    bytes the route would return (`media_type`, status 200)."""

    path: str
    plan: Callable[[Mapping[str, str]], CachedPlan | None]
    media_type: str = "application/json"


@dataclass(frozen=True)
class Service:
    name: str
    routers: list[APIRouter] = field(default_factory=list)
    background: list[BackgroundTask] = field(default_factory=list)
    configure: list[AppHook] = field(default_factory=list)
    cached_reads: list[CachedRead] = field(default_factory=list)
    #: Path prefixes whose routes stream request bodies under limits of their
    #: own (tus uploads), exempt from the JSON API's body limit.
    streamed_bodies: list[str] = field(default_factory=list)


def load_service(name: str) -> Service:
    """The service's routers and tasks; a service not built yet has neither."""
    module_name = f"reelplane.{name}.api"
    if importlib.util.find_spec(f"reelplane.{name}") is None:
        return Service(name)
    if importlib.util.find_spec(module_name) is None:
        return Service(name)
    service = importlib.import_module(module_name).SERVICE
    if not isinstance(service, Service):
        raise TypeError(f"{module_name}.SERVICE is not a Service")
    return service


def load_worker(name: str) -> BackgroundTask | None:
    """A worker's task, or None when its package is not built yet."""
    module_name, _, attr = WORKERS[name].partition(":")
    if importlib.util.find_spec(module_name) is None:
        return None
    task: BackgroundTask = getattr(importlib.import_module(module_name), attr)
    return task


def served_services(names: list[str]) -> list[str]:
    """The services among `names` that serve routes (one not built yet has none),
    in the same order: what the start banner and the API description list."""
    return [name for name in names if load_service(name).routers]
