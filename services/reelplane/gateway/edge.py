"""The edge of every service's app: CORS, rate limits, the session check, and
cached reads answered before routing.

One cache round trip (`Cache.gate`) per signed-in request does the IP buckets,
the session lookup, the user's bucket and, for a `CachedRead` route, the page
read. When the session is not in the cache the database resolves it (and
caches it); when the page is not cached the route builds it. Either way the
resolved session is left in the request state, so the `CurrentUser`
dependency does not look the token up again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelplane.auth import (
    Principal,
    ResolvedSession,
    SessionStore,
    bearer_from_header,
    cached_principal,
    session_cache_key,
    token_hash,
)
from reelplane.backends import Backends
from reelplane.errors import TooManyRequests
from reelplane.events.envelope import utc_now
from reelplane.gateway.ratelimit import (
    LIMITED_PREFIX,
    client_ip,
    enforce,
    ip_rules,
    refusal,
    user_rule,
)
from reelplane.gateway.settings import GatewaySettings, load_section
from reelplane.http.problems import header, problem_response
from reelplane.http.services import CachedPlan, CachedRead
from reelplane.ports.cache import USER_PLACEHOLDER
from reelplane.upload.tus import ALLOWED_REQUEST_HEADERS as TUS_REQUEST_HEADERS
from reelplane.upload.tus import EXPOSED_HEADERS as TUS_EXPOSED_HEADERS


class EdgeMiddleware:
    """Pure ASGI middleware in front of the routes (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, settings: GatewaySettings, cached_reads: list[CachedRead]
    ) -> None:
        self.app = app
        self.settings = settings
        self.cached_reads = {r.path: r for r in cached_reads}
        # A plan depends on the query string alone (the user is a placeholder
        # in its keys), and the same few queries come back all the time.
        self.plans = {r.path: functools.lru_cache(maxsize=1024)(_planner(r)) for r in cached_reads}
        self.limits = settings.rate_limits_enabled
        self.user_bucket = user_rule(USER_PLACEHOLDER, settings) if self.limits else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            answered = await self._gate(scope, send)
        except TooManyRequests as exc:
            response = problem_response(
                Request(scope), exc.status, exc.slug, exc.title, exc.detail, headers=exc.headers
            )
            await response(scope, receive, send)
            return
        if not answered:
            await self.app(scope, receive, send)

    async def _gate(self, scope: Scope, send: Send) -> bool:
        """Draw the buckets and resolve the session; True when a cached read
        has already been answered."""
        backends: Backends = scope["app"].state.backends
        buckets = []
        if self.limits:
            peer = scope.get("client")
            ip = client_ip(
                peer[0] if peer else None,
                header(scope, b"x-forwarded-for"),
                self.settings.trusted_proxy_hops,
            )
            buckets = ip_rules(ip, scope["method"], scope["path"], self.settings)
        token = bearer_from_header(header(scope, b"authorization") or "")
        if token is None:
            if not buckets:
                return False
            outcome = await backends.cache.gate(buckets)
            if outcome.refused is not None:
                raise refusal(outcome.refused, outcome.retry_after_s)
            return False
        digest = token_hash(token)
        cached = self.cached_reads.get(scope["path"]) if scope["method"] == "GET" else None
        plan: CachedPlan | None = None
        if cached is not None:
            plan = self.plans[cached.path](scope["query_string"])
        outcome = await backends.cache.gate(
            buckets,
            principal_key=session_cache_key(digest),
            user_bucket=self.user_bucket,
            reads=plan.keys if plan is not None else None,
        )
        if outcome.refused is not None:
            raise refusal(outcome.refused, outcome.retry_after_s)
        principal: Principal | None = None
        if outcome.principal is not None:
            principal = cached_principal(outcome.principal, utc_now())
        if principal is None:
            # Not in the cache (or unreadable): the database decides, then the
            # user's bucket is drawn on its own.
            principal = await SessionStore(backends).resolve(token)
            if principal is not None and self.limits:
                await enforce(backends, user_rule(principal.user_id, self.settings))
        elif plan is not None and cached is not None:
            body = plan.answer(outcome.values)
            if body is not None:
                await _send_body(send, body, cached.media_type)
                return True
        scope.setdefault("state", {})["session"] = ResolvedSession(digest, principal)
        return False


class EdgeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a short way through for a request that carries no
    Origin (not a CORS request: mobile apps, curl, same-origin pages). Starlette
    would parse every header to learn that, then add only `Vary: Origin` to the
    response, which is all this does for such a request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and header(scope, b"origin") is None:
            await self.app(scope, receive, functools.partial(_vary_on_origin, send))
            return
        await super().__call__(scope, receive, send)


async def _vary_on_origin(send: Send, message: Message) -> None:
    if message["type"] == "http.response.start":
        headers = list(message.get("headers", ()))
        for i, (name, value) in enumerate(headers):
            if name.lower() == b"vary":
                headers[i] = (name, value + b", Origin")
                break
        else:
            headers.append((b"vary", b"Origin"))
        message["headers"] = headers
    await send(message)


def _planner(cached: CachedRead) -> Callable[[bytes], CachedPlan | None]:
    def plan(query_string: bytes) -> CachedPlan | None:
        return cached.plan(QueryParams(query_string))

    return plan


async def _send_body(send: Send, body: bytes, media_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", media_type.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_edge(app: FastAPI, cached_reads: list[CachedRead]) -> None:
    """Mount the edge on an app: the gate inside, CORS outside it (so refusals,
    401 and 429, carry CORS headers too and a browser can read them)."""
    gateway = load_section(GatewaySettings)
    app.state.gateway_settings = gateway
    app.add_middleware(EdgeMiddleware, settings=gateway, cached_reads=cached_reads)
    app.add_middleware(
        EdgeCORSMiddleware,
        allow_origins=gateway.cors_allowed_origins,
        # tus clients in browsers need HEAD, the Upload-*/Tus-* request headers
        # and to read the tus response headers (offset, location).
        allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=sorted(
            {"authorization", "content-type", "x-request-id"}
            | {h.lower() for h in TUS_REQUEST_HEADERS}
        ),
        expose_headers=["x-request-id", "retry-after", *TUS_EXPOSED_HEADERS],
        allow_credentials=False,  # bearer tokens, not cookies
        max_age=600,
    )
