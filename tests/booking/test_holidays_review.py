"""The holiday calendar, reviewed: bad input that reached the database, and a year the
calendar does not cover. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.extensions import db
from labshare.models import CalendarDay, Role
from tests import factories
from tests.helpers import bearer, error_of


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "国\x00庆"}, "name"),  # PostgreSQL refuses a NUL in text: was a 500
        ({"name_en": "National\x00Day"}, "name_en"),
        ({"region": "320000\n"}, "region"),  # ``$`` matched before the newline: was a 500
        ({"date": "20301001"}, "date"),  # fromisoformat's basic form is no YYYY-MM-DD
        ({"date": "2030-W40-2"}, "date"),  # nor an ISO week date
    ],
)
def test_bad_text_is_named_and_writes_nothing(
    client: Any, app: Any, change: dict[str, Any], field: str
) -> None:
    admin = factories.make_user(Role.ADMIN, locale="zh_CN")
    db.session.commit()
    body = {"date": "2030-10-01", "kind": "holiday", "name": "国庆节", **change}
    response = client.post("/api/v1/holidays", json=body, headers=bearer(admin))
    assert response.status_code == 422, response.get_json()
    error = error_of(response)
    assert error["field"] == field
    assert not error["message"].isascii()
    assert db.session.scalar(select(func.count(CalendarDay.id))) == 0


# -- a year the calendar does not cover ------------------------------------------------------
# chinese-calendar stops at 2026 and the data file lists no year: from 2027 on, a lab
# that follows the calendar would take bookings through the Spring Festival without a
# word. Bookings stay possible (refusing a whole year would be worse); admins are told.


def _holiday(day: str) -> None:
    import datetime as dt

    db.session.add(
        CalendarDay(
            region="", day=dt.date.fromisoformat(day), kind="holiday", name="元旦", source="admin"
        )
    )
    db.session.commit()


def test_years_without_holidays_are_named(app: Any, db: Any) -> None:
    import datetime as dt

    from labshare.booking import holiday_admin

    _holiday("2026-01-01")
    assert holiday_admin.uncovered_years(dt.date(2026, 12, 5)) == [2027]
    _holiday("2027-01-01")
    assert holiday_admin.uncovered_years(dt.date(2026, 12, 5)) == []
    assert holiday_admin.uncovered_years(dt.date(2028, 3, 1)) == [2028, 2029]


def test_the_api_says_which_years_are_missing(client: Any, app: Any) -> None:
    from labshare.booking import holiday_admin

    year = holiday_admin.local_today().year
    _holiday(f"{year}-01-01")
    response = client.get("/api/v1/holidays/coverage", headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["missing"] == [year + 1]
    assert [y["year"] for y in body["years"]] == [year, year + 1]
    assert body["years"][0]["holidays"] == 1 and body["years"][1]["holidays"] == 0


def test_the_command_line_warns_of_a_year_without_holidays(app: Any) -> None:
    from labshare.booking import holiday_admin

    year = holiday_admin.local_today().year
    _holiday(f"{year}-01-01")
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["holidays", "list", str(year + 1)])
    assert listed.exit_code == 0
    assert f"No public holidays are loaded for {year + 1}" in listed.output
    quiet = runner.invoke(args=["holidays", "list", str(year)])
    assert f"No public holidays are loaded for {year}" not in quiet.output
    checked = runner.invoke(args=["holidays", "check"])
    assert checked.exit_code == 1 and str(year + 1) in checked.output
    _holiday(f"{year + 1}-01-01")
    assert runner.invoke(args=["holidays", "check"]).exit_code == 0


# -- a booking racing a holiday being added ------------------------------------------------


def test_a_booking_racing_a_new_holiday_is_refused_or_reported(app: Any, db: Any) -> None:
    """The booking read the calendar before the holiday was added and commits after the
    admin's list of bookings on it was taken: on PostgreSQL it was neither refused nor
    listed (the admin was told the day was clear)."""
    import time

    from labshare.booking import holiday_admin
    from tests import raceutil
    from tests.booking.test_holidays import NATIONAL_DAY, _instrument, local

    inst = _instrument()
    sme = factories.make_user(Role.SME)
    holiday_admin.put_day(None, day="2030-05-01", kind="holiday", name="劳动节")
    db.session.commit()
    inst_id, sme_id = inst.id, sme.id
    db.session.remove()

    def booking_step() -> Any:
        inner = raceutil.booking_step(
            inst_id, sme_id, local(NATIONAL_DAY, 10), local(NATIONAL_DAY, 12)
        )()

        def act() -> Any:
            booking = inner()
            time.sleep(0.6)  # commits after the admin has added the holiday
            return booking.id

        return act

    def admin_step() -> Any:
        def act() -> list[int]:
            time.sleep(0.2)  # the booking has read the calendar by now
            added = holiday_admin.add_day(None, day=NATIONAL_DAY, kind="holiday", name="国庆节")
            return added.bookings_inside

        return act

    booked, added = raceutil.race(app, [booking_step, admin_step])
    assert added.ok, added.error
    if booked.ok:
        assert booked.value in added.value  # the admin is told of it
    else:
        assert getattr(booked.error, "rule", None) == "holiday", booked.error


def test_a_move_racing_a_new_holiday_is_refused_or_reported(app: Any, db: Any) -> None:
    """The same through ``check_slot`` (moves, approvals, the waitlist): the moved
    booking was on a clear day when the admin listed the bookings on the holiday."""
    import datetime as dt
    import time

    from labshare.booking import holiday_admin
    from labshare.booking.move import move_booking
    from labshare.models import Booking
    from tests import raceutil
    from tests.booking.test_holidays import NATIONAL_DAY, _book, _instrument, local

    inst = _instrument()
    sme = factories.make_user(Role.SME)
    holiday_admin.put_day(None, day="2030-05-01", kind="holiday", name="劳动节")
    db.session.commit()
    before = NATIONAL_DAY + dt.timedelta(days=1)  # a Wednesday
    booking_id = _book(inst, sme, local(before, 10), local(before, 12)).id
    sme_id = sme.id
    db.session.remove()

    def move_step() -> Any:
        booking = db.session.get(Booking, booking_id)
        actor = db.session.get(type(sme), sme_id)

        def act() -> int:
            move_booking(booking, actor, local(NATIONAL_DAY, 10), local(NATIONAL_DAY, 12))
            time.sleep(0.6)  # commits after the admin has added the holiday
            return booking_id

        return act

    def admin_step() -> Any:
        def act() -> list[int]:
            time.sleep(0.2)
            added = holiday_admin.add_day(None, day=NATIONAL_DAY, kind="holiday", name="国庆节")
            return added.bookings_inside

        return act

    moved, added = raceutil.race(app, [move_step, admin_step])
    assert added.ok, added.error
    if moved.ok:
        assert moved.value in added.value
    else:
        assert getattr(moved.error, "rule", None) == "holiday", moved.error


# -- statistics: an overnight period into a holiday ----------------------------------------


def test_open_hours_lose_the_overnight_tail_into_a_holiday(app: Any) -> None:
    """The booking path cuts Monday's 20:00-06:00 at midnight when Tuesday is a holiday
    (``open_spans``); the statistics counted the whole ten hours."""
    import datetime as dt

    from labshare.booking import workdays

    tuesday = dt.date(2030, 10, 1)
    holiday = workdays.Day(tuesday, workdays.HOLIDAY, "国庆节", None, None)
    days = workdays.Days({"": {tuesday: holiday}}, "")
    week = {0: [(dt.time(20), dt.time(6))]}
    changed = workdays.minutes_changed(tuesday - dt.timedelta(days=1), tuesday, week, days)
    assert changed == -6 * 60
    # the same through open_spans: what a booking may use
    start = dt.datetime(2030, 9, 30, tzinfo=dt.UTC) - dt.timedelta(hours=8)
    spans = workdays.open_spans(
        [(0, dt.time(20), dt.time(6))], "Asia/Shanghai", start, start + dt.timedelta(days=2), days
    )
    assert sum((e - s).total_seconds() for s, e in spans) / 60 == 4 * 60
