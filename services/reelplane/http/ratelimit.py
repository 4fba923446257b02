"""Rate limits: token buckets in the cache, per client IP and per signed-in user.

The policy (which buckets a request draws from) is pure; the bucket arithmetic is
the gate port's (one atomic script on Redis). The edge middleware
(`reelplane.http.edge`) draws the buckets before routing, so a refused request
never reaches a handler or the database.
"""

from __future__ import annotations

import math

from reelplane.backends import Backends
from reelplane.errors import TooManyRequests
from reelplane.http.settings import EdgeSettings
from reelplane.ports.gate import Bucket

#: Paths under this prefix are limited (health checks and API docs are not).
LIMITED_PREFIX = "/v1/"
#: Endpoints that check a password: limited per IP much more tightly.
AUTH_PATHS = frozenset({"/v1/accounts", "/v1/sessions"})


def client_ip(peer: str | None, forwarded_for: str | None, trusted_hops: int) -> str:
    """The client's address: the socket peer, or with `trusted_hops` proxies in
    front, the entry that many hops from the right of X-Forwarded-For (the
    entries left of it are whatever the client wrote, so they are not trusted)."""
    if trusted_hops > 0 and forwarded_for:
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if hops:
            return hops[max(0, len(hops) - trusted_hops)]
    return peer or "unknown"


def ip_rules(ip: str, method: str, path: str, settings: EdgeSettings) -> list[Bucket]:
    """Buckets a request draws from before anyone is known: per IP, plus the
    tight sign-up/log-in bucket for password-checking endpoints."""
    rules = [Bucket(f"rl:ip:{ip}", settings.rate_limit_ip_burst, settings.rate_limit_ip_per_s)]
    if method == "POST" and path in AUTH_PATHS:
        rules.append(
            Bucket(f"rl:auth:{ip}", settings.rate_limit_auth_burst, settings.rate_limit_auth_per_s)
        )
    return rules


def user_rule(user_id: str, settings: EdgeSettings) -> Bucket:
    """The signed-in user's bucket (shared by all their sessions and devices)."""
    return Bucket(
        f"rl:user:{user_id}", settings.rate_limit_user_burst, settings.rate_limit_user_per_s
    )


def retry_after_header_s(wait_s: float) -> int:
    """Retry-After is whole seconds: round up, at least 1."""
    return max(1, math.ceil(wait_s))


def refusal(bucket_key: str, retry_after_s: float) -> TooManyRequests:
    """The 429 for a refused bucket (its kind, e.g. `ip` or `user`, in the message)."""
    kind = bucket_key.split(":", 2)[1] if bucket_key.count(":") >= 2 else "rate"
    return TooManyRequests(
        f"too many requests ({kind} limit); retry later", retry_after_header_s(retry_after_s)
    )


async def enforce(backends: Backends, rule: Bucket) -> None:
    """Take one token from the rule's bucket or raise TooManyRequests (429)."""
    decision = await backends.gate.take_tokens(
        rule.key, capacity=rule.capacity, refill_per_s=rule.refill_per_s
    )
    if not decision.allowed:
        raise refusal(rule.key, decision.retry_after_s)
