"""Gate port: the edge's one atomic step per request (rate limits, the session
check, and for a cached read the page and what it names), and token buckets.

Narrow on purpose: the edge needs these and nothing else, and each adapter
runs them atomically over the same store the cache port writes (sessions,
pages and counters are written through the cache port, read here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class TokenBucketState:
    """A token bucket as stored: `tokens` left at `updated_ms` (milliseconds)."""

    tokens: float
    updated_ms: int


@dataclass(frozen=True)
class TokenDecision:
    """The outcome of taking tokens: whether allowed, what is left, and how long
    to wait (seconds) before the same request would be allowed."""

    allowed: bool
    tokens_left: float
    retry_after_s: float


def take_from_bucket(
    state: TokenBucketState | None,
    now_ms: int,
    *,
    capacity: float,
    refill_per_s: float,
    cost: float = 1.0,
) -> tuple[TokenBucketState, TokenDecision]:
    """The token-bucket rule, pure: refill by elapsed time (capped at capacity),
    then take `cost` tokens if there are enough. A missing bucket starts full.

    The Redis adapter runs the same arithmetic in a Lua script (keep them in step;
    the gate contract suite checks both adapters against each other's behaviour).
    """
    if capacity <= 0 or refill_per_s <= 0 or cost <= 0:
        raise ValueError("capacity, refill_per_s and cost must be positive")
    if cost > capacity:
        raise ValueError("cost exceeds capacity: the request could never be allowed")
    if state is None:
        tokens = capacity
    else:
        elapsed_s = max(0, now_ms - state.updated_ms) / 1000
        tokens = min(capacity, state.tokens + elapsed_s * refill_per_s)
    if tokens >= cost:
        left = tokens - cost
        return TokenBucketState(left, now_ms), TokenDecision(True, left, 0.0)
    wait_s = (cost - tokens) / refill_per_s
    return TokenBucketState(tokens, now_ms), TokenDecision(False, tokens, wait_s)


@dataclass(frozen=True)
class Bucket:
    """A token bucket to draw one token from: `capacity` tokens at most,
    refilled at `refill_per_s` tokens/s."""

    key: str
    capacity: float
    refill_per_s: float


#: In `Gate.admit`, this placeholder in a key stands for the resolved user id.
USER_PLACEHOLDER = "{user}"
#: In an `Expansion` template, this placeholder stands for one listed item.
ITEM_PLACEHOLDER = "{item}"


@dataclass(frozen=True)
class Expansion:
    """Keys that one of `Gate.admit`'s reads names, read in the same step.
    When the value of `reads[read]` is there, its first line (up to the first
    b"\n"; without one, no items) lists items separated by spaces; for each
    item, in order, each of `templates` is read, with `ITEM_PLACEHOLDER`
    (exactly once in each) standing for the item and `USER_PLACEHOLDER` for
    the user id."""

    read: int
    templates: tuple[str, ...]


def check_expansion(expand: Expansion) -> None:
    """ValueError unless `expand` is one the adapters can read."""
    if expand.read < 0:
        raise ValueError("an expansion names a read by its index, from 0")
    if any(t.count(ITEM_PLACEHOLDER) != 1 for t in expand.templates):
        raise ValueError(f"each expansion template holds {ITEM_PLACEHOLDER} exactly once")


def expansion_items(value: bytes) -> list[str]:
    """The items an `Expansion` finds in a value (its first line, split on spaces)."""
    line, newline, _ = value.partition(b"\n")
    if not newline:
        return []
    return [item.decode("utf-8", "surrogateescape") for item in line.split(b" ") if item]


@dataclass(frozen=True)
class GateOutcome:
    """What `Gate.admit` found. `refused` is the key of the bucket that said no
    (with the user id filled in), with `retry_after_s`; `principal` the raw value
    at the principal key (None when absent); `values` the reads, in order, then
    the expansion's values, item by item, template by template (empty unless the
    principal was found and its bucket allowed the request)."""

    refused: str | None = None
    retry_after_s: float = 0.0
    principal: bytes | None = None
    values: tuple[bytes | None, ...] = ()


def principal_user_id(raw: bytes) -> str | None:
    """The `user_id` of a principal value as `Gate.admit` reads it (a JSON
    object), or None when it is not one."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    user_id = data.get("user_id") if isinstance(data, dict) else None
    return user_id if isinstance(user_id, str) and user_id else None


def bucket_ttl_s(capacity: float, refill_per_s: float) -> float:
    """How long an untouched bucket must be kept: the time to refill from empty
    (after that it is full, the same as missing), plus a second of slack."""
    return capacity / refill_per_s + 1.0


class Gate(Protocol):
    """Token buckets and the edge's gate, atomic, on the cache's store."""

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    async def take_tokens(
        self, key: str, *, capacity: float, refill_per_s: float, cost: float = 1.0
    ) -> TokenDecision:
        """Atomically take `cost` tokens from the token bucket at key
        (`take_from_bucket`, with the store's clock). The key expires once the
        bucket would be full again."""

    async def admit(
        self,
        buckets: list[Bucket],
        *,
        principal_key: str | None = None,
        user_bucket: Bucket | None = None,
        reads: list[str] | None = None,
        expand: Expansion | None = None,
    ) -> GateOutcome:
        """One atomic step (one round trip on Redis) for a request at the edge:
        take a token from each of `buckets` in order, stopping at the first
        refusal; then read `principal_key` (a JSON object with a `user_id`); when
        it is there, take a token from `user_bucket` and, if allowed, read
        `reads`, then the keys `expand` names. In the keys of `user_bucket` and
        `reads`, `USER_PLACEHOLDER` stands for the principal's user id. The
        buckets and the principal are one atomic step; the reads may follow
        it in the same round trip (values as of then, never another user's)."""

    async def close(self) -> None: ...
