"""Opening periods as half-open local intervals that may end at 24:00 or cross
midnight: the rules, the calendars, the staff form and the migration agree. On
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select, text

from labshare.booking.availability import availability
from labshare.booking.bookings import create_booking
from labshare.booking.rules import format_period, opening_spans, period_minutes
from labshare.errors import RuleViolation
from labshare.extensions import db
from labshare.models import Lab, OpeningPeriod, Role
from labshare.timeutil import set_clock
from labshare.web.bookings.calendar import build_week
from tests import factories
from tests.helpers import flask_db

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
MONDAY = dt.date(2030, 1, 7)
HOUR = dt.timedelta(hours=1)


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), SH)


def _instrument(hours: list[OpeningPeriod]) -> Any:
    set_clock(lambda: NOW)
    lab = factories.make_lab(hours=hours)
    inst = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    db.session.commit()
    return inst


def test_the_arithmetic() -> None:
    assert period_minutes(dt.time(9), dt.time(0)) == 15 * 60
    assert period_minutes(dt.time(22), dt.time(6)) == 8 * 60
    assert period_minutes(dt.time(0), dt.time(0)) == 24 * 60
    assert format_period(dt.time(9), dt.time(0)) == "09:00-24:00"
    spans = opening_spans(
        [(0, dt.time(22), dt.time(6))], "Asia/Shanghai", local(MONDAY, 12), local(MONDAY, 13)
    )
    assert (local(MONDAY, 22), local(MONDAY + dt.timedelta(days=1), 6)) in spans


def test_a_lab_open_around_the_clock_is_bookable_until_midnight(app: Any) -> None:
    inst = _instrument(factories.weekday_hours("00:00", "24:00"))
    sme = factories.make_user(Role.SME)
    booking = create_booking(inst, sme, local(MONDAY, 23), local(MONDAY, 23) + HOUR, purpose="x")
    db.session.commit()
    assert booking.end_at == local(MONDAY + dt.timedelta(days=1), 0).astimezone(dt.UTC)
    across = create_booking(
        inst, sme, local(MONDAY, 23) + 3 * HOUR, local(MONDAY, 23) + 6 * HOUR, purpose="night"
    )
    db.session.commit()
    assert across.status == "approved"


def test_the_calendars_show_no_gap_at_midnight(app: Any) -> None:
    inst = _instrument(factories.weekday_hours("00:00", "24:00"))
    result = availability(inst, local(MONDAY, 20), local(MONDAY + dt.timedelta(days=1), 4))
    assert [i for i in result.busy if i.reason == "closed"] == []
    week = build_week(inst, MONDAY)
    assert week.rows[0] == "00:00" and week.rows[-1] == "23:30"
    assert all(cell.state == "free" for cell in week.cells[-1])


def test_an_overnight_period(app: Any) -> None:
    inst = _instrument([OpeningPeriod(weekday=0, opens=dt.time(22), closes=dt.time(6))])
    sme = factories.make_user(Role.SME)
    tuesday = MONDAY + dt.timedelta(days=1)
    ok = create_booking(inst, sme, local(MONDAY, 23), local(tuesday, 2), purpose="night shift")
    db.session.commit()
    assert ok.status == "approved"
    for start, end in (
        (local(tuesday, 5), local(tuesday, 7)),
        (local(MONDAY, 21), local(MONDAY, 23)),
    ):
        with pytest.raises(RuleViolation) as caught:
            create_booking(inst, sme, start, end, purpose="outside")
        assert caught.value.rule == "opening_hours"
        db.session.rollback()
    result = availability(inst, local(MONDAY, 20), local(tuesday, 8))
    closed = [(i.start, i.end) for i in result.busy if i.reason == "closed"]
    utc = dt.UTC
    assert closed == [
        (local(MONDAY, 20).astimezone(utc), local(MONDAY, 22).astimezone(utc)),
        (local(tuesday, 6).astimezone(utc), local(tuesday, 8).astimezone(utc)),
    ]
    week = build_week(inst, MONDAY)
    assert week.rows[0] == "00:00" and week.rows[-1] == "23:30"  # the morning after shows


def test_the_staff_form_takes_24_00_and_overnight_periods(
    client: Any, login: Any, app: Any
) -> None:
    inst = _instrument(factories.weekday_hours("08:00", "18:00"))
    staff = factories.make_user(Role.STAFF, institute=inst.institute)
    db.session.commit()
    login(staff)
    url = f"/manage/labs/{inst.lab_id}/hours"
    response = client.post(url, data={"day_0": "09:00-24:00", "day_6": "22:00-06:00"})
    assert response.status_code == 302
    db.session.expire_all()
    lab = db.session.get(Lab, inst.lab_id)
    assert [(p.weekday, p.opens, p.closes) for p in lab.opening_periods] == [
        (0, dt.time(9), dt.time(0)),
        (6, dt.time(22), dt.time(6)),
    ]
    page = client.get(url).get_data(as_text=True)
    assert "09:00-24:00" in page and "22:00-06:00" in page
    # Sunday night runs into Monday morning: a Monday period from 05:00 overlaps it
    bad = client.post(url, data={"day_0": "05:00-10:00", "day_6": "22:00-06:00"})
    assert bad.status_code == 422
    assert "must not overlap" in bad.get_data(as_text=True).split('id="day_0-error"', 1)[1]
    same = client.post(url, data={"day_1": "09:00-09:00"})
    assert same.status_code == 422 and 'id="day_1-error"' in same.get_data(as_text=True)
    db.session.expire_all()
    assert len(db.session.get(Lab, inst.lab_id).opening_periods) == 2  # unchanged


def _periods() -> list[tuple[int, dt.time, dt.time]]:
    db.session.remove()
    rows = db.session.execute(
        select(OpeningPeriod.weekday, OpeningPeriod.opens, OpeningPeriod.closes).order_by(
            OpeningPeriod.weekday, OpeningPeriod.opens
        )
    ).all()
    db.session.remove()
    return [tuple(r) for r in rows]  # type: ignore[misc]


BEFORE_MIDNIGHT = "0013_sessions_passwords"


def test_the_migration_turns_23_59_into_24_00_and_back(empty_app: Flask) -> None:
    # The factories need today's schema: make the lab at the head, go back to just
    # before the midnight migration (23:59 survives its downgrade) and up again.
    flask_db(empty_app, "upgrade")
    lab = factories.make_lab(
        hours=[OpeningPeriod(weekday=0, opens=dt.time(9), closes=dt.time(23, 59))]
    )
    lab_id = lab.id
    db.session.commit()
    db.session.remove()
    flask_db(empty_app, "downgrade", BEFORE_MIDNIGHT)
    flask_db(empty_app, "upgrade")
    assert _periods() == [(0, dt.time(9), dt.time(0))]
    db.session.add(OpeningPeriod(lab_id=lab_id, weekday=6, opens=dt.time(22), closes=dt.time(6)))
    db.session.commit()
    db.session.remove()
    flask_db(empty_app, "downgrade", BEFORE_MIDNIGHT)
    assert _periods() == [
        (0, dt.time(0), dt.time(6)),
        (0, dt.time(9), dt.time(23, 59)),
        (6, dt.time(22), dt.time(23, 59)),
    ]
    flask_db(empty_app, "upgrade")
    if db.engine.dialect.name == "sqlite":  # the rebuilt table kept its calendar triggers
        names = set(
            db.session.scalars(
                text(
                    "SELECT name FROM sqlite_master "
                    "WHERE type = 'trigger' AND tbl_name = 'opening_period'"
                )
            )
        )
        assert names == {
            "calendar_opening_period_ins",
            "calendar_opening_period_upd",
            "calendar_opening_period_del",
        }
    before = db.session.scalar(text(f"SELECT calendar_version FROM resource WHERE id = {lab_id}"))
    db.session.execute(text("DELETE FROM opening_period WHERE weekday = 6"))
    db.session.commit()
    after = db.session.scalar(text(f"SELECT calendar_version FROM resource WHERE id = {lab_id}"))
    assert before != after
