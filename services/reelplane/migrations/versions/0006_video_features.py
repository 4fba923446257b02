"""The recommender's per-video features (ml-serving), with tombstones for deletes.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "video_features",
        sa.Column("video_id", sa.String(32), nullable=False),
        sa.Column("creator_id", sa.String(32), nullable=False),
        sa.Column("feature_version", sa.String(32), nullable=False),
        sa.Column("caption_vec", sa.LargeBinary(), nullable=False),
        sa.Column("image_vec", sa.LargeBinary(), nullable=False),
        sa.Column("hashtags", sa.JSON(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), server_default="0", nullable=False),
        sa.Column("has_audio", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.SmallInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("video_id", name="pk_video_features"),
    )
    op.create_index("ix_video_features_updated_ms", "video_features", ["updated_ms"])


def downgrade() -> None:
    op.drop_index("ix_video_features_updated_ms", table_name="video_features")
    op.drop_table("video_features")
