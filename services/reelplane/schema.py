"""Relational schema (SQLAlchemy Core). Alembic migrations in `reelplane/migrations`
create it; keep the two in step (a unit test compares them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
)
from sqlalchemy.types import TypeDecorator


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
VIDEO_STATES = ("uploading", "uploaded", "transcoding", "ready", "failed", "deleted")

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
    Index("ix_videos_owner_id_created_at", "owner_id", "created_at"),
    Index("ix_videos_sha256", "sha256"),
    Index("ix_videos_state_ready_at", "state", "ready_at"),
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
