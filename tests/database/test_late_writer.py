"""A late writer on SQLite (``database.begin_read_first``): its reads before
``begin_write`` run each on their own, outside the writers' lock, and
``begin_write`` then begins the write transaction on the same connection keeping
what was loaded. Booking creation reads its token that way (``LOCKS_LATE``)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import inspect, text

from labshare.api.booking_routes import create_booking
from labshare.database import WriteOutsideLock, begin_read_first, begin_write, is_sqlite
from labshare.extensions import db
from labshare.models import AuditLog, Institute, Role
from labshare.retry import LOCKS_LATE
from labshare.sqlite_lock import write_lock_of
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import END, NOW, START, bearer, sent_statements


@pytest.fixture
def sqlite(app: Flask) -> bool:
    """Whether the app runs on SQLite; on PostgreSQL ``begin_read_first`` does
    nothing (a transaction's statements each read the latest committed state)."""
    if is_sqlite():
        return True
    begin_read_first()
    assert not db.session().in_transaction()
    return False


def _held() -> bool:
    lock = write_lock_of(db.engine)
    assert lock is not None  # a database file: writers queue
    return lock.held()


def test_reads_before_begin_write_hold_no_lock_and_stay_loaded(sqlite: bool) -> None:
    if not sqlite:
        return
    institute = factories.make_institute()
    db.session.commit()
    institute_id = institute.id
    db.session.remove()
    with sent_statements() as sent:
        begin_read_first()
        found = db.session.get(Institute, institute_id)
        assert found is not None
        assert not _held()
        raw: Any = db.session.connection().connection.dbapi_connection
        assert not raw.in_transaction
        begin_write()
        assert _held()
        assert "name" not in inspect(found).expired_attributes  # not rolled back
        name = found.name  # no refresh
    assert [s.split(" ", 1)[0] for s in sent] == ["SELECT", "BEGIN"]
    assert sent[1] == "BEGIN IMMEDIATE" and name == institute.name
    db.session.rollback()
    assert not _held()


def test_a_write_before_begin_write_is_refused(sqlite: bool) -> None:
    if not sqlite:
        return
    begin_read_first()
    with pytest.raises(WriteOutsideLock):
        db.session.execute(text("DELETE FROM audit_log"))
    db.session.rollback()
    # the connection's next transaction is an ordinary one
    begin_write()
    db.session.add(AuditLog(action="probe", object_type="x", object_id=1))
    db.session.commit()
    with sent_statements() as sent:
        assert db.session.scalar(text("SELECT count(*) FROM audit_log")) == 1
    assert sent[0] == "BEGIN"  # a reader's transaction again
    db.session.rollback()


def test_booking_creation_reads_its_token_outside_the_lock(
    sqlite: bool, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labshare.api import auth

    set_clock(lambda: NOW)
    inst = factories.make_instrument()
    sme = factories.make_user(Role.SME)
    db.session.commit()
    resource_id = inst.id
    headers = bearer(sme)
    db.session.remove()
    seen: list[bool] = []
    lookup = auth.user_for_token

    def spying(secret: str) -> Any:
        seen.append(_held() if sqlite else False)
        return lookup(secret)

    monkeypatch.setattr(auth, "user_for_token", spying)
    body = {"resource_id": resource_id, "start": START, "end": END, "purpose": "p"}
    with sent_statements() as sent:
        response = client.post("/api/v1/bookings", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert seen == [False]
    assert sent[0].startswith("SELECT api_token.")
    if sqlite:
        assert sent[1] == "BEGIN IMMEDIATE"


def test_only_booking_creation_locks_late(app: Flask) -> None:
    late = [name for name, view in app.view_functions.items() if getattr(view, LOCKS_LATE, False)]
    assert late == ["api.create_booking"]
    assert create_booking.__name__ == "create_booking"


def test_a_with_statement_that_only_reads_is_a_read(sqlite: bool) -> None:
    """A common table expression that reads is allowed where only reads are (it
    counted as a write by its first six characters), and one that changes rows is
    still refused."""
    if not sqlite:
        return
    begin_read_first()
    read = "WITH x AS (SELECT 1 AS updated_at) SELECT updated_at FROM x"
    assert db.session.scalar(text(read)) == 1
    assert not _held()
    for change in (
        "WITH x AS (SELECT 1) DELETE FROM audit_log",
        "with x as (select 1) insert into audit_log (action) select 'a' from x",
    ):
        with pytest.raises(WriteOutsideLock):
            db.session.execute(text(change))
        db.session.rollback()
        begin_read_first()
    db.session.rollback()
