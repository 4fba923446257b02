"""The edge of every service's app: rate limits, the session check, and
cached reads answered before routing (its CORS policy: `reelplane.http.cors`).

One round trip to the gate (`Gate.admit`) per signed-in request does the IP buckets,
the session lookup, the user's bucket and, for a `CachedRead` route, the page
read (with what the page names: its videos' counters).
When the session is not in the cache the database resolves it (and caches
it); when the page is not cached the route builds it. Either way the resolved
session is left in the request state, so the `CurrentUser` dependency does not
look the token up again.

Two ways in. `EdgeMiddleware` runs inside the app's middleware (request id,
CORS), so its refusals carry those headers. Before all of it, the app asks
`Edge.serve_cached_read` to answer the hottest request, a cached page for a
signed-in client without Origin, from that same round trip: its layers would
cost as much CPU as the read. What it cannot answer goes the full way, with
what the gate found kept in the scope.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import NamedTuple

from fastapi import FastAPI
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

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
from reelplane.http.access import log_access, request_id_of
from reelplane.http.cors import install_cors
from reelplane.http.problems import header, problem_response
from reelplane.http.ratelimit import (
    LIMITED_PREFIX,
    client_ip,
    enforce,
    ip_rules,
    refusal,
    user_rule,
)
from reelplane.http.services import CachedPlan, CachedRead
from reelplane.http.settings import EdgeSettings
from reelplane.ports.gate import USER_PLACEHOLDER, GateOutcome
from reelplane.settings import load_section


class _Drawn(NamedTuple):
    """What the gate found for a request (`outcome` None: nothing to draw)."""

    token: str | None
    digest: str | None  # the token's hash, the session's name in the cache
    cached: CachedRead | None
    plan: CachedPlan | None
    outcome: GateOutcome | None


#: Where a request handed on by `Edge.serve_cached_read` keeps what the gate
#: found, so the middleware does not draw the buckets a second time.
_DRAWN = "edge_drawn"


class Edge:
    """The edge's rules for one app (see the module docstring)."""

    def __init__(self, settings: EdgeSettings, cached_reads: list[CachedRead]) -> None:
        self.settings = settings
        self.cached_reads = {r.path: r for r in cached_reads}
        # A plan depends on the query string alone (the user is a placeholder
        # in its keys), and the same few queries come back all the time.
        self.plans = {r.path: functools.lru_cache(maxsize=1024)(_planner(r)) for r in cached_reads}
        self.limits = settings.rate_limits_enabled
        self.user_bucket = user_rule(USER_PLACEHOLDER, settings) if self.limits else None

    async def _draw(
        self, scope: Scope, backends: Backends, authorization: str | None, forwarded: str | None
    ) -> _Drawn:
        """The one gate round trip: IP buckets, session, user bucket, page
        (with the request's Authorization and X-Forwarded-For headers)."""
        buckets = []
        if self.limits:
            peer = scope.get("client")
            ip = client_ip(peer[0] if peer else None, forwarded, self.settings.trusted_proxy_hops)
            buckets = ip_rules(ip, scope["method"], scope["path"], self.settings)
        token = bearer_from_header(authorization or "")
        if token is None:
            outcome = await backends.gate.admit(buckets) if buckets else None
            return _Drawn(None, None, None, None, outcome)
        cached = self.cached_reads.get(scope["path"]) if scope["method"] == "GET" else None
        plan = self.plans[cached.path](scope["query_string"]) if cached is not None else None
        outcome = await backends.gate.admit(
            buckets,
            principal_key=session_cache_key(digest := token_hash(token)),
            user_bucket=self.user_bucket,
            reads=plan.keys if plan is not None else None,
            expand=plan.expand if plan is not None else None,
        )
        return _Drawn(token, digest, cached, plan, outcome)

    async def serve_cached_read(self, scope: Scope, backends: Backends, send: Send) -> bool:
        """Answer a signed-in GET of a cached read straight from the cache,
        before the app's middleware (a request with an Origin, a CORS request,
        takes the full way for its CORS headers). Anything else, a page not in
        the cache, a refusal, a session to look up, returns False and goes the
        full way, which reuses what the gate found."""
        if scope["method"] != "GET" or scope["path"] not in self.cached_reads:
            return False
        authorization = forwarded = None
        for name, value in scope["headers"]:  # one pass; the first of each, as `header`
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"x-forwarded-for" and forwarded is None:
                forwarded = value.decode("latin-1")
            elif name == b"origin":
                return False
        started = time.perf_counter()
        try:
            drawn = await self._draw(scope, backends, authorization, forwarded)
        except Exception:
            return False  # the full way draws again and answers the error properly
        principal = _principal(drawn)
        body = _cached_body(drawn) if principal is not None else None
        if body is None or drawn.cached is None:
            scope.setdefault("state", {})[_DRAWN] = drawn
            return False
        await _send_body(
            send,
            body,
            drawn.cached.media_type,
            extra=[(b"vary", b"Origin"), (b"x-request-id", request_id_of(scope).encode())],
        )
        log_access(scope, 200, started)
        return True

    async def gate(self, scope: Scope, backends: Backends, send: Send) -> bool:
        """Draw the buckets and resolve the session (429 as TooManyRequests);
        True when a cached read has already been answered."""
        drawn = scope.get("state", {}).pop(_DRAWN, None) or await self._draw(
            scope, backends, header(scope, b"authorization"), header(scope, b"x-forwarded-for")
        )
        outcome = drawn.outcome
        if outcome is not None and outcome.refused is not None:
            raise refusal(outcome.refused, outcome.retry_after_s)
        if drawn.token is None or drawn.digest is None:
            return False
        principal = _principal(drawn)
        if principal is None:
            # Not in the cache (or unreadable): the database decides, then the
            # user's bucket is drawn on its own.
            principal = await SessionStore(backends).resolve(drawn.token)
            if principal is not None and self.limits:
                await enforce(backends, user_rule(principal.user_id, self.settings))
        elif drawn.cached is not None and (body := _cached_body(drawn)) is not None:
            await _send_body(send, body, drawn.cached.media_type)
            return True
        scope.setdefault("state", {})["session"] = ResolvedSession(drawn.digest, principal)
        return False


def _principal(drawn: _Drawn) -> Principal | None:
    """The session's principal as the gate read it from the cache (None: not
    cached, unreadable or expired)."""
    raw = drawn.outcome.principal if drawn.outcome is not None else None
    return cached_principal(raw, utc_now()) if raw is not None else None


def _cached_body(drawn: _Drawn) -> bytes | None:
    """The cached read's bytes, when the gate let the request through and the
    page was in the cache."""
    if drawn.plan is None or drawn.outcome is None or drawn.outcome.refused is not None:
        return None
    return drawn.plan.answer(drawn.outcome.values)


class EdgeMiddleware:
    """Pure ASGI middleware in front of the routes: the `Edge`'s gate."""

    def __init__(self, app: ASGIApp, edge: Edge) -> None:
        self.app = app
        self.edge = edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            answered = await self.edge.gate(scope, scope["app"].state.backends, send)
        except TooManyRequests as exc:
            response = problem_response(
                Request(scope), exc.status, exc.slug, exc.title, exc.detail, headers=exc.headers
            )
            await response(scope, receive, send)
            return
        if not answered:
            await self.app(scope, receive, send)


def _planner(cached: CachedRead) -> Callable[[bytes], CachedPlan | None]:
    def plan(query_string: bytes) -> CachedPlan | None:
        return cached.plan(QueryParams(query_string))

    return plan


async def _send_body(
    send: Send, body: bytes, media_type: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", media_type.encode()),
                *(extra or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_edge(app: FastAPI, cached_reads: list[CachedRead]) -> Edge:
    """Mount the edge on an app: the gate inside, CORS outside it (so refusals,
    401 and 429, carry CORS headers too and a browser can read them). Returns
    the `Edge`, whose `serve_cached_read` the app calls before its middleware."""
    settings = load_section(EdgeSettings)
    edge = Edge(settings, cached_reads)
    app.add_middleware(EdgeMiddleware, edge=edge)
    install_cors(app, settings.cors_allowed_origins)
    return edge
