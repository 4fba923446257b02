"""Feed shards: which shard serves a user (`FeedShard`: `hash(user_id) % shardCount`).

The hash is the first 8 bytes of the user id's SHA-256, big-endian: stable across
processes and languages (Python's `hash` is salted per process), and spread evenly.
The gateway routes with it, a shard's feed API refuses users of other shards with
it, and a shard's consumers only write the timelines and caches of its own users.
"""

from __future__ import annotations

import hashlib


def shard_of(user_id: str, shard_count: int) -> int:
    """The index of the shard that serves `user_id`, in [0, shard_count)."""
    if shard_count < 1:
        raise ValueError("shard_count must be at least 1")
    digest = hashlib.sha256(user_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


def in_shard(user_id: str, shard_index: int, shard_count: int) -> bool:
    """Whether the shard `shard_index` of `shard_count` serves `user_id`."""
    return shard_count <= 1 or shard_of(user_id, shard_count) == shard_index
