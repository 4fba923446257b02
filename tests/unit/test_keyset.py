"""Keyset predicates: the same rows as the textbook OR form, and a plan that
seeks on the time column instead of scanning (SQLite, the embedded adapter)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    create_engine,
    insert,
    or_,
    select,
)

from reelplane import keyset

pytestmark = pytest.mark.unit

meta = MetaData()
rows_t = Table(
    "rows",
    meta,
    Column("owner", String, nullable=False),
    Column("at", Integer, nullable=False),
    Column("id", String, nullable=False),
    Index("ix_rows_owner_at", "owner", "at"),
)
owner_rows = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 5), st.sampled_from("pqrstu")),
    unique_by=lambda r: (r[0], r[2]),
    max_size=30,
)


@pytest.fixture(scope="module")
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    with engine.connect() as c:
        yield c


def _ids(conn: Connection, where: object, *, desc: bool) -> list[tuple[int, str]]:
    c = rows_t.c
    order = (c.at.desc(), c.id.desc()) if desc else (c.at, c.id)
    query = select(c.at, c.id).where(c.owner == "a", where).order_by(*order)  # type: ignore[arg-type]
    return [(r.at, r.id) for r in conn.execute(query)]


@settings(max_examples=150, deadline=None)
@given(owner_rows, st.integers(-1, 6), st.sampled_from(["", "p", "r", "u", "v"]))
def test_after_and_before_select_what_the_or_form_selects(
    conn: Connection, rows: list[tuple[str, int, str]], at: int, last_id: str
) -> None:
    conn.execute(rows_t.delete())
    if rows:
        conn.execute(insert(rows_t), [{"owner": o, "at": t, "id": i} for o, t, i in rows])
    c = rows_t.c
    textbook_after = or_(c.at > at, and_(c.at == at, c.id > last_id))
    textbook_before = or_(c.at < at, and_(c.at == at, c.id < last_id))
    assert _ids(conn, keyset.after(c.at, c.id, at, last_id), desc=False) == _ids(
        conn, textbook_after, desc=False
    )
    assert _ids(conn, keyset.before(c.at, c.id, at, last_id), desc=True) == _ids(
        conn, textbook_before, desc=True
    )


def _plan(conn: Connection, query: Select[tuple[str]]) -> str:
    """SQLite's plan with bound parameters, as the stores send them (with
    literal values the planner can fold the OR form into a range)."""
    compiled = query.compile(conn)
    assert compiled.positiontup is not None
    params = tuple(compiled.params[k] for k in compiled.positiontup)
    rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
    return " ".join(str(r[-1]) for r in rows)


@pytest.mark.parametrize("predicate", [keyset.after, keyset.before])
def test_sqlite_seeks_on_the_time_column(conn: Connection, predicate: object) -> None:
    c = rows_t.c
    query = select(c.id).where(c.owner == "a", predicate(c.at, c.id, 3, "r"))  # type: ignore[operator]
    plan = _plan(conn, query)
    assert "ix_rows_owner_at (owner=? AND at" in plan, plan
    # the textbook form seeks to the owner only, then reads all of its rows
    textbook = select(c.id).where(c.owner == "a", or_(c.at > 3, and_(c.at == 3, c.id > "r")))
    plan = _plan(conn, textbook)
    assert "ix_rows_owner_at (owner=?)" in plan, plan
