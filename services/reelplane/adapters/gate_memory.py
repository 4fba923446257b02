"""In-process adapter of the gate port, over the in-process cache's store (the
sessions, pages and counters the cache port writes), for `reelplane dev` and
unit tests."""

from __future__ import annotations

import time

from reelplane.adapters.cache_memory import MemoryCache
from reelplane.ports.gate import (
    ITEM_PLACEHOLDER,
    USER_PLACEHOLDER,
    Bucket,
    Expansion,
    GateOutcome,
    TokenDecision,
    bucket_ttl_s,
    check_expansion,
    expansion_items,
    principal_user_id,
    take_from_bucket,
)


class MemoryGate:
    """Each operation runs without awaiting in between, so it is atomic on the
    event loop, as the Redis scripts are."""

    def __init__(self, store: MemoryCache) -> None:
        self.store = store

    async def ping(self) -> None:
        return None

    async def take_tokens(
        self, key: str, *, capacity: float, refill_per_s: float, cost: float = 1.0
    ) -> TokenDecision:
        return self._take(key, capacity=capacity, refill_per_s=refill_per_s, cost=cost)

    async def admit(
        self,
        buckets: list[Bucket],
        *,
        principal_key: str | None = None,
        user_bucket: Bucket | None = None,
        reads: list[str] | None = None,
        expand: Expansion | None = None,
    ) -> GateOutcome:
        peek = self.store.peek
        for b in buckets:
            decision = self._take(b.key, capacity=b.capacity, refill_per_s=b.refill_per_s)
            if not decision.allowed:
                return GateOutcome(refused=b.key, retry_after_s=decision.retry_after_s)
        principal = peek(principal_key) if principal_key is not None else None
        user_id = principal_user_id(principal) if principal is not None else None
        if user_id is None:
            return GateOutcome(principal=principal)
        if user_bucket is not None:
            key = user_bucket.key.replace(USER_PLACEHOLDER, user_id)
            decision = self._take(
                key, capacity=user_bucket.capacity, refill_per_s=user_bucket.refill_per_s
            )
            if not decision.allowed:
                return GateOutcome(
                    refused=key, retry_after_s=decision.retry_after_s, principal=principal
                )
        values = tuple(peek(k.replace(USER_PLACEHOLDER, user_id)) for k in reads or [])
        listing = values[expand.read] if expand is not None and expand.read < len(values) else None
        if expand is not None:
            check_expansion(expand)
        if expand is not None and listing is not None:
            templates = [t.replace(USER_PLACEHOLDER, user_id) for t in expand.templates]
            values += tuple(
                peek(t.replace(ITEM_PLACEHOLDER, item))
                for item in expansion_items(listing)
                for t in templates
            )
        return GateOutcome(principal=principal, values=values)

    def _take(
        self, key: str, *, capacity: float, refill_per_s: float, cost: float = 1.0
    ) -> TokenDecision:
        state, decision = take_from_bucket(
            self.store.bucket(key),
            int(time.time() * 1000),
            capacity=capacity,
            refill_per_s=refill_per_s,
            cost=cost,
        )
        self.store.put_bucket(key, state, ttl_s=bucket_ttl_s(capacity, refill_per_s))
        return decision

    async def close(self) -> None:
        return None  # the store is the cache's: closed with it
