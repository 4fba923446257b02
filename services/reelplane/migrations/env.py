"""Alembic environment: runs on a connection handed in by `reelplane.ports.relational`."""

from __future__ import annotations

from alembic import context

from reelplane.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `reelplane migrate`, which supplies a connection")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
