"""Which replica of the operator is active, by Kopf's peering rule (pure).

Kopf pauses an operator while a live peer with a higher priority exists (and
all of them while two share the top priority). Kopf does that for the event
handlers; the lag poller, which runs beside them, asks this function with the
peering object's status so it pauses with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def is_active(
    peers: Mapping[str, Mapping[str, Any]], me: str, priority: int, now: datetime
) -> bool:
    """Whether the operator `me` (at `priority`) should act, given the peering status
    (`{identity: {priority, lifetime, lastseen}}`)."""
    for identity, info in peers.items():
        if identity == me:
            continue
        lastseen = info.get("lastseen")
        seen = _parse(str(lastseen)) if lastseen else now
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        if seen + timedelta(seconds=int(info.get("lifetime", 60))) <= now:
            continue  # dead peer
        if int(info.get("priority", 0)) >= priority:
            return False
    return True
