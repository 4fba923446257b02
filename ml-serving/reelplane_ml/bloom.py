"""The seen filter's Bloom arithmetic (Redis 7.0 has no Bloom module: the
filter is a plain bitset, `SETBIT` by the signals consumer, `GET` per request).

A video's bit offsets come from one BLAKE2b digest split into two 64-bit
hashes (h1, h2): offset i is (h1 + i * h2) mod bits (Kirsch-Mitzenmacher
double hashing). The core keeps each video's (h1, h2) from when it was
indexed, so a request tests its few hundred candidates in one numpy pass
(`SeenFilter.contains_hashed`) instead of a digest per candidate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

U64 = NDArray[np.uint64]


def bloom_hashes(video_id: str) -> tuple[int, int]:
    """The video's two hashes (h2 odd, so that every offset differs)."""
    digest = hashlib.blake2b(video_id.encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1


def bloom_offsets(video_id: str, *, bits: int, hashes: int) -> list[int]:
    """The bit offsets of video_id in a filter of `bits` bits and `hashes` hash functions."""
    h1, h2 = bloom_hashes(video_id)
    return [(h1 + i * h2) % bits for i in range(hashes)]


def bit_is_set(bitset: bytes, offset: int) -> bool:
    """Whether the bit at offset is 1 (Redis order: offset 0 is byte 0's high bit)."""
    byte = offset >> 3
    return byte < len(bitset) and bool(bitset[byte] & (0x80 >> (offset & 7)))


@dataclass(frozen=True)
class SeenFilter(Container[str]):
    """A user's seen filter as read from the cache: `video_id in seen` is True for
    every video the user saw, and for a few others (false positives, ~1%)."""

    bitset: bytes
    bits: int
    hashes: int

    def __contains__(self, video_id: object) -> bool:
        if not isinstance(video_id, str) or not self.bitset:
            return False
        return all(
            bit_is_set(self.bitset, o)
            for o in bloom_offsets(video_id, bits=self.bits, hashes=self.hashes)
        )

    def contains_hashed(self, h1: U64, h2: U64) -> NDArray[np.bool_]:
        """`video_id in self` for many videos at once, from their `bloom_hashes`.
        (h1 + i*h2) mod bits is computed as (h1 mod bits + i * (h2 mod bits))
        mod bits: the same offsets, without overflowing 64 bits."""
        n = len(h1)
        if not self.bitset or n == 0:
            return np.zeros(n, np.bool_)
        bits = np.uint64(self.bits)
        steps = np.arange(self.hashes, dtype=np.uint64)
        offsets = ((h1 % bits)[:, None] + steps * (h2 % bits)[:, None]) % bits
        data = np.frombuffer(self.bitset, np.uint8)
        byte = (offsets >> np.uint64(3)).astype(np.int64)
        inside = byte < len(data)
        values = data[np.minimum(byte, len(data) - 1)]
        masks = (np.uint8(0x80) >> (offsets & np.uint64(7)).astype(np.uint8)).astype(np.uint8)
        hit: NDArray[np.bool_] = ((values & masks) != 0) & inside
        return np.asarray(hit.all(axis=1), np.bool_)
