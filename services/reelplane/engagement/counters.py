"""Cached counters: read many at once, and repair them from the source of truth.

The counters consumer is the only writer of a counter key (INCR per event), so a
reader never races it by filling a missing key; a missing key reads as 0 until
the first event or a repair writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from reelplane.backends import Backends
from reelplane.engagement.core import COUNTER_KINDS, counter_key
from reelplane.engagement.store import true_counts
from reelplane.ports.cache import Cache

#: Videos repaired per round trip.
REPAIR_BATCH = 500


@dataclass(frozen=True)
class Counters:
    likes: int = 0
    comments: int = 0
    views: int = 0


async def read_counters(cache: Cache, video_ids: list[str]) -> dict[str, Counters]:
    """Counters of each video in one round trip (missing keys read as 0)."""
    keys = [counter_key(v, k) for v in video_ids for k in COUNTER_KINDS]
    values = await cache.get_many(keys)
    out: dict[str, Counters] = {}
    for i, vid in enumerate(video_ids):
        raw = values[i * 3 : i * 3 + 3]
        nums = [max(0, int(v)) if v is not None else 0 for v in raw]
        out[vid] = Counters(likes=nums[0], comments=nums[1], views=nums[2])
    return out


async def repair_counters(backends: Backends, video_ids: list[str] | None = None) -> int:
    """Overwrite cached counters with the source of truth (all videos when
    video_ids is None); returns how many counters differed."""
    truth = await true_counts(backends.database, video_ids)
    ids = sorted(truth)
    fixed = 0
    for start in range(0, len(ids), REPAIR_BATCH):
        chunk = ids[start : start + REPAIR_BATCH]
        current = await read_counters(backends.cache, chunk)
        for vid in chunk:
            for kind in COUNTER_KINDS:
                want = truth[vid][kind]
                if getattr(current[vid], kind) != want:
                    fixed += 1
                await backends.cache.set(counter_key(vid, kind), str(want).encode())
    return fixed
