"""The event envelope, the topic table and the runner's retry policy (pure logic)."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from reelplane.events.envelope import (
    AccountPayload,
    CommentCreated,
    CommentCreatedPayload,
    CommentDeleted,
    CommentDeletedPayload,
    Event,
    FollowPayload,
    UserCreated,
    UserFollowed,
    UserUnfollowed,
    UserUpdated,
    VideoDeleted,
    VideoDeletedPayload,
    VideoFailed,
    VideoFailedPayload,
    VideoLiked,
    VideoLikePayload,
    VideoReady,
    VideoReadyPayload,
    VideoUnliked,
    VideoUploaded,
    VideoUploadedPayload,
    VideoViewed,
    VideoViewedPayload,
    VideoWatched,
    VideoWatchedPayload,
    dead_letter_topic,
    decode_event,
    encode_event,
    topic_of,
)
from reelplane.events.runner import RetryPolicy

pytestmark = pytest.mark.unit

OWNER, USER, FOLLOWEE, VIDEO = "owner-1", "user-2", "user-3", "video-9"

# One event of every type, each keyed by its partition key.
SAMPLES: list[Event] = [
    VideoUploaded(
        key=OWNER,
        payload=VideoUploadedPayload(
            video_id=VIDEO, owner_id=OWNER, sha256="ab" * 32, object_key="raw/v9", size_bytes=42
        ),
    ),
    VideoReady(
        key=OWNER,
        payload=VideoReadyPayload(
            video_id=VIDEO, owner_id=OWNER, duration_ms=15_000, renditions=["360p", "720p"]
        ),
    ),
    VideoFailed(
        key=OWNER, payload=VideoFailedPayload(video_id=VIDEO, owner_id=OWNER, reason="bad codec")
    ),
    VideoDeleted(key=OWNER, payload=VideoDeletedPayload(video_id=VIDEO, owner_id=OWNER)),
    VideoLiked(key=USER, payload=VideoLikePayload(user_id=USER, video_id=VIDEO)),
    VideoUnliked(key=USER, payload=VideoLikePayload(user_id=USER, video_id=VIDEO)),
    CommentCreated(
        key=USER,
        payload=CommentCreatedPayload(
            comment_id="c-1", user_id=USER, video_id=VIDEO, text="nice \u2728"
        ),
    ),
    CommentDeleted(
        key=USER, payload=CommentDeletedPayload(comment_id="c-1", user_id=USER, video_id=VIDEO)
    ),
    VideoViewed(key=USER, payload=VideoViewedPayload(user_id=USER, video_id=VIDEO)),
    VideoWatched(
        key=USER,
        payload=VideoWatchedPayload(
            user_id=USER, video_id=VIDEO, watched_ms=7_500, duration_ms=15_000
        ),
    ),
    UserFollowed(key=USER, payload=FollowPayload(follower_id=USER, followee_id=FOLLOWEE)),
    UserUnfollowed(key=USER, payload=FollowPayload(follower_id=USER, followee_id=FOLLOWEE)),
    UserCreated(key=USER, payload=AccountPayload(user_id=USER, handle="ada")),
    UserUpdated(
        key=USER, payload=AccountPayload(user_id=USER, handle="ada", display_name="Ada L.")
    ),
]

# The "Events" topic table of the architecture (event type -> topic, partition key).
TOPIC_TABLE: dict[str, tuple[str, str]] = {
    "video.uploaded": ("uploads", "owner_id"),
    "video.ready": ("videos", "owner_id"),
    "video.failed": ("videos", "owner_id"),
    "video.deleted": ("videos", "owner_id"),
    "video.liked": ("engagement", "user_id"),
    "video.unliked": ("engagement", "user_id"),
    "comment.created": ("engagement", "user_id"),
    "comment.deleted": ("engagement", "user_id"),
    "video.viewed": ("engagement", "user_id"),
    "video.watched": ("engagement", "user_id"),
    "user.followed": ("graph", "follower_id"),
    "user.unfollowed": ("graph", "follower_id"),
    "user.created": ("accounts", "user_id"),
    "user.updated": ("accounts", "user_id"),
}

_IDS = [ev.type for ev in SAMPLES]


def _event_classes() -> set[type]:
    union = get_args(Event)[0]
    return set(get_args(union))


def test_samples_cover_every_event_type() -> None:
    assert {type(ev) for ev in SAMPLES} == _event_classes()
    assert {ev.type for ev in SAMPLES} == set(TOPIC_TABLE)


@pytest.mark.parametrize("event", SAMPLES, ids=_IDS)
def test_round_trip_through_encode_decode(event: Event) -> None:
    data = encode_event(event)
    assert isinstance(data, bytes)
    decoded = decode_event(data)
    assert type(decoded) is type(event)
    assert decoded == event
    assert decoded.occurred_at.utcoffset() is not None
    assert encode_event(decoded) == data


@pytest.mark.parametrize("event", SAMPLES, ids=_IDS)
def test_key_is_the_payload_partition_key(event: Event) -> None:
    field = TOPIC_TABLE[event.type][1]
    assert event.key == getattr(event.payload, field)


@pytest.mark.parametrize("event", SAMPLES, ids=_IDS)
def test_key_other_than_partition_key_is_rejected(event: Event) -> None:
    field = TOPIC_TABLE[event.type][1]
    payload = event.payload.model_dump()
    # Any other id of the payload (or an unrelated value) is the wrong key.
    wrong_keys = {"someone-else"} | {
        v for k, v in payload.items() if k != field and k.endswith("_id") and v != event.key
    }
    for wrong in wrong_keys:
        with pytest.raises(ValidationError, match="partition key"):
            type(event).model_validate({**event.model_dump(), "key": wrong})
        raw = json.loads(encode_event(event))
        raw["key"] = wrong
        with pytest.raises(ValidationError):
            decode_event(json.dumps(raw).encode())


@pytest.mark.parametrize("event", SAMPLES, ids=_IDS)
def test_topic_of_matches_the_topic_table(event: Event) -> None:
    assert topic_of(event) == TOPIC_TABLE[event.type][0]


def test_dead_letter_topic() -> None:
    assert dead_letter_topic("engagement") == "engagement.dlq"


@pytest.mark.parametrize("bad_type", ["video.exploded", "", "VIDEO.VIEWED", None])
def test_unknown_type_is_rejected(bad_type: str | None) -> None:
    raw: dict[str, Any] = json.loads(encode_event(SAMPLES[7]))
    raw["type"] = bad_type
    with pytest.raises(ValidationError):
        decode_event(json.dumps(raw).encode())


def test_missing_type_and_extra_fields_are_rejected() -> None:
    raw: dict[str, Any] = json.loads(encode_event(SAMPLES[7]))
    with pytest.raises(ValidationError):
        decode_event(json.dumps({k: v for k, v in raw.items() if k != "type"}).encode())
    with pytest.raises(ValidationError):
        decode_event(json.dumps({**raw, "surprise": 1}).encode())
    with pytest.raises(ValidationError):
        decode_event(json.dumps({**raw, "payload": {**raw["payload"], "x": 1}}).encode())
    with pytest.raises(ValidationError):
        decode_event(b"not json")


def test_payload_of_another_type_is_rejected() -> None:
    raw: dict[str, Any] = json.loads(encode_event(SAMPLES[7]))  # video.viewed
    raw["type"] = "video.watched"  # needs watched_ms / duration_ms
    with pytest.raises(ValidationError):
        decode_event(json.dumps(raw).encode())


@given(watched=st.integers(0, 10**12), duration=st.integers(1, 10**12))
def test_completion_is_a_share_between_0_and_1(watched: int, duration: int) -> None:
    payload = VideoWatchedPayload(
        user_id=USER, video_id=VIDEO, watched_ms=watched, duration_ms=duration
    )
    assert 0.0 <= payload.completion <= 1.0
    if watched >= duration:
        assert payload.completion == 1.0
    else:
        assert payload.completion == pytest.approx(watched / duration)


def test_watched_payload_rejects_impossible_durations() -> None:
    with pytest.raises(ValidationError):
        VideoWatchedPayload(user_id=USER, video_id=VIDEO, watched_ms=1, duration_ms=0)
    with pytest.raises(ValidationError):
        VideoWatchedPayload(user_id=USER, video_id=VIDEO, watched_ms=-1, duration_ms=10)


@given(
    first=st.floats(min_value=1e-6, max_value=10.0),
    cap=st.floats(min_value=0.0, max_value=120.0),
    attempt=st.integers(min_value=1, max_value=5_000),
)
def test_backoff_is_non_decreasing_and_capped(first: float, cap: float, attempt: int) -> None:
    policy = RetryPolicy(max_attempts=attempt + 1, first_backoff_s=first, max_backoff_s=cap)
    now, later = policy.backoff_s(attempt), policy.backoff_s(attempt + 1)
    assert 0.0 <= now <= later <= cap
    assert policy.backoff_s(1) == min(first, cap)
    assert policy.backoff_s(attempt + 2_000) == cap  # it does reach the cap


def test_default_backoff_doubles_until_the_cap() -> None:
    policy = RetryPolicy()
    delays = [policy.backoff_s(a) for a in range(1, 10)]
    assert delays[:4] == [0.05, 0.1, 0.2, 0.4]
    assert delays[-1] == policy.max_backoff_s
