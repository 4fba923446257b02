"""Wide-row tables a service reads from its request handlers, created once per app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from reelplane.backends import Backends
from reelplane.ports.widerow import WideTable


async def ensure_tables_once(request: Request, tables: list[WideTable]) -> None:
    """Create the tables (idempotent) the first time a handler of this app needs
    them; consumers create them too, but a read may come first."""
    state = request.app.state
    done: set[str] = getattr(state, "widerow_tables_ready", set())
    missing = [t for t in tables if t.name not in done]
    if missing:
        backends: Backends = state.backends
        await backends.widerow.ensure_tables(missing)
        state.widerow_tables_ready = done | {t.name for t in missing}


def tables_ready(tables: list[WideTable]) -> Callable[[Request], Awaitable[None]]:
    """A route dependency (`dependencies=[Depends(tables_ready(...))]`) that
    ensures `tables` once per app before the handler reads them."""

    async def dependency(request: Request) -> None:
        await ensure_tables_once(request, tables)

    return dependency
