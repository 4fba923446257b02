"""Viewers' like states in the cache, so a cached feed page can say whether its
viewer likes each video without a database read.

`like_state_key(user, video)` holds b"1" (likes) or b"0" (does not). A missing
key means "not known": a reader asks the relational store (the source of truth)
and fills the key in only if it is still missing (SET NX). A like or unlike
deletes the key before its transaction and writes the new state after the
commit, so a reader that read the store before the commit either filled the
key before that last write (which overwrites it) or tries after it (and its NX
fails): the key ends up equal to the store. Only a cache failure between commit
and last write can leave a stale fill, for `LIKE_STATE_TTL_S` at most.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from reelplane.engagement.core import like_state_key
from reelplane.ports.cache import Cache

#: How long a like state stays cached, s (a feed page lives 300 s).
LIKE_STATE_TTL_S = 3600.0
LIKED = b"1"
NOT_LIKED = b"0"


def like_state_of(raw: bytes | None) -> bool | None:
    """A cached like state: True, False, or None when it is not known."""
    return True if raw == LIKED else False if raw == NOT_LIKED else None


async def forget_like_state(cache: Cache, user_id: str, video_id: str) -> None:
    """Before a like or unlike is written: readers ask the store until it commits."""
    await cache.delete(like_state_key(user_id, video_id))


async def store_like_state(cache: Cache, user_id: str, video_id: str, liked: bool) -> None:
    """After a like or unlike commits: its state, over any reader's fill."""
    value = LIKED if liked else NOT_LIKED
    await cache.set(like_state_key(user_id, video_id), value, ttl_s=LIKE_STATE_TTL_S)


async def fill_like_states(cache: Cache, user_id: str, states: Mapping[str, bool]) -> None:
    """What a reader learnt from the store, for the keys still missing."""
    await asyncio.gather(
        *(
            cache.set(
                like_state_key(user_id, video_id),
                LIKED if liked else NOT_LIKED,
                ttl_s=LIKE_STATE_TTL_S,
                only_if_absent=True,
            )
            for video_id, liked in states.items()
        )
    )
