"""Digests: the user's e-mail address and opt-out, and the record of each sent digest.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
        batch.add_column(
            sa.Column("digest_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_table(
        "digest_sends",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("period_end", sa.DateTime(), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", "period_end", name="pk_digest_sends"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_digest_sends_user_id_users", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("digest_sends")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("digest_enabled")
        batch.drop_column("email")
