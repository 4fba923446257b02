"""Social: accounts, follows, likes, comments, view totals.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(255), nullable=True))
        batch.add_column(
            sa.Column("follower_count", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("following_count", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_table(
        "follows",
        sa.Column("follower_id", sa.String(32), nullable=False),
        sa.Column("followee_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("follower_id", "followee_id", name="pk_follows"),
        sa.ForeignKeyConstraint(
            ["follower_id"], ["users.id"], name="fk_follows_follower_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["followee_id"], ["users.id"], name="fk_follows_followee_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_follows_followee_id_created_at", "follows", ["followee_id", "created_at"])
    op.create_index("ix_follows_follower_id_created_at", "follows", ["follower_id", "created_at"])
    op.create_table(
        "likes",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("video_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "video_id", name="pk_likes"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_likes_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.id"], name="fk_likes_video_id_videos", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_likes_video_id", "likes", ["video_id"])
    op.create_table(
        "comments",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("video_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("text", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_comments"),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.id"], name="fk_comments_video_id_videos", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_comments_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_comments_video_id_created_at", "comments", ["video_id", "created_at"])
    op.create_table(
        "video_views",
        sa.Column("video_id", sa.String(32), nullable=False),
        sa.Column("views", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("video_id", name="pk_video_views"),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.id"], name="fk_video_views_video_id_videos", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("video_views")
    op.drop_index("ix_comments_video_id_created_at", table_name="comments")
    op.drop_table("comments")
    op.drop_index("ix_likes_video_id", table_name="likes")
    op.drop_table("likes")
    op.drop_index("ix_follows_follower_id_created_at", table_name="follows")
    op.drop_index("ix_follows_followee_id_created_at", table_name="follows")
    op.drop_table("follows")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("following_count")
        batch.drop_column("follower_count")
        batch.drop_column("password_hash")
