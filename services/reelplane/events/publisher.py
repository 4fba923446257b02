"""Publishing events on the bus, keyed by their partition key."""

from __future__ import annotations

from reelplane.events.envelope import Event, encode_event, topic_of
from reelplane.ports.bus import Bus, Delivery


class EventPublisher:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def publish(self, event: Event) -> Delivery:
        """Publish and wait for the durable acknowledgement."""
        return await self.bus.publish(
            topic_of(event),
            event.key,
            encode_event(event),
            headers=(("type", event.type.encode()), ("id", event.id.encode())),
        )
