"""Upgrade, downgrade to base and upgrade again: the schema's triggers and indexes
are the same as after a single upgrade, on both backends. A downgrade that
rebuilds a table on SQLite (a batch copy) silently drops the table's triggers, and
the calendar cache would then miss changes (rules, bookings, closures).

Each backend gets its own database (a temporary SQLite file; on PostgreSQL the test
database's name plus ``_roundtrip``)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text

from labshare.extensions import db
from tests import factories
from tests.helpers import flask_db

pytestmark = pytest.mark.slow

SQLITE_SCHEMA = """
    SELECT type, name, tbl_name, sql FROM sqlite_master
     WHERE type IN ('trigger', 'index') AND name NOT LIKE 'sqlite_%'
     ORDER BY type, name
"""
PG_TRIGGERS = """
    SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid)
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT t.tgisinternal AND n.nspname = 'public'
     ORDER BY t.tgname, c.relname
"""
PG_INDEXES = """
    SELECT indexname, tablename, indexdef FROM pg_indexes
     WHERE schemaname = 'public' ORDER BY indexname
"""
PG_FUNCTIONS = """
    SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
      JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'public' AND p.prokind = 'f'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.objid = p.oid AND d.deptype = 'e')
     ORDER BY p.proname
"""


def schema_objects() -> dict[str, list[tuple[object, ...]]]:
    """The triggers, indexes (and on PostgreSQL the trigger functions) of the schema."""
    db.session.remove()
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            return {"sqlite": [tuple(r) for r in conn.execute(text(SQLITE_SCHEMA))]}
        return {
            "triggers": [tuple(r) for r in conn.execute(text(PG_TRIGGERS))],
            "indexes": [tuple(r) for r in conn.execute(text(PG_INDEXES))],
            "functions": [tuple(r) for r in conn.execute(text(PG_FUNCTIONS))],
        }


def test_round_trip_keeps_triggers_and_indexes(empty_app: Flask) -> None:
    flask_db(empty_app, "upgrade")
    once = schema_objects()
    assert any("calendar_booking_rules" in str(row) for rows in once.values() for row in rows)
    flask_db(empty_app, "downgrade", "base")
    flask_db(empty_app, "upgrade")
    again = schema_objects()
    assert_same(once, again, "base")


def assert_same(
    once: dict[str, list[tuple[object, ...]]], again: dict[str, list[tuple[object, ...]]], via: str
) -> None:
    for kind in once:
        missing = sorted(set(once[kind]) - set(again[kind]), key=str)
        extra = sorted(set(again[kind]) - set(once[kind]), key=str)
        assert not missing and not extra, f"via {via}, {kind}: missing {missing}, extra {extra}"


def revisions() -> list[str]:
    """Every revision from the head down, in the order ``downgrade -1`` reaches them."""
    from alembic.script import ScriptDirectory
    from flask import current_app

    script = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
    return [rev.revision for rev in script.walk_revisions()]


def test_round_trip_through_every_revision(empty_app: Flask) -> None:
    """Down to each revision and up again: a partial round trip must not lose what a
    later downgrade rebuilt (e.g. a batch copy of a table that an earlier revision
    gave triggers)."""
    flask_db(empty_app, "upgrade")
    once = schema_objects()
    for revision in revisions()[1:]:
        flask_db(empty_app, "downgrade", revision)
        flask_db(empty_app, "upgrade")
        assert_same(once, schema_objects(), revision)


def test_rule_change_invalidates_calendars_after_a_round_trip(empty_app: Flask) -> None:
    flask_db(empty_app, "upgrade")
    flask_db(empty_app, "downgrade", "0008_waitlist")  # below 0009, above 0006's triggers
    flask_db(empty_app, "upgrade")
    instrument = factories.make_instrument(rules={"buffer_minutes": 0})
    db.session.commit()
    version = text("SELECT calendar_version FROM resource WHERE id = :i")
    before = db.session.scalar(version, {"i": instrument.id})
    db.session.execute(
        text("UPDATE booking_rules SET buffer_minutes = 30 WHERE resource_id = :i"),
        {"i": instrument.id},
    )
    db.session.commit()
    assert db.session.scalar(version, {"i": instrument.id}) != before
