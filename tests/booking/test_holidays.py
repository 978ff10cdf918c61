"""Public holidays and make-up workdays: the calendar (library, data file, admins),
the engine's two write paths, availability, the calendars, the opt-outs, overnight
periods, the statement budget of the lean path, the API's permissions and bad input,
and the command line. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from labshare.booking import holiday_admin, workdays
from labshare.booking.availability import availability
from labshare.booking.bookings import check_slot, create_booking, lock_resources
from labshare.errors import RuleViolation, ValidationFailed
from labshare.extensions import db
from labshare.models import AuditLog, Booking, OpeningPeriod, Role
from labshare.timeutil import set_clock
from labshare.web.bookings.calendar import build_week
from tests import factories
from tests.helpers import bearer, error_of, sent_statements
from tests.perf.test_perf_booking_path import EXPECTED, MAX_STATEMENTS

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 9, 1, 0, 0, tzinfo=dt.UTC)
NATIONAL_DAY = dt.date(2030, 10, 1)  # a Tuesday
MAKE_UP = dt.date(2030, 9, 28)  # a Saturday
MONDAY = dt.date(2030, 9, 30)
FRIDAY = dt.date(2030, 9, 27)


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), SH)


def _hours() -> list[OpeningPeriod]:
    """Monday 09:00-17:00, Tuesday to Friday 08:00-18:00, closed at weekends."""
    return [
        OpeningPeriod(weekday=0, opens=dt.time(9), closes=dt.time(17)),
        *factories.weekday_hours("08:00", "18:00", range(1, 5)),
    ]


def _calendar(works_as: int | None = None) -> None:
    holiday_admin.put_day(
        None, day="2030-10-01", kind="holiday", name="国庆节", name_en="National Day"
    )
    holiday_admin.put_day(
        None,
        day=MAKE_UP.isoformat(),
        kind="workday",
        name="国庆节",
        name_en="National Day",
        works_as=works_as,
    )


def _instrument(hours: list[OpeningPeriod] | None = None, **lab_kw: Any) -> Any:
    set_clock(lambda: NOW)
    lab = factories.make_lab(hours=hours if hours is not None else _hours(), **lab_kw)
    inst = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    db.session.commit()
    return inst


def _book(inst: Any, sme: Any, start: dt.datetime, end: dt.datetime) -> Booking:
    booking = create_booking(inst, sme, start, end, purpose="test")
    db.session.commit()
    return booking


def _refused(inst: Any, sme: Any, start: dt.datetime, end: dt.datetime) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        create_booking(inst, sme, start, end, purpose="test")
    db.session.rollback()
    return caught.value


def _checked(inst: Any, sme: Any, start: dt.datetime, end: dt.datetime) -> RuleViolation | None:
    """``check_slot`` (the path of series, groups, offers and approvals)."""
    lock_resources([inst.id])
    try:
        check_slot(inst, sme, start.astimezone(dt.UTC), end.astimezone(dt.UTC), NOW)
    except RuleViolation as exc:
        return exc
    finally:
        db.session.rollback()
    return None


# -- the calendar's sources --------------------------------------------------------------


def test_a_library_year_loads_once(app: Any) -> None:
    loaded = holiday_admin.load_year(2026, None)
    db.session.commit()
    assert (loaded.source, loaded.changed) == ("library", True)
    assert loaded.holidays > 20 and loaded.workdays >= 5
    days = {r.day: r for r in holiday_admin.list_days(2026)}
    assert days[dt.date(2026, 10, 1)].kind == "holiday"
    assert days[dt.date(2026, 10, 1)].name == "国庆节"
    assert days[dt.date(2026, 10, 1)].name_en == "National Day"
    assert days[dt.date(2026, 10, 10)].kind == "workday"  # a Saturday worked
    audits = db.session.scalar(select(func.count(AuditLog.id)))
    again = holiday_admin.load_year(2026, None)
    db.session.commit()
    assert again.changed is False
    assert db.session.scalar(select(func.count(AuditLog.id))) == audits  # nothing written


def test_the_data_file_wins_and_covers_years_the_library_lacks(app: Any, tmp_path: Path) -> None:
    path = tmp_path / "holidays.json"
    path.write_text(
        json.dumps(
            {
                "years": {
                    "2030": [
                        {"date": "2030-10-01", "kind": "holiday", "name": "国庆节"},
                        {"date": "2030-09-28", "kind": "workday", "name": "国庆节", "works_as": 1},
                    ]
                }
            }
        ),
        encoding="utf-8",
    )
    app.config["HOLIDAYS_FILE"] = str(path)
    try:
        loaded = holiday_admin.load_year(2030, None)
        db.session.commit()
        assert (loaded.source, loaded.holidays, loaded.workdays) == ("file", 1, 1)
        row = next(r for r in holiday_admin.list_days(2030) if r.kind == "workday")
        assert (row.works_as, row.source) == (1, "file")
        # an admin's day stays when the year is loaded again
        holiday_admin.put_day(None, day="2030-10-02", kind="holiday", name="国庆节")
        db.session.commit()
        holiday_admin.load_year(2030, None)
        db.session.commit()
        assert len(holiday_admin.list_days(2030)) == 3
        # a bad entry names the file and writes nothing
        path.write_text(
            json.dumps({"years": {"2031": [{"date": "2031-02-30", "kind": "holiday"}]}}),
            encoding="utf-8",
        )
        with pytest.raises(ValidationFailed) as caught:
            holiday_admin.load_year(2031, None)
        db.session.rollback()
        assert caught.value.field == "file" and "holidays.json" in str(caught.value.message)
        path.write_text("{not json", encoding="utf-8")
        with pytest.raises(ValidationFailed):
            holiday_admin.load_year(2031, None)
        db.session.rollback()
    finally:
        app.config.pop("HOLIDAYS_FILE")
    assert holiday_admin.list_days(2031) == []


def test_a_year_nobody_has_is_refused(app: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        holiday_admin.load_year(2099, None)
    assert caught.value.field == "year" and "2099" in str(caught.value.message)
    with pytest.raises(ValidationFailed) as bad:
        holiday_admin.load_year(1800, None)
    assert bad.value.field == "year"


# -- the engine ----------------------------------------------------------------------------


def test_closed_on_a_holiday_and_open_on_a_make_up_saturday_with_mondays_hours(
    app: Any,
) -> None:
    inst = _instrument()
    _calendar()
    db.session.commit()
    sme = factories.make_user(Role.SME)
    db.session.commit()
    # the holiday: both paths refuse it, naming the holiday
    refusal = _refused(inst, sme, local(NATIONAL_DAY, 10), local(NATIONAL_DAY, 12))
    assert refusal.rule == "holiday" and refusal.details["holiday"] == "2030-10-01"
    checked = _checked(inst, sme, local(NATIONAL_DAY, 10), local(NATIONAL_DAY, 12))
    assert checked is not None and checked.rule == "holiday"
    assert str(checked.message) == str(refusal.message)
    # the make-up Saturday has Monday's hours, 09:00-17:00, on both paths
    assert _checked(inst, sme, local(MAKE_UP, 9), local(MAKE_UP, 11)) is None
    early = _checked(inst, sme, local(MAKE_UP, 8), local(MAKE_UP, 9))
    assert early is not None and early.rule == "opening_hours"
    assert _refused(inst, sme, local(MAKE_UP, 8), local(MAKE_UP, 9)).rule == "opening_hours"
    assert _book(inst, sme, local(MAKE_UP, 9), local(MAKE_UP, 11)).status == "approved"
    # the other Saturday stays closed; the Tuesday after the holiday is as usual
    other = MAKE_UP + dt.timedelta(days=7)
    assert _refused(inst, sme, local(other, 9), local(other, 11)).rule == "opening_hours"
    after = NATIONAL_DAY + dt.timedelta(days=7)
    assert _book(inst, sme, local(after, 8), local(after, 9)).status == "approved"
    # availability says the same
    result = availability(inst, local(MAKE_UP, 0), local(NATIONAL_DAY + dt.timedelta(days=1), 0))
    holiday = [(i.start, i.end) for i in result.busy if i.reason == "holiday"]
    assert holiday == [
        (
            local(NATIONAL_DAY, 0).astimezone(dt.UTC),
            local(NATIONAL_DAY, 23, 59).astimezone(dt.UTC) + dt.timedelta(minutes=1),
        )
    ]
    free = [(i.start, i.end) for i in result.free]
    assert (local(MAKE_UP, 11).astimezone(dt.UTC), local(MAKE_UP, 17).astimezone(dt.UTC)) in free


def test_a_make_up_day_with_the_weekday_the_notice_names(app: Any) -> None:
    inst = _instrument(
        [
            OpeningPeriod(weekday=0, opens=dt.time(9), closes=dt.time(17)),
            OpeningPeriod(weekday=4, opens=dt.time(13), closes=dt.time(15)),
        ]
    )
    _calendar(works_as=4)
    sme = factories.make_user(Role.SME)
    db.session.commit()
    assert _refused(inst, sme, local(MAKE_UP, 9), local(MAKE_UP, 10)).rule == "opening_hours"
    assert _book(inst, sme, local(MAKE_UP, 13), local(MAKE_UP, 15)).status == "approved"


def test_a_lab_closed_on_mondays_opens_a_make_up_day_with_its_first_workday(app: Any) -> None:
    inst = _instrument(factories.weekday_hours("10:00", "12:00", range(2, 5)))
    _calendar()
    sme = factories.make_user(Role.SME)
    db.session.commit()
    assert _book(inst, sme, local(MAKE_UP, 10), local(MAKE_UP, 12)).status == "approved"


def test_the_message_names_the_holiday_in_the_users_language(client: Any, app: Any) -> None:
    inst = _instrument()
    _calendar()
    zh = factories.make_user(Role.SME, locale="zh_CN")
    en = factories.make_user(Role.SME, locale="en")
    db.session.commit()
    body = {
        "resource_id": inst.id,
        "start": local(NATIONAL_DAY, 10).isoformat(),
        "end": local(NATIONAL_DAY, 12).isoformat(),
        "purpose": "p",
    }
    chinese = client.post("/api/v1/bookings", json=body, headers=bearer(zh))
    english = client.post("/api/v1/bookings", json=body, headers=bearer(en))
    assert chinese.status_code == english.status_code == 422
    zh_error, en_error = error_of(chinese), error_of(english)
    assert zh_error["rule"] == en_error["rule"] == "holiday"
    assert zh_error["field"] == "start"
    assert "国庆节" in zh_error["message"] and "2030-10-01" in zh_error["message"]
    assert "National Day" in en_error["message"] and "holiday" in en_error["message"]
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_an_approval_is_refused_on_a_day_declared_a_holiday_since(app: Any) -> None:
    from labshare.booking.bookings import approve_booking

    set_clock(lambda: NOW)
    lab = factories.make_lab(hours=_hours())
    rules = {**factories.OPEN_RULES, "requires_approval": True}
    inst = factories.make_instrument(lab=lab, rules=rules)
    sme = factories.make_user(Role.SME)
    staff = factories.make_user(Role.STAFF, institute=inst.institute)
    db.session.commit()
    booking = _book(inst, sme, local(NATIONAL_DAY, 10), local(NATIONAL_DAY, 12))
    assert booking.status == "pending"
    _calendar()
    db.session.commit()
    with pytest.raises(RuleViolation) as caught:
        approve_booking(booking, staff)
    db.session.rollback()
    assert caught.value.rule == "holiday"


def test_an_overnight_lab_and_a_booking_into_the_holiday(app: Any) -> None:
    nights = [OpeningPeriod(weekday=d, opens=dt.time(22), closes=dt.time(6)) for d in range(7)]
    inst = _instrument(nights)
    _calendar()
    sme = factories.make_user(Role.SME)
    db.session.commit()
    eve = NATIONAL_DAY - dt.timedelta(days=1)
    day_after = NATIONAL_DAY + dt.timedelta(days=1)
    # the evening before runs until midnight, no further
    assert _book(inst, sme, local(eve, 22), local(NATIONAL_DAY, 0)).status == "approved"
    for start, end in (
        (local(eve, 23), local(NATIONAL_DAY, 1)),  # crosses midnight into the holiday
        (local(NATIONAL_DAY, 22), local(day_after, 2)),  # starts on it
    ):
        assert _refused(inst, sme, start, end).rule == "holiday"
        checked = _checked(inst, sme, start, end)
        assert checked is not None and checked.rule == "holiday"
    # the holiday's own night (into the next morning) does not open at all
    morning = _refused(inst, sme, local(day_after, 1), local(day_after, 2))
    assert morning.rule == "opening_hours"
    # the next evening opens as usual
    assert _book(inst, sme, local(day_after, 22), local(day_after, 23)).status == "approved"


def test_an_institute_and_a_lab_may_opt_out(app: Any) -> None:
    inst = _instrument()
    other = _instrument()
    _calendar()
    sme = factories.make_user(Role.SME)
    db.session.commit()
    holiday_admin.set_institute_follows(None, inst.institute, False)
    holiday_admin.set_lab_follows(None, other.lab, False)
    db.session.commit()
    for resource in (inst, other):
        # the holiday is an ordinary Tuesday; the make-up Saturday an ordinary Saturday
        booked = _book(resource, sme, local(NATIONAL_DAY, 10), local(NATIONAL_DAY, 12))
        assert booked.status == "approved"
        assert _refused(resource, sme, local(MAKE_UP, 9), local(MAKE_UP, 10)).rule == (
            "opening_hours"
        )
        result = availability(resource, local(NATIONAL_DAY, 0), local(NATIONAL_DAY, 23))
        assert not [i for i in result.busy if i.reason == "holiday"]
    # the lab itself (not only its instruments) is bookable
    assert _checked(other.lab, sme, local(NATIONAL_DAY, 13), local(NATIONAL_DAY, 14)) is None


def test_a_provinces_extra_day(app: Any) -> None:
    here = _instrument()  # the factory's institutes are in province 320000
    there = _instrument(institute=factories.make_institute(province_code="110000"))
    sme = factories.make_user(Role.SME)
    holiday_admin.put_day(
        None,
        day="2030-10-09",
        kind="holiday",
        name="省庆",
        name_en="Province Day",
        region="320000",
    )
    db.session.commit()
    day = dt.date(2030, 10, 9)
    assert _refused(here, sme, local(day, 10), local(day, 12)).rule == "holiday"
    assert _book(there, sme, local(day, 10), local(day, 12)).status == "approved"


# -- the calendars -------------------------------------------------------------------------


def test_the_week_grid_shows_the_holiday_and_the_make_up_day(
    client: Any, login: Any, app: Any
) -> None:
    inst = _instrument()
    _calendar()
    sme = factories.make_user(Role.SME, locale="en")
    db.session.commit()
    week = build_week(inst, MONDAY)
    tuesday = week.days.index(NATIONAL_DAY)
    assert {row[tuesday].state for row in week.cells} == {"holiday"}
    assert week.day_notes[tuesday] is not None and week.day_notes[tuesday].kind == "holiday"
    saturday_week = build_week(inst, MAKE_UP - dt.timedelta(days=5))
    saturday = saturday_week.days.index(MAKE_UP)
    assert "free" in {row[saturday].state for row in saturday_week.cells}
    assert saturday_week.day_notes[saturday] is not None
    login(sme)
    page = client.get(f"/resources/{inst.id}/calendar?week=2030-W40").get_data(as_text=True)
    assert "Holiday: National Day" in page and "slot-holiday" in page


def test_the_api_calendar_follows_a_change_of_the_calendar(client: Any, app: Any) -> None:
    inst = _instrument()
    db.session.commit()
    url = (
        f"/api/v1/resources/{inst.id}/availability"
        f"?from={local(NATIONAL_DAY, 0).isoformat()}&to={local(NATIONAL_DAY, 23).isoformat()}"
    ).replace("+", "%2B")
    before = client.get(url)
    assert before.status_code == 200
    assert "holiday" not in {b["reason"] for b in before.get_json()["busy"]}
    _calendar()
    db.session.commit()
    after = client.get(url)
    assert {b["reason"] for b in after.get_json()["busy"]} == {"holiday"}
    assert after.headers["ETag"] != before.headers["ETag"]
    holiday_admin.set_lab_follows(None, inst.lab, False)
    db.session.commit()
    opted_out = client.get(url)
    assert "holiday" not in {b["reason"] for b in opted_out.get_json()["busy"]}


# -- the statement budget of the lean path ---------------------------------------------------


def test_the_lean_path_reads_the_calendar_once_per_change(client: Any, app: Any) -> None:
    inst = _instrument()
    _calendar()
    sme = factories.make_user(Role.SME)
    db.session.commit()
    workdays.forget()
    headers = bearer(sme)
    inst_id = inst.id

    def create(day: dt.date, hour: int) -> tuple[Any, list[str]]:
        body = {
            "resource_id": inst_id,
            "start": local(day, hour).isoformat(),
            "end": local(day, hour + 1).isoformat(),
            "purpose": "p",
        }
        db.session.remove()
        with sent_statements() as sent:
            response = client.post("/api/v1/bookings", json=body, headers=headers)
        return response, sent

    first, sent = create(MAKE_UP, 9)
    assert first.status_code == 201, first.get_json()
    assert sum(1 for s in sent if s.startswith("SELECT calendar_day.")) == 1
    second, sent = create(MAKE_UP, 10)
    assert second.status_code == 201
    assert len(sent) <= MAX_STATEMENTS, "\n".join(sent)
    assert all(s.startswith(EXPECTED) for s in sent), "\n".join(sent)
    # a change reaches the process at its next creation
    holiday_admin.put_day(None, day=MAKE_UP.isoformat(), kind="holiday", name="国庆节")
    db.session.commit()
    third, sent = create(MAKE_UP, 11)
    assert third.status_code == 422 and third.get_json()["error"]["rule"] == "holiday"


# -- statistics: open hours ----------------------------------------------------------------


def test_open_hours_count_holidays_and_make_up_days(app: Any) -> None:
    from labshare.campaign.stats import Period, Scope, open_hours, resources_in
    from labshare.models import Closure

    inst = _instrument(factories.weekday_hours("08:00", "18:00", range(5)))
    other = _instrument(factories.weekday_hours("08:00", "18:00", range(5)))
    holiday_admin.set_lab_follows(None, other.lab, False)
    # 1-7 October: five weekdays (Tue-Fri, Mon 7th) closed; Saturday the 12th worked
    for n in range(1, 8):
        holiday_admin.put_day(None, day=f"2030-10-0{n}", kind="holiday", name="国庆节")
    holiday_admin.put_day(None, day="2030-10-12", kind="workday", name="国庆节")
    # a closure on a holiday takes nothing more away
    db.session.add(
        Closure(
            resource_id=inst.lab_id,
            start_at=local(NATIONAL_DAY, 0).astimezone(dt.UTC),
            end_at=local(NATIONAL_DAY, 23).astimezone(dt.UTC),
        )
    )
    db.session.commit()
    october = Period.month("2030-10")
    infos = resources_in(Scope.everything(), ids={inst.id, other.id})
    hours = open_hours(october, infos)
    weekdays = sum(
        1 for n in range(31) if (dt.date(2030, 10, 1) + dt.timedelta(days=n)).weekday() < 5
    )
    assert hours[other.id] == weekdays * 10  # opted out: the weekly hours
    assert hours[inst.id] == (weekdays - 5 + 1) * 10


def test_check_slot_reads_the_token_once_per_transaction(app: Any) -> None:
    inst = _instrument()
    _calendar()
    sme = factories.make_user(Role.SME)
    db.session.commit()
    lock_resources([inst.id])
    with sent_statements() as sent:
        for hour in (9, 10, 11):  # as a series books its occurrences
            start = local(MAKE_UP, hour).astimezone(dt.UTC)
            check_slot(inst, sme, start, start + dt.timedelta(hours=1), NOW)
        refused = None
        try:
            check_slot(
                inst,
                sme,
                local(NATIONAL_DAY, 9).astimezone(dt.UTC),
                local(NATIONAL_DAY, 10).astimezone(dt.UTC),
                NOW,
            )
        except RuleViolation as exc:
            refused = exc.rule
    db.session.rollback()
    assert refused == "holiday"
    assert sum(1 for s in sent if "FROM calendar_state" in s) == 1, "\n".join(sent)


def test_a_workers_warm_up_still_runs_the_lean_path(app: Any) -> None:
    """The warm-up loads the policy of a probe instrument that has no institute row."""
    from labshare import warmup

    _calendar()
    db.session.commit()
    warmup._warm()  # raises on any failure (warm() would only log it)
