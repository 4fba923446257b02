"""The dependencies every service's handlers are given, declared once.

Handlers name what they need as a parameter, `backends: BackendsDep`, and
FastAPI injects it; nothing reaches into `request.app.state` by hand. What a
service builds once per app (its settings section, a client) comes from
`per_app`: made on first use, kept for the app's lifetime, one per app (tests
run several apps in one process, each with its own environment).

The dependencies are coroutines: FastAPI would run a plain function in a
thread pool, a hop per request for what is one attribute read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from pydantic_settings import BaseSettings

from reelplane.backends import Backends
from reelplane.settings import Settings, load_section

T = TypeVar("T")
S = TypeVar("S", bound=BaseSettings)


async def app_backends(request: Request) -> Backends:
    """The backends the app opened at startup (`state.backends`)."""
    backends: Backends = request.app.state.backends
    return backends


async def app_settings(request: Request) -> Settings:
    """The core settings the app was made with."""
    settings: Settings = request.app.state.settings
    return settings


BackendsDep = Annotated[Backends, Depends(app_backends)]
SettingsDep = Annotated[Settings, Depends(app_settings)]


def per_app(name: str, build: Callable[[Request], T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency whose value `build` makes once per app, on first use, and
    keeps in the app's state under `name`."""

    async def dependency(request: Request) -> T:
        state = request.app.state
        if not hasattr(state, name):  # a test may have set it (or None) beforehand
            setattr(state, name, build(request))
        value: T = getattr(state, name)
        return value

    dependency.__name__ = f"per_app_{name}"
    return dependency


def section(cls: type[S]) -> Callable[[Request], Awaitable[S]]:
    """A dependency for one settings section (`load_section(cls)`), read from
    the environment once per app."""
    return per_app(f"section_{cls.__name__}", lambda _request: load_section(cls))
