"""A lease in a database row: who may write it, and until when.

One row, two columns: the holder's token and when its hold runs out. A writer
takes the lease with a compare-and-set (free, run out, or already its own),
renews it while it works, and gives it up when done; a writer that dies simply
stops renewing, and the next one takes over once the lease has run out. Used
by tus uploads (`uploads.lock_owner`, one PATCH at a time) and transcode jobs
(`video_assets.lease_owner`, one worker per asset).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reelplane.events.envelope import utc_now


@dataclass(frozen=True)
class RowLease:
    """The lease columns of `table`: `owner` holds the holder's token,
    `expires_at` when its hold runs out (`ttl_s` after it was taken or renewed)."""

    table: Table
    key: Column[Any]
    owner: Column[Any]
    expires_at: Column[Any]
    ttl_s: float

    def free(self, now: datetime) -> ColumnElement[bool]:
        """Rows nobody holds: no holder, or one whose hold ran out."""
        return or_(self.owner.is_(None), self.expires_at < now)

    def held_by(self, token: str) -> ColumnElement[bool]:
        return self.owner == token

    def hold(self, token: str | None, now: datetime, hold_s: float | None = None) -> dict[str, Any]:
        """Column values that give the lease to `token` for `hold_s` (the
        lease's `ttl_s` unless said), or free it (`token` None)."""
        if token is None:
            return {self.owner.name: None, self.expires_at.name: None}
        until = now + timedelta(seconds=self.ttl_s if hold_s is None else hold_s)
        return {self.owner.name: token, self.expires_at.name: until}

    async def take(
        self,
        conn: AsyncConnection,
        key: str,
        token: str,
        *,
        also_from: Iterable[str] = (),
        where: Iterable[ColumnElement[bool]] = (),
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Give the lease to `token` if it is free (or held by one of the tokens
        `also_from`: taken over), where `where` holds too, writing `values` with
        it; True when taken. Inside the caller's transaction."""
        now = utc_now()
        free = self.free(now)
        for previous in also_from:
            free = or_(free, self.owner == previous)
        result = await conn.execute(
            update(self.table)
            .where(self.key == key, free, *where)
            .values(**self.hold(token, now), **(values or {}))
        )
        return bool(result.rowcount)

    async def renew(
        self,
        conn: AsyncConnection,
        key: str,
        token: str,
        *,
        where: Iterable[ColumnElement[bool]] = (),
    ) -> bool:
        """Extend `token`'s hold by `ttl_s`; False when the lease is no longer its own."""
        result = await conn.execute(
            update(self.table)
            .where(self.key == key, self.owner == token, *where)
            .values(**self.hold(token, utc_now()))
        )
        return bool(result.rowcount)

    async def release(self, conn: AsyncConnection, key: str, token: str) -> None:
        """Give the lease up, if `token` still holds it."""
        await conn.execute(
            update(self.table)
            .where(self.key == key, self.owner == token)
            .values(**self.hold(None, utc_now()))
        )
