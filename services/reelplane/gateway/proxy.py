"""The gateway's forwarding of requests to the services that own them.

Runs inside the edge, so a forwarded request has passed the rate limits and
its session is resolved (the feed shard is chosen by that user). Bodies stream
both ways (tus PATCHes, byte ranges), never held whole. The client's Host goes
upstream unchanged, so URLs a service builds (tus `Location`) point at the
gateway; the request id and X-Forwarded-For/Proto go along.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

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


#: Handshake headers of one WebSocket connection (RFC 6455, 4.1), never forwarded.
WEBSOCKET_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)


def returned_response_headers(headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
    """The upstream response's headers as sent to the client (pure): the gateway
    sets its own request id, and connection headers are its own."""
    return [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in headers.multi_items()
        if k.lower() not in HOP_BY_HOP and k.lower() != "x-request-id"
    ]


def upstream_target(base: str, scope: Scope) -> str:
    """The upstream URL of a request: `base` + the request's raw path and query (pure)."""
    query = scope.get("query_string", b"").decode("latin-1")
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
    return base.rstrip("/") + raw_path.decode("latin-1") + (f"?{query}" if query else "")


def websocket_request_headers(forwarded: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Forwarded headers fit for the upstream WebSocket handshake (pure): the
    client library writes its own Host, key, version, extensions and subprotocols."""
    return [(k, v) for k, v in forwarded if k not in WEBSOCKET_HANDSHAKE and k != "host"]


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
            self.table.owner(scope["method"], scope["path"])
            if scope["type"] == "http"
            else self.table.owner("GET", scope["path"], websocket=True)
            if scope["type"] == "websocket"
            else None
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
        if scope["type"] == "websocket":
            await forward_websocket(base, scope, receive, send, self._forwarded_headers(scope))
            return
        try:
            if base is None:
                raise UpstreamUnavailable(f"no address is configured for the {service} service")
            await self._forward(base, scope, receive, send)
        except ReelplaneError as exc:
            response = problem_response(Request(scope), exc.status, exc.slug, exc.title, exc.detail)
            await response(scope, receive, send)

    def _forwarded_headers(self, scope: Scope) -> list[tuple[str, str]]:
        headers = Headers(scope=scope)
        peer = scope.get("client")
        client = client_ip(
            peer[0] if peer else None,
            headers.get("x-forwarded-for"),
            self.settings.trusted_proxy_hops,
        )
        request_id = scope.get("state", {}).get("request_id")
        return forwarded_request_headers(headers, client, scope.get("scheme", "http"), request_id)

    async def _forward(self, base: str, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        url = upstream_target(base, scope)

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
            headers=self._forwarded_headers(scope),
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


async def forward_websocket(
    base: str | None,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: list[tuple[str, str]],
) -> None:
    """Relay one WebSocket to `base`'s service: the handshake (subprotocols
    offered, the one chosen), then frames both ways, and the close code either
    side ends with. The client is accepted only once the service has accepted;
    a service that does not answer or refuses is an HTTP answer to the handshake
    (502 problem+json, or the service's own status). Backpressure holds end to
    end: a client that reads slowly stalls this relay's reads from the service,
    whose bounded queues then drop it (4429)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    url = "ws" + upstream_target(base, scope).removeprefix("http") if base else ""
    try:
        if not base:
            raise UpstreamUnavailable("no address is configured for this WebSocket's service")
        upstream = await connect(
            url,
            subprotocols=[Subprotocol(p) for p in scope.get("subprotocols", ())] or None,
            additional_headers=websocket_request_headers(headers),
            user_agent_header=None,  # the client's own goes along
            compression=None,  # one hop inside the cluster: spend no CPU on it
            proxy=None,
            open_timeout=10,
        )
    except InvalidStatus as exc:
        status, body = exc.response.status_code, exc.response.body or b""
        kind = exc.response.headers.get("content-type", "text/plain")
        await _refuse(scope, send, status, bytes(body), kind)
        return
    except (OSError, TimeoutError, InvalidHandshake, UpstreamUnavailable) as exc:
        detail = (
            exc.detail
            if isinstance(exc, UpstreamUnavailable)
            else f"{base} did not answer ({type(exc).__name__})"
        )
        err = UpstreamUnavailable(detail)
        problem = problem_response(
            HTTPConnection(scope), err.status, err.slug, err.title, err.detail
        )
        await _refuse(scope, send, err.status, bytes(problem.body), "application/problem+json")
        return
    async with upstream:
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

        async def to_upstream() -> None:
            while True:
                m = await receive()
                if m["type"] == "websocket.disconnect":
                    code = m.get("code", 1000)
                    with contextlib.suppress(Exception):
                        await upstream.close(code if _sendable(code) else 1000)
                    return
                if m.get("text") is not None:
                    await upstream.send(m["text"])
                elif m.get("bytes") is not None:
                    await upstream.send(m["bytes"])

        async def to_client() -> None:
            try:
                async for frame in upstream:
                    if isinstance(frame, str):
                        await send({"type": "websocket.send", "text": frame})
                    else:
                        await send({"type": "websocket.send", "bytes": frame})
            except ConnectionClosed:
                pass
            code = upstream.close_code
            with contextlib.suppress(Exception):  # the client may be gone already
                await send(
                    {
                        "type": "websocket.close",
                        "code": code if code is not None and _sendable(code) else 1011,
                        "reason": upstream.close_reason or "",
                    }
                )

        tasks = [asyncio.create_task(to_upstream()), asyncio.create_task(to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _sendable(code: int) -> bool:
    """Whether a close code may appear in a close frame (RFC 6455, 7.4)."""
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


async def _refuse(scope: Scope, send: Send, status: int, body: bytes, kind: str) -> None:
    """Answer the handshake with an HTTP response where the server can (the
    ASGI WebSocket Denial Response extension), else close it (403)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1011})
        return
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"content-type", kind.encode("latin-1"))],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


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
