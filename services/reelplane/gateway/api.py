"""Gateway HTTP API: sign up, log in, log out, who am I.

Handlers are thin: validate (pydantic + `accounts`), hash in a worker thread
(argon2id is CPU- and memory-heavy), write the relational store, publish.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel, EmailStr, Field, model_validator
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from reelplane.auth import SESSION_TTL, CurrentUser, SessionStore, bearer_token
from reelplane.backends import Backends
from reelplane.errors import Conflict, InvalidInput, Unauthorized
from reelplane.events import outbox
from reelplane.events.envelope import (
    AccountPayload,
    Event,
    UserCreated,
    UserUpdated,
    utc_now,
)
from reelplane.gateway.accounts import Passwords, check_password_policy, normalize_handle
from reelplane.gateway.proxy import install_proxy
from reelplane.gateway.settings import GatewaySettings
from reelplane.http.deps import BackendsDep
from reelplane.http.services import Service
from reelplane.schema import users
from reelplane.settings import Settings, load_section

router = APIRouter(prefix="/v1", tags=["gateway"])


class SignUp(BaseModel):
    handle: str = Field(min_length=1, max_length=64, examples=["ada"])
    password: str = Field(min_length=1, max_length=1024)
    display_name: str = Field("", max_length=80)


class ProfileChange(BaseModel):
    """The fields to change; a field left out keeps its value."""

    display_name: str | None = Field(None, max_length=80)
    #: Where notify's digests go; null removes it (no digest then).
    email: EmailStr | None = Field(None, examples=["ada@example.org"])
    #: Whether notify sends the periodic digest (default true for every account).
    digest_enabled: bool | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ProfileChange:
        if not self.model_fields_set:
            raise ValueError("nothing to change: send display_name, email or digest_enabled")
        if "display_name" in self.model_fields_set and self.display_name is None:
            raise ValueError('display_name cannot be null (send "" for none)')
        if "digest_enabled" in self.model_fields_set and self.digest_enabled is None:
            raise ValueError("digest_enabled is true or false")
        return self


class LogIn(BaseModel):
    handle: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Account(BaseModel):
    user_id: str
    handle: str
    display_name: str
    created_at: datetime
    email: str | None = None
    digest_enabled: bool = True


class SessionOut(BaseModel):
    """A new session; the token is shown once (only its hash is stored)."""

    token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2 token type, not a secret
    user_id: str
    handle: str
    expires_in_s: int


async def app_passwords(request: Request) -> Passwords:
    """The app's password hasher, made once by `configure`."""
    passwords: Passwords = request.app.state.passwords
    return passwords


PasswordsDep = Annotated[Passwords, Depends(app_passwords)]


async def _open_session(backends: Backends, user_id: str, handle: str) -> SessionOut:
    token = await SessionStore(backends).create(user_id)
    return SessionOut(
        token=token,
        user_id=user_id,
        handle=handle,
        expires_in_s=int(SESSION_TTL.total_seconds()),
    )


@router.post("/accounts", status_code=201, response_model=SessionOut, summary="Sign up")
async def sign_up(body: SignUp, backends: BackendsDep, passwords: PasswordsDep) -> SessionOut:
    """Create an account (handle + password) and return a session for it."""
    handle = normalize_handle(body.handle)
    check_password_policy(body.password, handle)
    async with backends.database.connect() as conn:
        taken = (await conn.execute(select(users.c.id).where(users.c.handle == handle))).first()
    if taken is not None:
        raise Conflict(f"the handle {handle!r} is taken")
    password_hash = await asyncio.to_thread(passwords.hash, body.password)
    user_id = uuid.uuid4().hex
    display_name = body.display_name.strip()
    # Announced on `accounts` (the search index lists the new user).
    event = UserCreated(
        key=user_id,
        payload=AccountPayload(user_id=user_id, handle=handle, display_name=display_name),
    )
    try:
        async with backends.database.transaction() as conn:
            await conn.execute(
                users.insert().values(
                    id=user_id,
                    handle=handle,
                    display_name=display_name,
                    created_at=utc_now(),
                    password_hash=password_hash,
                )
            )
            await outbox.stage(conn, event)
    except IntegrityError:  # lost a race for the same handle
        raise Conflict(f"the handle {handle!r} is taken") from None
    await outbox.flush(backends.database, backends.bus, [event])
    return await _open_session(backends, user_id, handle)


@router.post("/sessions", status_code=201, response_model=SessionOut, summary="Log in")
async def log_in(body: LogIn, backends: BackendsDep, passwords: PasswordsDep) -> SessionOut:
    """Check handle + password and open a session (an opaque bearer token)."""
    try:
        handle = normalize_handle(body.handle)
    except InvalidInput:  # no such account can exist; still pay for a verify below
        handle = ""
    async with backends.database.connect() as conn:
        row = (
            await conn.execute(
                select(users.c.id, users.c.password_hash).where(users.c.handle == handle)
            )
        ).first()
    stored = row.password_hash if row is not None else None
    if not await asyncio.to_thread(passwords.verify, stored, body.password) or row is None:
        raise Unauthorized("unknown handle or wrong password")
    if passwords.needs_rehash(stored or ""):
        new_hash = await asyncio.to_thread(passwords.hash, body.password)
        async with backends.database.transaction() as conn:
            await conn.execute(
                update(users).where(users.c.id == row.id).values(password_hash=new_hash)
            )
    return await _open_session(backends, row.id, handle)


@router.delete("/sessions/current", status_code=204, summary="Log out")
async def log_out(user: CurrentUser, request: Request, backends: BackendsDep) -> Response:
    """Revoke the calling session; the token is refused from the next request on."""
    token = bearer_token(request)
    assert token is not None  # CurrentUser guarantees it
    await SessionStore(backends).revoke(token)
    return Response(status_code=204)


_ACCOUNT_COLUMNS = (
    users.c.id,
    users.c.handle,
    users.c.display_name,
    users.c.created_at,
    users.c.email,
    users.c.digest_enabled,
)


def _account(row: Any) -> Account:
    return Account(
        user_id=row.id,
        handle=row.handle,
        display_name=row.display_name,
        created_at=row.created_at,
        email=row.email,
        digest_enabled=bool(row.digest_enabled),
    )


@router.get("/me", response_model=Account, summary="The signed-in account")
async def me(user: CurrentUser, backends: BackendsDep) -> Account:
    async with backends.database.connect() as conn:
        row = (
            await conn.execute(select(*_ACCOUNT_COLUMNS).where(users.c.id == user.user_id))
        ).one()
    return _account(row)


@router.patch("/me", response_model=Account, summary="Change the signed-in account's profile")
async def change_profile(body: ProfileChange, user: CurrentUser, backends: BackendsDep) -> Account:
    """Set the display name (announced as `user.updated` on `accounts`), the
    e-mail address notify's digests go to (null removes it; never announced)
    and whether digests are sent at all. A bad address is a 422."""
    changes: dict[str, object] = {}
    if body.display_name is not None:
        changes["display_name"] = body.display_name.strip()
    if "email" in body.model_fields_set:
        changes["email"] = body.email
    if body.digest_enabled is not None:
        changes["digest_enabled"] = body.digest_enabled
    events: list[Event] = []
    async with backends.database.transaction() as conn:
        await conn.execute(update(users).where(users.c.id == user.user_id).values(**changes))
        row = (
            await conn.execute(select(*_ACCOUNT_COLUMNS).where(users.c.id == user.user_id))
        ).one()
        if "display_name" in changes:
            events.append(
                UserUpdated(
                    key=row.id,
                    payload=AccountPayload(
                        user_id=row.id, handle=row.handle, display_name=row.display_name
                    ),
                )
            )
            await outbox.stage(conn, events[0])
    if events:
        await outbox.flush(backends.database, backends.bus, events)
    return _account(row)


def configure(app: FastAPI, settings: Settings) -> None:
    """The gateway's password hasher and its forwarding to the other services
    (its edge, CORS and rate limits, is every service's: `reelplane.http.edge`)."""
    gateway = load_section(GatewaySettings)
    install_proxy(app, gateway, app.state.mounted_services)
    app.state.passwords = Passwords(
        time_cost=gateway.password_time_cost,
        memory_kib=gateway.password_memory_kib,
        parallelism=gateway.password_parallelism,
    )


SERVICE = Service("gateway", routers=[router], background=[outbox.run_relay], configure=[configure])
