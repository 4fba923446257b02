"""Alembic migrations of the relational store, run by `reelplane migrate` and at startup."""
