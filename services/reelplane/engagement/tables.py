"""The engagement service's wide-row tables."""

from __future__ import annotations

from reelplane.ports.widerow import WideTable

#: Partition per user, newest watch first; value: WatchRecord JSON.
WATCH_HISTORY = WideTable("watch_history")
#: Partition per user: videos watched to completion (For You leaves them out).
COMPLETIONS = WideTable("completions")

TABLES = [WATCH_HISTORY, COMPLETIONS]
