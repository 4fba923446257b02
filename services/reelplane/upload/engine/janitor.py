"""The upload janitor's pass: uploads and announcements nobody finished.

Expires abandoned uploads, finishes uploads whose process died while
validating, relays video events left in the outbox (their publication was
lost), and announces again videos left waiting for a transcode nobody is doing.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select

from reelplane.events import outbox
from reelplane.events.envelope import utc_now
from reelplane.schema import uploads
from reelplane.upload.errors import MediaRejected, UploadLocked
from reelplane.videos.announce import VIDEO_TOPICS, reannounce_stalled
from reelplane.videos.model import VideoState

if TYPE_CHECKING:
    from reelplane.upload.engine.operations import UploadEngine


async def sweep(engine: UploadEngine) -> dict[str, int]:
    """One janitor pass; how many uploads it expired and finished, and how many
    videos it announced and announced again."""
    now = utc_now()
    settle = now - timedelta(seconds=engine.settings.upload_announce_after_s)
    counts = {"expired": 0, "finished": 0, "announced": 0, "reannounced": 0}
    free = engine.leases.row.free(now)
    async with engine.db.connect() as conn:
        expired = (
            (
                await conn.execute(
                    select(uploads.c.id)
                    .where(
                        or_(
                            uploads.c.state == "active",
                            # finished partial uploads no final upload joined
                            and_(uploads.c.state == "done", uploads.c.concat == "partial"),
                        ),
                        uploads.c.expires_at < now,
                        free,
                    )
                    .limit(100)
                )
            )
            .scalars()
            .all()
        )
        stuck = (
            (
                await conn.execute(
                    select(uploads.c.id)
                    .where(uploads.c.state == "completing", uploads.c.updated_at < settle, free)
                    .limit(20)
                )
            )
            .scalars()
            .all()
        )
    for upload_id in expired:
        with contextlib.suppress(UploadLocked):
            token, locked = await engine.leases.lock(upload_id)
            try:
                await engine.end(locked, VideoState.FAILED, "the upload expired unfinished")
                await engine.acceptor.announce_outcomes([upload_id])
                counts["expired"] += 1
            finally:
                await engine.leases.unlock(upload_id, token)
    for upload_id in stuck:
        with contextlib.suppress(UploadLocked, MediaRejected):
            token, locked = await engine.leases.lock(upload_id)
            try:
                await engine.acceptor.finish(locked)
                counts["finished"] += 1
            finally:
                await engine.leases.unlock(upload_id, token)
    # Video events a crash (or a refusing bus) left in the outbox.
    counts["announced"] = await outbox.relay_once(
        engine.db,
        engine.backends.bus,
        grace_s=engine.settings.upload_announce_after_s,
        topics=VIDEO_TOPICS,
    )
    stalled = now - timedelta(seconds=engine.settings.upload_reannounce_after_s)
    counts["reannounced"] = len(
        await reannounce_stalled(engine.db, engine.acceptor.publisher, stalled_before=stalled)
    )
    return counts
