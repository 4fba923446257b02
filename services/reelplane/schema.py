"""Relational schema (SQLAlchemy Core). Alembic migrations in `reelplane/migrations`
create it; keep the two in step (a unit test compares them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
)
from sqlalchemy.sql.expression import true
from sqlalchemy.types import TypeDecorator

from reelplane.videos.model import VideoState


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back as aware UTC on every
    backend (MySQL's DATETIME and SQLite keep no zone of their own)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

#: Ids are 32 hex characters (uuid4) unless a table says otherwise.
ID = String(32)

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("handle", String(30), nullable=False, unique=True),
    Column("display_name", String(80), nullable=False, server_default=""),
    Column("created_at", UTCDateTime(), nullable=False),
    # -- social (0003) --
    # argon2id PHC string; NULL for accounts that cannot log in with a password.
    Column("password_hash", String(255), nullable=True),
    # Kept in the same transaction as the follows rows, so creator tiers are exact.
    Column("follower_count", BigInteger, nullable=False, server_default="0"),
    Column("following_count", BigInteger, nullable=False, server_default="0"),
    # -- digests (0007) --
    # Where notify's digests go (set by PATCH /v1/me; NULL: no digest), and whether
    # the user wants them at all.
    Column("email", String(254), nullable=True),
    Column("digest_enabled", Boolean, nullable=False, server_default=true()),
)

# Opaque bearer sessions. Only the token's SHA-256 is stored, so a leaked table
# cannot be replayed as tokens.
sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Index("ix_sessions_user_id", "user_id"),
)

# -- ingestion ----------------------------------------------------------------
#: Lifecycle of a video: uploading -> uploaded -> transcoding -> ready | failed.
VIDEO_STATES = tuple(VideoState)

# Transcoded output is content-addressed by the source's SHA-256: two uploads of
# the same bytes are two videos sharing one asset (dedup, one transcode).
video_assets = Table(
    "video_assets",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # pending | transcoding | ready | failed
    Column("source_key", String(1024), nullable=False),
    Column("master_playlist_key", String(1024), nullable=True),
    Column("poster_key", String(1024), nullable=True),
    Column("renditions", JSON, nullable=False),  # list of rendition descriptions
    Column("duration_ms", Integer, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("failure_reason", String(500), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("ready_at", UTCDateTime(), nullable=True),
    # Stills every few seconds (recommender inputs), object keys in time order.
    Column("still_keys", JSON, nullable=True),
    # Transcode claim: one worker at a time holds the lease and renews it while
    # it works; a killed worker's lease runs out and another takes the job over.
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("updated_at", UTCDateTime(), nullable=True),
)

videos = Table(
    "videos",
    metadata,
    Column("id", ID, primary_key=True),
    Column("owner_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("caption", String(2200), nullable=False, server_default=""),
    Column("hashtags", JSON, nullable=False),  # list of lowercase tags without '#'
    Column("state", String(16), nullable=False),
    Column("progress_pct", SmallInteger, nullable=False, server_default="0"),
    Column("failure_reason", String(500), nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("asset_sha256", String(64), ForeignKey("video_assets.sha256"), nullable=True),
    Column("size_bytes", BigInteger, nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("ready_at", UTCDateTime(), nullable=True),
    # When video.ready / video.failed was published for the terminal state (an
    # outbox marker: NULL on a terminal video means "announce it again").
    Column("announced_at", UTCDateTime(), nullable=True),
    Index("ix_videos_owner_id_created_at", "owner_id", "created_at"),
    Index("ix_videos_sha256", "sha256"),
    Index("ix_videos_state_ready_at", "state", "ready_at"),
    Index("ix_videos_asset_sha256", "asset_sha256"),
)

#: Lifecycle of a tus upload: active -> completing -> done | failed | terminated.
UPLOAD_STATES = ("active", "completing", "done", "failed", "terminated")

# tus upload state, one row per upload (the upload id is the video id). Bytes
# live in the object store: full parts of an S3 multipart upload plus one
# "pending" object holding the tail shorter than a part, so any replica can
# resume an upload another one started.
uploads = Table(
    "uploads",
    metadata,
    Column("id", ID, primary_key=True),
    Column("owner_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("length", BigInteger, nullable=False),  # Upload-Length, bytes
    Column("offset", BigInteger, nullable=False, server_default="0"),  # durable bytes
    Column("object_key", String(1024), nullable=False),
    Column("multipart_id", String(1024), nullable=True),
    Column("parts", JSON, nullable=False),  # [{number, etag, size}] committed parts
    Column("pending_key", String(1024), nullable=True),
    Column("pending_size", BigInteger, nullable=False, server_default="0"),
    Column("upload_metadata", JSON, nullable=False),  # decoded Upload-Metadata
    Column("lock_owner", String(64), nullable=True),
    Column("lock_expires_at", UTCDateTime(), nullable=True),
    Column("announced_at", UTCDateTime(), nullable=True),  # video.uploaded published
    # tus concatenation: NULL for a plain upload, "partial" (bytes only, no
    # video) or "final" (the partials' bytes joined, `concat_of` their ids).
    Column("concat", String(8), nullable=True),
    Column("concat_of", JSON, nullable=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_uploads_state_expires_at", "state", "expires_at"),
    Index("ix_uploads_owner_id", "owner_id"),
)

# Which events each consumer group has applied: the idempotency record that
# makes a redelivered event a no-op.
processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", UTCDateTime(), nullable=False),
    Column("sequence", BigInteger, nullable=False, server_default="0"),
    Index("ix_processed_events_processed_at", "processed_at"),
)


# Transactional outbox: an event is written in the same transaction as the change
# it reports, published right after the commit and then deleted; the relay
# publishes whatever a crash left behind (consumers skip repeated event ids).
outbox = Table(
    "outbox",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("topic", String(100), nullable=False),
    Column("key", String(100), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),  # the encoded event, as published
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_outbox_created_at", "created_at"),
)


# -- social ---------------------------------------------------------------------
# Who follows whom. The primary key makes following idempotent; the two indexes
# serve "followers of" (fan-out, listings) and "following of" (feeds, listings)
# in created_at order for cursor pagination.
follows = Table(
    "follows",
    metadata,
    Column("follower_id", ID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("followee_id", ID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_follows_followee_id_created_at", "followee_id", "created_at"),
    Index("ix_follows_follower_id_created_at", "follower_id", "created_at"),
)

# One row per (user, video) like: the source of truth the cached counters are
# repaired from.
likes = Table(
    "likes",
    metadata,
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("video_id", ID, ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_likes_video_id", "video_id"),
)

# Comments are stored and returned as the plain text the user sent (clients escape).
comments = Table(
    "comments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("video_id", ID, ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("text", String(2000), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=True),
    Index("ix_comments_video_id_created_at", "video_id", "created_at"),
)

# Views have no row of their own (too many); the views consumer adds them up
# here exactly once per event, and the cached counter is repaired from it.
video_views = Table(
    "video_views",
    metadata,
    Column("video_id", ID, ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True),
    Column("views", BigInteger, nullable=False, server_default="0"),
)


# -- notify ----------------------------------------------------------------------
# One row per user and digest period: the digest job claims it before it sends
# (the primary key makes a rerun of the same period a no-op) and stamps `sent_at`
# after the mail server took the message. A claim left unsent by a crash is taken
# over once it is older than REELPLANE_DIGEST_CLAIM_TTL_S.
digest_sends = Table(
    "digest_sends",
    metadata,
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("period_end", UTCDateTime(), primary_key=True),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("claimed_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
)


# -- ml-serving -------------------------------------------------------------------
# A video's recommender features, computed once when it becomes ready (the
# caption's text embedding, the poster's image features, ...). Serving replicas
# poll `updated_ms` for new and deleted videos; a deleted video keeps a tombstone
# row (deleted = 1) so every replica sees it leave.
video_features = Table(
    "video_features",
    metadata,
    Column("video_id", ID, primary_key=True),
    Column("creator_id", ID, nullable=False),
    Column("feature_version", String(32), nullable=False),
    Column("caption_vec", LargeBinary, nullable=False),  # float32, little-endian
    Column("image_vec", LargeBinary, nullable=False),  # float32, little-endian
    Column("hashtags", JSON, nullable=False),
    Column("duration_ms", Integer, nullable=False, server_default="0"),
    Column("has_audio", SmallInteger, nullable=False, server_default="1"),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("deleted", SmallInteger, nullable=False, server_default="0"),
    Index("ix_video_features_updated_ms", "updated_ms"),
)
