"""The write lease on an upload: one writer (a PATCH, a join, the janitor) at a time.

Writers of one upload exclude each other with a lease in its row (a PATCH on
another replica waits for it, then gets 423); every commit is a compare-and-set
on the offset, so a writer that lost its lease can never move the offset.

A PATCH leaves its lease lingering for `upload_lease_linger_s` after it ends,
with the row as it left it (`Lingering`): the same client's next PATCH on this
replica takes it over without a lock round trip, renewing it meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update

from reelplane.errors import NotFound
from reelplane.events.envelope import utc_now
from reelplane.leases import RowLease
from reelplane.ports.objects import Part
from reelplane.ports.relational import Database
from reelplane.schema import uploads
from reelplane.upload.engine.rows import Upload, parts_json
from reelplane.upload.errors import UploadLocked
from reelplane.upload.settings import UploadSettings

#: A lingering lease is taken over only with at least this much of it left.
LINGER_MARGIN_S = 0.5


@dataclass(frozen=True)
class Lingering:
    """A lease this process kept after a PATCH (`upload_lease_linger_s`), with
    the upload as that PATCH left it: nobody else can change the row before
    `until` (time.monotonic()) without taking the lease."""

    token: str
    until: float
    upload: Upload


class PatchLease:
    """A PATCH's hold on its upload: `until` (time.monotonic()) is a safe
    estimate of when it runs out; `released` once a commit gave it up (or left
    it lingering, till `lingers_until`); `renewing` a renewal started with the
    PATCH when it took over a lingering lease, awaited before any part is
    stored on it."""

    def __init__(self, leases: UploadLeases, upload_id: str, token: str, until: float) -> None:
        self.leases = leases
        self.upload_id = upload_id
        self.token = token
        self.until = until
        self.released = False
        self.lingers_until: float | None = None
        self.renewing: asyncio.Future[bool] | None = None
        self.renewing_asked = 0.0

    @property
    def lock_s(self) -> float:
        return self.leases.settings.upload_lock_s

    async def renewed(self) -> bool:
        """Wait for the renewal of a taken-over lease: True when it is still ours
        (so nobody changed the upload since this process's last PATCH)."""
        assert self.renewing is not None
        renewing, self.renewing = self.renewing, None
        if not await renewing:
            return False
        self.until = self.renewing_asked + self.lock_s
        return True

    async def keep(self) -> None:
        """Renew the lease (or wait for the renewal of a taken-over one);
        UploadLocked when it ran out and was taken over."""
        if self.renewing is not None:
            renewed = await self.renewed()
        else:
            asked = time.monotonic()
            renewed = await self.leases.renew(self.upload_id, self.token)
            if renewed:
                self.until = asked + self.lock_s
        if not renewed:
            raise UploadLocked(f"upload {self.upload_id}: the lease ran out and was taken over")

    async def keep_while_receiving(self) -> None:
        """Renew every third of the lease while bytes flow."""
        if self.renewing is None and time.monotonic() > self.until - self.lock_s * 2 / 3:
            await self.keep()

    async def keep_for_a_part(self) -> None:
        """Never store a part on a lease that may run out meanwhile: another
        request could then take the upload over and store the same part."""
        if self.renewing is not None or time.monotonic() > self.until - self.lock_s / 3:
            await self.keep()

    def committed(self, asked: float, *, released: bool) -> None:
        """A commit asked at `asked` renewed the lease (and gave it up, lingering,
        with `released`)."""
        self.released = released
        self.until = asked + self.lock_s
        if released:
            self.lingers_until = asked + self.leases.linger_s

    async def end(self) -> None:
        """The PATCH is over: wait for a renewal in flight, give the lease up
        unless a commit did."""
        if self.renewing is not None:
            with contextlib.suppress(Exception):
                await self.renewing
        if not self.released:
            await self.leases.unlock(self.upload_id, self.token)


class UploadLeases:
    """Takes, renews, commits under and gives up the write leases on uploads
    (`uploads.lock_owner`). One per process (it keeps the lingering leases)."""

    def __init__(self, database: Database, settings: UploadSettings) -> None:
        self.db = database
        self.settings = settings
        self.instance = uuid.uuid4().hex[:12]
        self.row = RowLease(
            uploads,
            uploads.c.id,
            uploads.c.lock_owner,
            uploads.c.lock_expires_at,
            settings.upload_lock_s,
        )
        self._lingering: dict[str, Lingering] = {}

    @property
    def linger_s(self) -> float:
        """How long a PATCH's lease lingers (never longer than a lease)."""
        return min(self.settings.upload_lease_linger_s, self.settings.upload_lock_s)

    async def lock(self, upload_id: str) -> tuple[str, Upload]:
        """Take the upload's write lease (waiting up to upload_lock_wait_s, 423
        after) and read the row as of the lease. A lease this process left
        lingering after a PATCH is taken over at once."""
        token = f"{self.instance}:{uuid.uuid4().hex[:16]}"
        deadline = time.monotonic() + self.settings.upload_lock_wait_s
        mine = self._lingering.pop(upload_id, None)
        while True:
            async with self.db.transaction() as conn:
                taken = await self.row.take(
                    conn, upload_id, token, also_from=() if mine is None else (mine.token,)
                )
                row = (await conn.execute(select(uploads).where(uploads.c.id == upload_id))).first()
                if row is None:  # not a busy upload: no upload at all
                    raise NotFound(f"upload {upload_id} does not exist")
                if taken:
                    return token, Upload.from_row(row)
            if time.monotonic() >= deadline:
                raise UploadLocked(f"upload {upload_id} is being written by another request")
            await asyncio.sleep(0.05)

    async def unlock(self, upload_id: str, token: str) -> None:
        async with self.db.transaction() as conn:
            await self.row.release(conn, upload_id, token)

    async def renew(self, upload_id: str, token: str) -> bool:
        """Extend the lease; False when it is no longer ours."""
        async with self.db.transaction() as conn:
            return await self.row.renew(conn, upload_id, token)

    async def for_patch(self, upload_id: str) -> tuple[PatchLease, Upload]:
        """The lease for a PATCH, with the row as of the lease: the lease this
        process kept after the client's last PATCH (no lock round trip; it is
        renewed meanwhile, before any part is stored), else a new one."""
        asked = time.monotonic()
        lingering = self._lingering.get(upload_id)
        if lingering is not None and asked < lingering.until - LINGER_MARGIN_S:
            del self._lingering[upload_id]
            lease = PatchLease(self, upload_id, lingering.token, lingering.until)
            lease.renewing = asyncio.ensure_future(self.renew(upload_id, lingering.token))
            lease.renewing_asked = asked
            return lease, lingering.upload
        token, upload = await self.lock(upload_id)
        return PatchLease(self, upload_id, token, asked + self.settings.upload_lock_s), upload

    async def relock(self, lost: PatchLease) -> tuple[PatchLease, Upload]:
        """The kept lease ran out and another request may have moved the upload
        on: take the lease the usual way and read the row as it is now."""
        lost.released = True  # not ours to unlock any more
        asked = time.monotonic()
        token, upload = await self.lock(lost.upload_id)
        return PatchLease(self, lost.upload_id, token, asked + self.settings.upload_lock_s), upload

    def keep_lingering(self, lingering: Lingering) -> None:
        now = time.monotonic()
        for upload_id in [k for k, v in self._lingering.items() if v.until <= now]:
            del self._lingering[upload_id]  # ran out: forget them
        self._lingering[lingering.upload.id] = lingering

    async def commit(
        self,
        upload: Upload,
        token: str,
        *,
        expected_offset: int,
        offset: int,
        parts: list[Part],
        pending_key: str | None,
        pending_size: int,
        state: str = "active",
        release: bool = False,
    ) -> None:
        """Record progress, if we still hold the lease and nobody moved the offset
        (and give the lease up with `release`: at once, or after
        `upload_lease_linger_s` when the upload stays active)."""
        now = utc_now()
        linger_s = self.linger_s if state == "active" else 0.0
        if release and linger_s > 0:
            hold_s: float | None = linger_s
        else:
            hold_s = None if release else self.settings.upload_lock_s
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(uploads)
                .where(
                    uploads.c.id == upload.id,
                    self.row.held_by(token),
                    uploads.c.offset == expected_offset,
                )
                .values(
                    **self.row.hold(None if hold_s is None else token, now, hold_s),
                    offset=offset,
                    parts=parts_json(parts),
                    pending_key=pending_key,
                    pending_size=pending_size,
                    state=state,
                    updated_at=now,
                )
            )
        if not result.rowcount:
            raise UploadLocked(f"upload {upload.id} was taken over by another request")
