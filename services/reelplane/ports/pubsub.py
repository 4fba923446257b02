"""Pub/sub port: fire-and-forget messages to whoever listens on a channel now.

The narrow part of the cache that live push needs (Redis PUBLISH/SUBSCRIBE; the
in-process cache for memory://). Both cache adapters implement it, so
`backends.cache` is passed where a `PubSub` is asked for. Delivery is at most
once and only to subscriptions open when the message is published: a missed
message is caught up from a durable log, never from here.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from reelplane.ports.cache import Subscription

__all__ = ["PubSub", "Subscription"]


class PubSub(Protocol):
    async def publish(self, channel: str, message: bytes) -> int:
        """Send to every subscription open on `channel` (in every process sharing
        the backend); return how many received it."""

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Receive the channel's messages, in publish order, while the context is open."""
