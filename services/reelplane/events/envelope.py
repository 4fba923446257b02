"""The one event envelope and every event type, as pydantic models.

An event is `{id, type, version, occurred_at, key, payload}`; `type` picks the
payload model (a discriminated union), so `decode_event` returns a fully typed
event or raises. `key` is the partition key: the acting user's id unless the
topic table in ARCHITECTURE.md says otherwise.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

Id = Annotated[str, Field(min_length=1, max_length=64)]


def new_event_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- payloads ----------------------------------------------------------------
class VideoUploadedPayload(_Payload):
    video_id: Id
    owner_id: Id
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    object_key: Annotated[str, Field(min_length=1, max_length=1024)]
    size_bytes: Annotated[int, Field(ge=0)]


class VideoReadyPayload(_Payload):
    video_id: Id
    owner_id: Id
    duration_ms: Annotated[int, Field(ge=0)]
    renditions: list[str] = Field(default_factory=list)


class VideoFailedPayload(_Payload):
    video_id: Id
    owner_id: Id
    reason: Annotated[str, Field(max_length=2000)]


class VideoDeletedPayload(_Payload):
    video_id: Id
    owner_id: Id


class VideoLikePayload(_Payload):
    user_id: Id
    video_id: Id


class CommentCreatedPayload(_Payload):
    comment_id: Id
    user_id: Id
    video_id: Id
    text: Annotated[str, Field(max_length=2000)]


class CommentDeletedPayload(_Payload):
    comment_id: Id
    user_id: Id  # who deleted it (the comment's author)
    video_id: Id


class VideoViewedPayload(_Payload):
    user_id: Id
    video_id: Id


class VideoWatchedPayload(_Payload):
    user_id: Id
    video_id: Id
    watched_ms: Annotated[int, Field(ge=0)]
    duration_ms: Annotated[int, Field(gt=0)]

    @property
    def completion(self) -> float:
        """Share of the video watched, capped at 1.0 (re-watches count once)."""
        return min(1.0, self.watched_ms / self.duration_ms)


class AccountPayload(_Payload):
    """A user's public profile as it is after the change."""

    user_id: Id
    handle: Annotated[str, Field(min_length=1, max_length=30)]
    display_name: Annotated[str, Field(max_length=80)] = ""


class FollowPayload(_Payload):
    follower_id: Id
    followee_id: Id


# -- envelope ----------------------------------------------------------------
class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id = Field(default_factory=new_event_id)
    version: int = 1
    occurred_at: datetime = Field(default_factory=utc_now)
    key: Id

    @model_validator(mode="after")
    def _key_matches_payload(self) -> Self:
        payload = getattr(self, "payload", None)
        field = _KEY_FIELDS.get(getattr(self, "type", ""), "")
        if payload is not None and field and getattr(payload, field) != self.key:
            raise ValueError(f"key must equal payload.{field} (the partition key)")
        return self


class VideoUploaded(_Envelope):
    type: Literal["video.uploaded"] = "video.uploaded"
    payload: VideoUploadedPayload


class VideoReady(_Envelope):
    type: Literal["video.ready"] = "video.ready"
    payload: VideoReadyPayload


class VideoFailed(_Envelope):
    type: Literal["video.failed"] = "video.failed"
    payload: VideoFailedPayload


class VideoDeleted(_Envelope):
    type: Literal["video.deleted"] = "video.deleted"
    payload: VideoDeletedPayload


class VideoLiked(_Envelope):
    type: Literal["video.liked"] = "video.liked"
    payload: VideoLikePayload


class VideoUnliked(_Envelope):
    type: Literal["video.unliked"] = "video.unliked"
    payload: VideoLikePayload


class CommentCreated(_Envelope):
    type: Literal["comment.created"] = "comment.created"
    payload: CommentCreatedPayload


class CommentDeleted(_Envelope):
    type: Literal["comment.deleted"] = "comment.deleted"
    payload: CommentDeletedPayload


class VideoViewed(_Envelope):
    type: Literal["video.viewed"] = "video.viewed"
    payload: VideoViewedPayload


class VideoWatched(_Envelope):
    type: Literal["video.watched"] = "video.watched"
    payload: VideoWatchedPayload


class UserFollowed(_Envelope):
    type: Literal["user.followed"] = "user.followed"
    payload: FollowPayload


class UserUnfollowed(_Envelope):
    type: Literal["user.unfollowed"] = "user.unfollowed"
    payload: FollowPayload


class UserCreated(_Envelope):
    type: Literal["user.created"] = "user.created"
    payload: AccountPayload


class UserUpdated(_Envelope):
    type: Literal["user.updated"] = "user.updated"
    payload: AccountPayload


Event = Annotated[
    VideoUploaded
    | VideoReady
    | VideoFailed
    | VideoDeleted
    | VideoLiked
    | VideoUnliked
    | CommentCreated
    | CommentDeleted
    | VideoViewed
    | VideoWatched
    | UserFollowed
    | UserUnfollowed
    | UserCreated
    | UserUpdated,
    Field(discriminator="type"),
]

#: topic -> the event types it carries (ARCHITECTURE.md, "Events").
TOPICS: dict[str, tuple[str, ...]] = {
    "uploads": ("video.uploaded",),
    "videos": ("video.ready", "video.failed", "video.deleted"),
    "engagement": (
        "video.liked",
        "video.unliked",
        "comment.created",
        "comment.deleted",
        "video.viewed",
        "video.watched",
    ),
    "graph": ("user.followed", "user.unfollowed"),
    "accounts": ("user.created", "user.updated"),
}

_TOPIC_OF = {etype: topic for topic, etypes in TOPICS.items() for etype in etypes}

#: event type -> the payload field that is its partition key.
_KEY_FIELDS: dict[str, str] = {
    "video.uploaded": "owner_id",
    "video.ready": "owner_id",
    "video.failed": "owner_id",
    "video.deleted": "owner_id",
    "video.liked": "user_id",
    "video.unliked": "user_id",
    "comment.created": "user_id",
    "comment.deleted": "user_id",
    "video.viewed": "user_id",
    "video.watched": "user_id",
    "user.followed": "follower_id",
    "user.unfollowed": "follower_id",
    "user.created": "user_id",
    "user.updated": "user_id",
}

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def topic_of(event: Event) -> str:
    """The topic an event is published on."""
    return _TOPIC_OF[event.type]


def dead_letter_topic(topic: str) -> str:
    """Where events that failed N times go: `<topic>.dlq`."""
    return f"{topic}.dlq"


def encode_event(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode_event(data: bytes) -> Event:
    """Parse and validate one event (pydantic.ValidationError when invalid)."""
    return _ADAPTER.validate_json(data)


class DeadLetter(BaseModel):
    """What goes to `<topic>.dlq`: the original bytes, where they came from, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str
    topic: str
    partition: int
    offset: int
    key: str
    event_id: str | None
    attempts: int
    error: str
    failed_at: datetime = Field(default_factory=utc_now)
    original: str  # the record's value as UTF-8 (invalid bytes replaced)
