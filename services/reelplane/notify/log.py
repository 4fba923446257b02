"""A user's notification log in the wide-row store, and what they have read.

Partition per user, newest first, each row keyed by (event time, event id):
a replayed event writes the same row again, so replays change nothing. The
log is capped (soft: trimmed on a share of writes) and every row has a TTL.

Read state: a "read all up to" marker per user, plus single rows marked read
after it. Unread = rows newer than the marker that are not marked read.
"""

from __future__ import annotations

import zlib

from reelplane.notify.core import Notification
from reelplane.notify.settings import NotifySettings
from reelplane.ports.widerow import Clustering, WideRow, WideRowStore, WideTable

NOTIFICATIONS = WideTable("notifications", default_ttl_s=30 * 86_400)
NOTIFICATION_READS = WideTable("notification_reads", default_ttl_s=30 * 86_400)
NOTIFICATION_MARKS = WideTable("notification_marks")
TABLES = [NOTIFICATIONS, NOTIFICATION_READS, NOTIFICATION_MARKS]

#: A clustering item above every event id: `after=Clustering(ts, TOP)` skips all of ts.
_TOP = "\U0010ffff"
#: One write in this many trims the partition to the cap (a trim reads the cap's boundary).
TRIM_EVERY = 8


def position(n: Notification) -> Clustering:
    return Clustering(n.at_ms, n.id)


def _decode(rows: list[WideRow]) -> list[Notification]:
    return [Notification.model_validate_json(r.value) for r in rows]


class NotificationLog:
    def __init__(self, widerow: WideRowStore, settings: NotifySettings) -> None:
        self.widerow = widerow
        self.cap = settings.notify_log_cap
        self.ttl_s = settings.notify_ttl_s

    async def append(self, user_ids: list[str], n: Notification) -> None:
        """Write `n` to each user's log (idempotent: same row for a replayed event)."""
        value = n.model_dump_json().encode()
        for user_id in user_ids:
            row = WideRow(user_id, n.at_ms, n.id, value)
            await self.widerow.put(NOTIFICATIONS, [row], ttl_s=self.ttl_s)
            if zlib.crc32(f"{user_id}|{n.id}".encode()) % TRIM_EVERY == 0:
                await self.widerow.trim(NOTIFICATIONS, user_id, self.cap)

    async def page(self, user_id: str, before: Clustering | None, limit: int) -> list[Notification]:
        """Up to `limit` rows older than `before` (the newest when None), newest first."""
        return _decode(await self.widerow.range(NOTIFICATIONS, user_id, before=before, limit=limit))

    async def since(self, user_id: str, after: Clustering, limit: int) -> list[Notification]:
        """Rows newer than `after`, oldest first (a reconnecting client's catch-up)."""
        rows = await self.widerow.range(
            NOTIFICATIONS, user_id, after=after, limit=limit, newest_first=False
        )
        return _decode(rows)

    async def find(self, user_id: str, notification_id: str) -> Notification | None:
        """The notification with this id in the user's log (scans at most the cap)."""
        for n in await self.page(user_id, None, self.cap + TRIM_EVERY * 4):
            if n.id == notification_id:
                return n
        return None

    async def read_marker(self, user_id: str) -> Clustering:
        rows = await self.widerow.range(NOTIFICATION_MARKS, user_id, limit=1)
        return Clustering(rows[0].ts, _TOP) if rows else Clustering(-1, _TOP)

    async def unread_ids(self, user_id: str) -> set[str]:
        """Ids of the unread notifications (at most the cap)."""
        marker = await self.read_marker(user_id)
        newer = await self.widerow.range(NOTIFICATIONS, user_id, after=marker, limit=self.cap)
        if not newer:
            return set()
        read = await self.widerow.range(
            NOTIFICATION_READS, user_id, after=marker, limit=self.cap * 2
        )
        return {r.item for r in newer} - {r.item for r in read}

    async def mark_read(self, user_id: str, n: Notification) -> None:
        await self.widerow.put(
            NOTIFICATION_READS, [WideRow(user_id, n.at_ms, n.id, b"")], ttl_s=self.ttl_s
        )

    async def mark_all_read(self, user_id: str) -> None:
        """Everything in the log now counts as read."""
        newest = await self.widerow.range(NOTIFICATIONS, user_id, limit=1)
        if not newest:
            return
        await self.widerow.put(NOTIFICATION_MARKS, [WideRow(user_id, newest[0].ts, "all", b"")])
        await self.widerow.trim(NOTIFICATION_MARKS, user_id, 1)
