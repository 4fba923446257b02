"""The gateway's forwarding of requests to the services that own them.

Runs inside the edge, so a forwarded request has passed the rate limits and
its session is resolved (the feed shard is chosen by that user). Bodies stream
both ways (tus PATCHes, byte ranges), never held whole. The client's Host goes
upstream unchanged, so URLs a service builds (tus `Location`) point at the
gateway; the request id and X-Forwarded-For/Proto go along.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelplane.auth import ResolvedSession
from reelplane.errors import ReelplaneError, UpstreamUnavailable
from reelplane.gateway.routing import RouteTable, upstream_url
from reelplane.gateway.settings import GatewaySettings
from reelplane.http.problems import problem_response
from reelplane.http.ratelimit import client_ip
from reelplane.http.services import SERVICES

#: Headers that belong to one connection, not to the request (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def forwarded_request_headers(
    headers: Headers, client: str, scheme: str, request_id: str | None
) -> list[tuple[str, str]]:
    """The request's headers as sent upstream (pure)."""
    out = [(k, v) for k, v in headers.items() if k not in HOP_BY_HOP and k != "x-forwarded-for"]
    prior = headers.get("x-forwarded-for")
    out.append(("x-forwarded-for", f"{prior}, {client}" if prior else client))
    if "x-forwarded-proto" not in headers:
        out.append(("x-forwarded-proto", scheme))
    if request_id and "x-request-id" not in headers:
        out.append(("x-request-id", request_id))
    return out


def returned_response_headers(headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
    """The upstream response's headers as sent to the client (pure): the gateway
    sets its own request id, and connection headers are its own."""
    return [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in headers.multi_items()
        if k.lower() not in HOP_BY_HOP and k.lower() != "x-request-id"
    ]


class ProxyMiddleware:
    """Forward requests owned by services not mounted in this process."""

    def __init__(
        self,
        app: ASGIApp,
        settings: GatewaySettings,
        mounted: list[str],
        client: httpx.AsyncClient,
    ) -> None:
        self.app = app
        self.settings = settings
        self.table = RouteTable.of_services(s for s in SERVICES if s not in mounted)
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = (
            self.table.owner(scope["method"], scope["path"]) if scope["type"] == "http" else None
        )
        if service is None:
            await self.app(scope, receive, send)
            return
        session = scope.get("state", {}).get("session")
        user_id = (
            session.principal.user_id
            if isinstance(session, ResolvedSession) and session.principal is not None
            else None
        )
        base = upstream_url(service, user_id, self.settings)
        try:
            if base is None:
                raise UpstreamUnavailable(f"no address is configured for the {service} service")
            await self._forward(base, scope, receive, send)
        except ReelplaneError as exc:
            response = problem_response(Request(scope), exc.status, exc.slug, exc.title, exc.detail)
            await response(scope, receive, send)

    async def _forward(self, base: str, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        peer = scope.get("client")
        client = client_ip(
            peer[0] if peer else None,
            headers.get("x-forwarded-for"),
            self.settings.trusted_proxy_hops,
        )
        query = scope.get("query_string", b"").decode("latin-1")
        raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
        url = base.rstrip("/") + raw_path.decode("latin-1") + (f"?{query}" if query else "")
        request_id = scope.get("state", {}).get("request_id")

        async def body() -> AsyncIterator[bytes]:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    return
                if chunk := message.get("body", b""):
                    yield chunk
                if not message.get("more_body", False):
                    return

        has_body = "content-length" in headers or "transfer-encoding" in headers
        request = self.client.build_request(
            scope["method"],
            url,
            headers=forwarded_request_headers(
                headers, client, scope.get("scheme", "http"), request_id
            ),
            content=body() if has_body else None,
        )
        try:
            upstream = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"{base} did not answer ({type(exc).__name__})") from None
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": upstream.status_code,
                    "headers": returned_response_headers(upstream.headers),
                }
            )
            async for chunk in upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await upstream.aclose()


def install_proxy(app: FastAPI, settings: GatewaySettings, mounted: list[str]) -> None:
    """Forward what this process does not serve, when addresses are configured."""
    if not settings.service_urls and not settings.feed_shard_urls:
        return
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.upstream_timeout_s, connect=5.0),
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
    )
    app.state.closers.append(client.aclose)
    app.add_middleware(ProxyMiddleware, settings=settings, mounted=mounted, client=client)
