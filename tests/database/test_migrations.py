"""Migrations up and down on an empty database of each backend, the PostgreSQL
exclusion constraint they build, and no drift between the models and the migrations.

Each backend gets its own database (a temporary SQLite file; on PostgreSQL the test
database's name plus ``_mig``), so these tests never touch the shared test database.
"""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from labshare.extensions import db
from labshare.models import Base, BookingStatus
from tests import factories
from tests.helpers import flask_db


def tables() -> set[str]:
    db.session.remove()
    # search_fts and its shadow tables: SQLite's FTS5 index of search_doc (0018),
    # made by the migration, not a model.
    names = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
    return {n for n in names if not n.startswith("search_fts")}


SEARCH_INDEXES = {
    "ix_search_doc_tsv",
    "ix_search_doc_name_tsv",
    "ix_search_doc_id_name_tsv",
    "ix_resource_lower_name",
    "ix_resource_lower_name_en",
}


def model_tables() -> set[str]:
    return set(Base.metadata.tables)


def test_upgrade_builds_every_table_and_downgrade_removes_them(empty_app: Flask) -> None:
    assert tables() == set()
    flask_db(empty_app, "upgrade")
    assert tables() == model_tables()
    flask_db(empty_app, "downgrade", "base")
    assert tables() == set()
    flask_db(empty_app, "upgrade")
    assert tables() == model_tables()


def test_models_match_the_migrations(empty_app: Flask) -> None:
    """A model change without a migration shows up here as a difference."""
    flask_db(empty_app, "upgrade")
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    # The search index's lookup structures are the migration's, not the models':
    # the FTS5 tables on SQLite, the GIN indexes and their stored tsvectors on
    # PostgreSQL (0018, 0028).
    diff = [
        d
        for d in diff
        if not (d[0] == "remove_table" and d[1].name.startswith("search_fts"))
        and not (d[0] == "remove_index" and d[1].name in SEARCH_INDEXES)
        and not (
            d[0] == "remove_column" and d[2] == "search_doc" and d[3].name in ("tsv", "name_tsv")
        )
    ]
    assert diff == []


@pytest.mark.parametrize("empty_app", ["postgresql"], indirect=True)
def test_postgres_exclusion_constraint(empty_app: Flask) -> None:
    assert db.engine.dialect.name == "postgresql"
    flask_db(empty_app, "upgrade")
    definition = db.session.scalar(
        text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'ex_booking_no_overlap' AND contype = 'x'"
        )
    )
    assert definition is not None
    assert "EXCLUDE USING gist" in definition
    assert "tstzrange(start_at, end_at, '[)'::text) WITH &&" in definition
    where = definition.split("WHERE", 1)[1]
    assert "pending" in where and "approved" in where and "instrument" in where

    instrument = factories.make_instrument()
    start = dt.datetime(2030, 1, 7, 1, 0, tzinfo=dt.UTC)
    factories.make_booking(resource=instrument, start=start, end=start + dt.timedelta(hours=2))
    # Back to back is fine ('[)'), and a cancelled booking holds no time.
    factories.make_booking(
        resource=instrument,
        start=start + dt.timedelta(hours=2),
        end=start + dt.timedelta(hours=3),
        status=BookingStatus.APPROVED,
    )
    factories.make_booking(
        resource=instrument,
        start=start,
        end=start + dt.timedelta(hours=1),
        status=BookingStatus.CANCELLED,
    )
    db.session.commit()
    with pytest.raises(IntegrityError) as caught:
        factories.make_booking(
            resource=instrument,
            start=start + dt.timedelta(hours=1),
            end=start + dt.timedelta(hours=3),
            status=BookingStatus.APPROVED,
        )
    assert getattr(caught.value.orig, "sqlstate", None) == "23P01"
    db.session.rollback()
