"""A calendar's first render sends one statement and a cache hit one,
counting every statement the driver is sent (BEGIN too), on both databases,
whether the fast path or Flask's handler answers. On SQLite the calendar reads on
a connection of its own whose statements each run alone (no BEGIN), which must
refuse any write."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from labshare.booking import calendar_cache
from labshare.database import AUTOCOMMIT_READS, WriteOutsideLock
from labshare.extensions import db as _db
from labshare.models import Role
from labshare.timeutil import set_clock
from tests.factories import weekday_hours
from tests.helpers import listening

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
MONDAY = dt.datetime(2030, 1, 7, tzinfo=SH)
WEEK = {"from": MONDAY.isoformat(), "to": (MONDAY + dt.timedelta(days=7)).isoformat()}


@pytest.fixture(params=["fast path", "flask"])
def fast_path(request: pytest.FixtureRequest, app: Flask) -> Iterator[bool]:
    fast = app.extensions["labshare_fastpath"]
    fast.enabled = request.param == "fast path"
    try:
        yield fast.enabled
    finally:
        fast.enabled = True


@pytest.fixture
def env(db: Any, make_lab: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    lab = make_lab(hours=weekday_hours("08:00", "18:00"), capacity=1)
    inst = make_instrument(lab=lab, calibration_valid_until=dt.date(2099, 1, 1))
    make_user(Role.SME)
    db.session.commit()
    return SimpleNamespace(lab_id=lab.id, inst_id=inst.id)


@contextlib.contextmanager
def every_statement() -> Iterator[list[str]]:
    sent: list[str] = []

    def listener(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        sent.append(" ".join(statement.split())[:80])

    with listening(listener):
        yield sent


def get(client: FlaskClient, rid: int) -> Any:
    _db.session.remove()  # a request starts with nothing loaded, as in a server
    response = client.get(f"/api/v1/resources/{rid}/availability", query_string=WEEK)
    assert response.status_code == 200, response.get_data(as_text=True)
    _db.session.remove()
    return response


@pytest.mark.parametrize("which", ["inst_id", "lab_id"])
def test_first_render_one_statement_cache_hit_one(
    app: Flask, client: FlaskClient, env: SimpleNamespace, fast_path: bool, which: str
) -> None:
    rid = getattr(env, which)
    calendar_cache.cache_of(app).clear()
    with every_statement() as cold:
        first = get(client, rid)
    assert len(cold) == 1, cold
    assert not any(s.upper().startswith("BEGIN") for s in cold), cold
    with every_statement() as hot:
        again = get(client, rid)
    assert len(hot) == 1, hot
    assert again.get_data() == first.get_data()


def test_a_stale_entry_costs_two_statements_and_shows_the_change(
    app: Flask, client: FlaskClient, env: SimpleNamespace, fast_path: bool, make_booking: Any
) -> None:
    from labshare.models import BookingStatus, Instrument

    calendar_cache.cache_of(app).clear()
    first = get(client, env.inst_id)
    inst = _db.session.get(Instrument, env.inst_id)
    start = (MONDAY + dt.timedelta(hours=9)).astimezone(dt.UTC)
    make_booking(
        resource=inst, start=start, end=start + dt.timedelta(hours=1), status=BookingStatus.APPROVED
    )
    _db.session.commit()
    with every_statement() as stale:
        second = get(client, env.inst_id)
    assert len(stale) == 2, stale  # the versions alone, then everything
    assert second.get_data() != first.get_data()
    assert "booked" in {b["reason"] for b in second.get_json()["busy"]}


def test_the_sqlite_read_only_connection_refuses_writes(app: Flask, env: SimpleNamespace) -> None:
    with app.app_context(), _db.engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            return  # PostgreSQL's calendar connection is in AUTOCOMMIT mode instead
        reader = conn.execution_options(**{AUTOCOMMIT_READS: True})
        assert reader.execute(text("SELECT count(*) FROM resource")).scalar() >= 2
        with pytest.raises(WriteOutsideLock):
            reader.execute(text("UPDATE resource SET name = name WHERE id = :i"), {"i": env.lab_id})


def test_a_calendar_read_in_a_write_transaction_sees_its_writes(
    app: Flask, env: SimpleNamespace
) -> None:
    """Inside a transaction of the request's session the calendar reads through that
    session, so it sees what the request wrote before committing."""
    from labshare.database import begin_write

    with app.app_context():
        if _db.engine.dialect.name != "sqlite":
            return  # PostgreSQL reads calendars on its kept autocommit connection
        calendar_cache.cache().clear()
        begin_write()
        _db.session.execute(
            text("UPDATE resource SET status = 'maintenance' WHERE id = :i"), {"i": env.inst_id}
        )
        doc = calendar_cache.calendar_document(env.inst_id, MONDAY, MONDAY + dt.timedelta(days=7))
        _db.session.rollback()
        assert b'"free":[]' in doc.body.replace(b" ", b"")
