"""Rate limits: token buckets in the cache, per client IP and per signed-in user.

The policy (which buckets a request draws from) is pure; the bucket arithmetic is
the cache port's `take_tokens` (one atomic script on Redis). The middleware runs
before routing, so a refused request costs one cache round trip per bucket and
never reaches a handler or the database.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from reelplane.auth import ResolvedSession, SessionStore, bearer_token, token_hash
from reelplane.backends import Backends
from reelplane.errors import TooManyRequests
from reelplane.gateway.settings import GatewaySettings
from reelplane.http.problems import problem_response

#: Paths under this prefix are limited (health checks and API docs are not).
LIMITED_PREFIX = "/v1/"
#: Endpoints that check a password: limited per IP much more tightly.
AUTH_PATHS = frozenset({"/v1/accounts", "/v1/sessions"})


@dataclass(frozen=True)
class BucketRule:
    """One token bucket: `burst` tokens at most, refilled at `per_s` tokens/s."""

    key: str
    burst: float
    per_s: float


def client_ip(peer: str | None, forwarded_for: str | None, trusted_hops: int) -> str:
    """The client's address: the socket peer, or with `trusted_hops` proxies in
    front, the entry that many hops from the right of X-Forwarded-For (the
    entries left of it are whatever the client wrote, so they are not trusted)."""
    if trusted_hops > 0 and forwarded_for:
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if hops:
            return hops[max(0, len(hops) - trusted_hops)]
    return peer or "unknown"


def ip_rules(ip: str, method: str, path: str, settings: GatewaySettings) -> list[BucketRule]:
    """Buckets a request draws from before anyone is known: per IP, plus the
    tight sign-up/log-in bucket for password-checking endpoints."""
    rules = [BucketRule(f"rl:ip:{ip}", settings.rate_limit_ip_burst, settings.rate_limit_ip_per_s)]
    if method == "POST" and path in AUTH_PATHS:
        rules.append(
            BucketRule(
                f"rl:auth:{ip}", settings.rate_limit_auth_burst, settings.rate_limit_auth_per_s
            )
        )
    return rules


def user_rule(user_id: str, settings: GatewaySettings) -> BucketRule:
    """The signed-in user's bucket (shared by all their sessions and devices)."""
    return BucketRule(
        f"rl:user:{user_id}", settings.rate_limit_user_burst, settings.rate_limit_user_per_s
    )


def retry_after_header_s(wait_s: float) -> int:
    """Retry-After is whole seconds: round up, at least 1."""
    return max(1, math.ceil(wait_s))


async def enforce(backends: Backends, rule: BucketRule) -> None:
    """Take one token from the rule's bucket or raise TooManyRequests (429)."""
    decision = await backends.cache.take_tokens(
        rule.key, capacity=rule.burst, refill_per_s=rule.per_s
    )
    if not decision.allowed:
        kind = rule.key.split(":", 2)[1]
        raise TooManyRequests(
            f"too many requests ({kind} limit); retry later",
            retry_after_header_s(decision.retry_after_s),
        )


class RateLimitMiddleware:
    """Pure ASGI middleware: IP buckets, then (with a valid bearer token) the
    user's bucket. The resolved session is left in the request state, so the
    `CurrentUser` dependency does not look the token up a second time."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        backends: Backends = request.app.state.backends
        ip = client_ip(
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-for"),
            self.settings.trusted_proxy_hops,
        )

        async def ip_limits() -> None:
            for rule in ip_rules(ip, request.method, scope["path"], self.settings):
                await enforce(backends, rule)

        try:
            token = bearer_token(request)
            if token is None:
                await ip_limits()
            else:
                # The IP check and the session lookup are independent: one round trip of wait.
                _, principal = await asyncio.gather(
                    ip_limits(), SessionStore(backends).resolve(token)
                )
                request.state.session = ResolvedSession(token_hash(token), principal)
                if principal is not None:
                    await enforce(backends, user_rule(principal.user_id, self.settings))
        except TooManyRequests as exc:
            response = problem_response(
                request, exc.status, exc.slug, exc.title, exc.detail, headers=exc.headers
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
