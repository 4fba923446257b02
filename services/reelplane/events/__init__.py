"""Events: the envelope and topics of ARCHITECTURE.md, a publisher and a
consumer-group runner over the bus port."""

from reelplane.events.envelope import (
    TOPICS,
    Event,
    dead_letter_topic,
    decode_event,
    encode_event,
    topic_of,
)

__all__ = ["TOPICS", "Event", "dead_letter_topic", "decode_event", "encode_event", "topic_of"]
