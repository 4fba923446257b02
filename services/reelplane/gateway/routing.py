"""Gateway routing: which service owns a request, and where that service runs.

The route table is built from the services' own routers (the same code serves
them), so the gateway never keeps a second list of paths that could drift.
Pure: no I/O here; `reelplane.gateway.proxy` does the forwarding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from reelplane.feed.shards import shard_of
from reelplane.gateway.settings import GatewaySettings
from reelplane.http.services import load_service


@dataclass(frozen=True)
class RouteTable:
    """Routes and the service each belongs to, in mounting order."""

    routes: tuple[tuple[BaseRoute, str], ...]

    @classmethod
    def of_services(cls, names: Iterable[str]) -> RouteTable:
        return cls(
            tuple(
                (route, name)
                for name in names
                for router in load_service(name).routers
                for route in router.routes
            )
        )

    def owner(self, method: str, path: str, *, websocket: bool = False) -> str | None:
        """The service whose route matches; for a path matched with another method
        only, that route's service (it answers 405); None when nobody has the path.
        With `websocket`, only WebSocket routes match (the method is ignored)."""
        scope: Scope = (
            {"type": "websocket", "path": path, "root_path": ""}
            if websocket
            else {"type": "http", "method": method, "path": path, "root_path": ""}
        )
        partial: str | None = None
        for route, name in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return name
            if match is Match.PARTIAL and partial is None:
                partial = name
        return partial


def upstream_url(service: str, user_id: str | None, settings: GatewaySettings) -> str | None:
    """Base URL of the replica set that serves `service` for this caller: the
    caller's feed shard for the feed (shard 0 for anonymous calls, which the
    feed refuses anyway), else the service's URL; None when not configured."""
    shards = settings.feed_shard_urls
    if service == "feed" and shards:
        return shards[shard_of(user_id, len(shards)) if user_id else 0]
    return settings.service_urls.get(service)
