"""Sessions and the one authentication dependency every service uses.

Tokens are opaque random strings. The relational store (the strongly consistent
tier) is the source of truth; the cache holds resolved sessions for
`SESSION_CACHE_TTL_S` so most requests never reach the database. Revocation
writes the database first, then deletes the cache entry, so it takes effect at
once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select, update

from reelplane.backends import Backends
from reelplane.errors import Forbidden, Unauthorized
from reelplane.events.envelope import utc_now
from reelplane.schema import sessions, users

SESSION_TTL = timedelta(days=30)
SESSION_CACHE_TTL_S = 300.0


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    handle: str


def ensure_owner(principal: Principal, owner_id: str, what: str) -> None:
    """Forbidden unless the caller owns the thing (`what` names it in the message)."""
    if principal.user_id != owner_id:
        raise Forbidden(f"only the owner may change this {what}")


@dataclass(frozen=True)
class ResolvedSession:
    """A bearer token already looked up in this request (by the gateway's rate
    limiter), kept in `request.state.session` so it is resolved once."""

    token_hash: str
    principal: Principal | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_cache_key(digest: str) -> str:
    """Where the cache holds a resolved session: a JSON object with `user_id`,
    `handle` and `expires_at` (the shape `Cache.gate` reads a principal in)."""
    return f"session:{digest}"


@functools.lru_cache(maxsize=4096)
def _decode_cached_session(raw: bytes) -> tuple[Principal, datetime] | None:
    """A cached session's principal and expiry; None when malformed. Memoized:
    an active user's session comes back on every request, byte for byte."""
    try:
        data = json.loads(raw)
        principal = Principal(data["user_id"], data["handle"])
        expires_at = datetime.fromisoformat(data["expires_at"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires_at.tzinfo is None:  # not what SessionStore writes: malformed
        return None
    return principal, expires_at


def cached_principal(raw: bytes, now: datetime) -> Principal | None:
    """The principal of a cached session, or None when it is malformed or expired."""
    decoded = _decode_cached_session(raw)
    return decoded[0] if decoded is not None and decoded[1] > now else None


class SessionStore:
    def __init__(self, backends: Backends) -> None:
        self.db = backends.database
        self.cache = backends.cache

    async def create(self, user_id: str, *, ttl: timedelta = SESSION_TTL) -> str:
        """Open a session for user_id; return the bearer token (shown once)."""
        token = secrets.token_urlsafe(32)
        now = utc_now()
        async with self.db.transaction() as conn:
            await conn.execute(
                sessions.insert().values(
                    token_hash=token_hash(token),
                    user_id=user_id,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return token

    async def resolve(self, token: str) -> Principal | None:
        """The session's user, or None when unknown, expired or revoked."""
        digest = token_hash(token)
        cached = await self.cache.get(session_cache_key(digest))
        now = utc_now()
        if cached is not None and (principal := cached_principal(cached, now)) is not None:
            return principal
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    select(sessions.c.user_id, sessions.c.expires_at, users.c.handle)
                    .join(users, users.c.id == sessions.c.user_id)
                    .where(sessions.c.token_hash == digest, sessions.c.revoked_at.is_(None))
                )
            ).first()
        if row is None or row.expires_at <= now:
            return None
        ttl = min(SESSION_CACHE_TTL_S, (row.expires_at - now).total_seconds())
        payload = {"user_id": row.user_id, "handle": row.handle, "expires_at": row.expires_at}
        await self.cache.set(
            session_cache_key(digest), json.dumps(payload, default=str).encode(), ttl_s=ttl
        )
        return Principal(row.user_id, row.handle)

    async def revoke(self, token: str) -> None:
        digest = token_hash(token)
        async with self.db.transaction() as conn:
            await conn.execute(
                update(sessions)
                .where(sessions.c.token_hash == digest, sessions.c.revoked_at.is_(None))
                .values(revoked_at=utc_now())
            )
        await self.cache.delete(session_cache_key(digest))


def bearer_from_header(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer_token(request: Request) -> str | None:
    return bearer_from_header(request.headers.get("authorization", ""))


async def _resolve(request: Request, token: str) -> Principal | None:
    resolved = getattr(request.state, "session", None)
    if isinstance(resolved, ResolvedSession) and resolved.token_hash == token_hash(token):
        return resolved.principal
    return await SessionStore(request.app.state.backends).resolve(token)


async def require_user(request: Request) -> Principal:
    """FastAPI dependency: the caller, or 401 (problem+json) without a valid token."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("a bearer token is required")
    principal = await _resolve(request, token)
    if principal is None:
        raise Unauthorized("the token is invalid, expired or revoked")
    return principal


async def optional_user(request: Request) -> Principal | None:
    """FastAPI dependency for public reads: the caller when a token is sent
    (a bad one is still 401, so a client notices a revoked session), else None."""
    if bearer_token(request) is None:
        return None
    return await require_user(request)


CurrentUser = Annotated[Principal, Depends(require_user)]
MaybeUser = Annotated[Principal | None, Depends(optional_user)]
