"""Ingestion: video assets (content-addressed renditions), videos and tus uploads.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "video_assets",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source_key", sa.String(1024), nullable=False),
        sa.Column("master_playlist_key", sa.String(1024), nullable=True),
        sa.Column("poster_key", sa.String(1024), nullable=True),
        sa.Column("renditions", sa.JSON(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("failure_reason", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("ready_at", sa.DateTime(), nullable=True),
        sa.Column("still_keys", sa.JSON(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("sha256", name="pk_video_assets"),
    )
    op.create_table(
        "videos",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("owner_id", sa.String(32), nullable=False),
        sa.Column("caption", sa.String(2200), nullable=False, server_default=""),
        sa.Column("hashtags", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress_pct", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("failure_reason", sa.String(500), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("asset_sha256", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("ready_at", sa.DateTime(), nullable=True),
        sa.Column("announced_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_videos"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_videos_owner_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["asset_sha256"], ["video_assets.sha256"], name="fk_videos_asset_sha256_video_assets"
        ),
    )
    op.create_index("ix_videos_owner_id_created_at", "videos", ["owner_id", "created_at"])
    op.create_index("ix_videos_sha256", "videos", ["sha256"])
    op.create_index("ix_videos_state_ready_at", "videos", ["state", "ready_at"])
    op.create_index("ix_videos_asset_sha256", "videos", ["asset_sha256"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("owner_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("multipart_id", sa.String(1024), nullable=True),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("pending_key", sa.String(1024), nullable=True),
        sa.Column("pending_size", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("upload_metadata", sa.JSON(), nullable=False),
        sa.Column("lock_owner", sa.String(64), nullable=True),
        sa.Column("lock_expires_at", sa.DateTime(), nullable=True),
        sa.Column("announced_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_uploads_owner_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_uploads_state_expires_at", "uploads", ["state", "expires_at"])
    op.create_index("ix_uploads_owner_id", "uploads", ["owner_id"])


def downgrade() -> None:
    op.drop_table("uploads")
    op.drop_table("videos")
    op.drop_table("video_assets")
