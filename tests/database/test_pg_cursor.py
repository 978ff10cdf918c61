"""The PostgreSQL engine's cursors build ``description`` only when it is read
(labshare/pg_cursor.py): what it holds is psycopg's own description."""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask
from sqlalchemy import select, text

from labshare.extensions import db
from labshare.models import Institute
from labshare.pg_cursor import LazyDescription, LazyDescriptionCursor

pytestmark = pytest.mark.postgresql_only

_QUERY = "SELECT 1 AS one, 'x'::text AS word, now() AS at, 1.5::numeric(4, 2) AS amount"


def _plain(app: Flask, sql: str) -> list[tuple[object, ...]]:
    raw = psycopg.connect(app.config["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", ""))
    try:
        cursor = raw.cursor()
        cursor.execute(sql)
        assert cursor.description is not None
        return [tuple(column) for column in cursor.description]
    finally:
        raw.close()


def test_the_engines_cursor_describes_as_psycopg_does(app: Flask) -> None:
    with db.engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        assert isinstance(cursor, LazyDescriptionCursor)
        cursor.execute(_QUERY)
        described = cursor.description
        assert isinstance(described, LazyDescription)
        assert len(described) == 4
        # read after the cursor moved on: it still describes its own result
        cursor.execute("SELECT 2 AS two")
        assert [tuple(column) for column in described] == _plain(app, _QUERY)
        assert [column.name for column in cursor.description or ()] == ["two"]
        assert described[1].name == "word" and described[-1].name == "amount"
        cursor.execute("SET TIME ZONE 'UTC'")
        assert cursor.description is None  # no result rows: None, as psycopg says


def test_sqlalchemy_reads_results_by_name_through_it(app: Flask) -> None:
    # a statement's first run builds its result metadata from the description
    row = db.session.execute(text(_QUERY + ", 7 AS seven")).one()
    assert row.one == 1 and row.word == "x" and row.seven == 7
    assert db.session.execute(select(Institute.id).where(Institute.id == -1)).first() is None
