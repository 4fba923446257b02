"""Publishing events on the bus, keyed by their partition key."""

from __future__ import annotations

from reelplane.events.envelope import Event, encode_event, topic_of
from reelplane.ports.bus import Bus, Delivery


async def publish_encoded(
    bus: Bus, topic: str, key: str, event_type: str, event_id: str, body: bytes
) -> Delivery:
    """Publish an encoded event with its `type` and `id` headers; wait for the ack."""
    return await bus.publish(
        topic, key, body, headers=(("type", event_type.encode()), ("id", event_id.encode()))
    )


class EventPublisher:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def publish(self, event: Event) -> Delivery:
        """Publish and wait for the durable acknowledgement."""
        return await publish_encoded(
            self.bus, topic_of(event), event.key, event.type, event.id, encode_event(event)
        )
