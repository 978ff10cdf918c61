"""An institute in Europe/Berlin: the slot grid, opening hours, durations and
availability hold across both daylight-saving switches of 2026 (29 March, clocks
02:00 -> 03:00; 25 October, 03:00 -> 02:00)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from labshare.booking.availability import availability
from labshare.booking.bookings import create_booking
from labshare.booking.rules import local_instant, on_grid
from labshare.errors import RuleViolation
from labshare.models import OpeningPeriod, Role
from labshare.timeutil import set_clock
from tests.factories import weekday_hours

BERLIN = ZoneInfo("Europe/Berlin")
SPRING = dt.date(2026, 3, 29)
AUTUMN = dt.date(2026, 10, 25)
RULES = {
    "slot_minutes": 120,
    "min_minutes": 60,
    "max_minutes": 600,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "requires_approval": True,
    "max_active_per_company": 100,
    "cancel_deadline_hours": 0,
}


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def berlin(day: dt.date, h: int, mi: int = 0, fold: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, h, mi, tzinfo=BERLIN, fold=fold)


pytestmark = pytest.mark.usefixtures("cheap_passwords")


@pytest.fixture
def env(
    db: Any, make_institute: Any, make_lab: Any, make_instrument: Any, make_user: Any
) -> SimpleNamespace:
    set_clock(lambda: utc(2026, 3, 1))
    institute = make_institute(timezone="Europe/Berlin")
    lab = make_lab(institute=institute, hours=weekday_hours("08:00", "18:00"))
    inst = make_instrument(lab=lab, rules=dict(RULES))
    night_lab = make_lab(
        institute=institute,
        hours=weekday_hours("00:00", "23:30"),
        rules={**RULES, "slot_minutes": 30},
        fee_per_hour=Decimal("100"),
    )
    sme = make_user(Role.SME)
    db.session.commit()
    return SimpleNamespace(lab=lab, inst=inst, night_lab=night_lab, sme=sme)


def book(env: SimpleNamespace, start: dt.datetime, end: dt.datetime, resource: Any = None) -> Any:
    return create_booking(resource or env.inst, env.sme, start, end, purpose="Kalibrierung")


def rule(env: SimpleNamespace, db: Any, start: dt.datetime, end: dt.datetime) -> str | None:
    with pytest.raises(RuleViolation) as info:
        book(env, start, end)
    db.session.rollback()
    return info.value.rule


@pytest.mark.parametrize(
    ("day", "offset_hours"),
    [
        (SPRING - dt.timedelta(days=1), 1),  # Saturday, CET
        (SPRING, 2),  # Sunday, the switch: CEST from 03:00
        (AUTUMN - dt.timedelta(days=1), 2),  # Saturday, CEST
        (AUTUMN, 1),  # Sunday, the switch: CET from 03:00 CEST
    ],
)
def test_grid_and_opening_hours_follow_the_local_clock(db, env, day, offset_hours):
    if day.month == 10:
        set_clock(lambda: utc(2026, 10, 1))
    # 08:00-10:00 local is on the 2-hour grid and inside opening hours
    booking = book(env, berlin(day, 8), berlin(day, 10))
    db.session.commit()
    assert booking.start_at == utc(day.year, day.month, day.day, 8 - offset_hours)
    assert booking.start_at.hour == 8 - offset_hours
    # 09:00 local is off the 2-hour grid, whatever the UTC hour
    assert rule(env, db, berlin(day, 9), berlin(day, 11)) == "granularity"
    # an even UTC hour is on the local grid in summer only
    even_utc = utc(day.year, day.month, day.day, 12)
    if offset_hours == 2:
        book(env, even_utc, even_utc + dt.timedelta(hours=2))
        db.session.commit()
    else:
        assert rule(env, db, even_utc, even_utc + dt.timedelta(hours=2)) == "granularity"
    # 06:00-08:00 local is before opening, 18:00-20:00 after closing
    assert rule(env, db, berlin(day, 6), berlin(day, 8)) == "opening_hours"
    assert rule(env, db, berlin(day, 18), berlin(day, 20)) == "opening_hours"
    book(env, berlin(day, 16), berlin(day, 18))


def test_night_booking_across_spring_forward_is_two_hours(db, env):
    booking = book(env, berlin(SPRING, 1), berlin(SPRING, 4), env.night_lab)
    assert booking.end_at - booking.start_at == dt.timedelta(hours=2)
    assert booking.fee == Decimal("200.00")


def test_night_booking_across_fall_back_is_four_hours(db, env):
    set_clock(lambda: utc(2026, 10, 1))
    booking = book(env, berlin(AUTUMN, 1), berlin(AUTUMN, 4), env.night_lab)
    assert booking.end_at - booking.start_at == dt.timedelta(hours=4)
    assert booking.fee == Decimal("400.00")


def test_the_repeated_hour_is_on_the_grid_both_times(db, env):
    set_clock(lambda: utc(2026, 10, 1))
    first = berlin(AUTUMN, 2, 30, fold=0)  # 00:30 UTC, CEST
    second = berlin(AUTUMN, 2, 30, fold=1)  # 01:30 UTC, CET
    assert second - first == dt.timedelta(0)  # same wall time ...
    assert second.astimezone(dt.UTC) - first.astimezone(dt.UTC) == dt.timedelta(hours=1)
    assert on_grid(first, 30, "Europe/Berlin") and on_grid(second, 30, "Europe/Berlin")
    booking = book(env, first, second, env.night_lab)  # 02:30 -> 02:30, one hour
    assert booking.end_at - booking.start_at == dt.timedelta(hours=1)


def test_availability_of_the_spring_forward_day(db, env):
    start, end = berlin(SPRING, 0), berlin(SPRING + dt.timedelta(days=1), 0)
    assert end.astimezone(dt.UTC) - start.astimezone(dt.UTC) == dt.timedelta(hours=23)
    a = availability(env.inst, start, end)
    assert a.timezone == "Europe/Berlin"
    assert [(i.start, i.end, i.reason) for i in a.busy] == [
        (utc(2026, 3, 28, 23), utc(2026, 3, 29, 6), "closed"),
        (utc(2026, 3, 29, 16), utc(2026, 3, 29, 22), "closed"),
    ]
    assert [(i.start, i.end) for i in a.free] == [(utc(2026, 3, 29, 6), utc(2026, 3, 29, 16))]


def test_availability_of_the_fall_back_day(db, env):
    start, end = berlin(AUTUMN, 0), berlin(AUTUMN + dt.timedelta(days=1), 0)
    assert end.astimezone(dt.UTC) - start.astimezone(dt.UTC) == dt.timedelta(hours=25)
    a = availability(env.inst, start, end)
    assert [(i.start, i.end, i.reason) for i in a.busy] == [
        (utc(2026, 10, 24, 22), utc(2026, 10, 25, 7), "closed"),
        (utc(2026, 10, 25, 17), utc(2026, 10, 25, 23), "closed"),
    ]
    assert [(i.start, i.end) for i in a.free] == [(utc(2026, 10, 25, 7), utc(2026, 10, 25, 17))]


def test_availability_across_the_switch_has_both_offsets(db, env):
    a = availability(env.inst, berlin(SPRING, 0) - dt.timedelta(days=1), berlin(SPRING, 23))
    assert [(i.start, i.end) for i in a.free] == [
        (utc(2026, 3, 28, 7), utc(2026, 3, 28, 17)),
        (utc(2026, 3, 29, 6), utc(2026, 3, 29, 16)),
    ]


def test_opening_time_inside_the_gap_starts_when_the_gap_ends(db, env):
    """A period opening at 02:30 opens, on the spring-forward Sunday, at 03:00 CEST."""
    env.lab.opening_periods = [OpeningPeriod(weekday=6, opens=dt.time(2, 30), closes=dt.time(6, 0))]
    db.session.commit()
    assert local_instant(SPRING, dt.time(2, 30), "Europe/Berlin") == utc(2026, 3, 29, 1)
    a = availability(env.inst, berlin(SPRING, 0), berlin(SPRING, 12))
    assert [(i.start, i.end) for i in a.free] == [(utc(2026, 3, 29, 1), utc(2026, 3, 29, 4))]
    # a week earlier, without the switch, it opens at 02:30 CET
    week_before = SPRING - dt.timedelta(days=7)
    a = availability(env.inst, berlin(week_before, 0), berlin(week_before, 12))
    assert [(i.start, i.end) for i in a.free] == [(utc(2026, 3, 22, 1, 30), utc(2026, 3, 22, 5))]


def test_calibration_ends_with_the_local_day(db, env):
    env.inst.calibration_valid_until = SPRING
    db.session.commit()
    a = availability(env.inst, utc(2026, 3, 29, 12), utc(2026, 3, 30, 12))
    assert [(i.start, i.end, i.reason) for i in a.busy][-1] == (
        utc(2026, 3, 29, 22),  # midnight in Berlin, summer time
        utc(2026, 3, 30, 12),
        "calibration_expired",
    )
    book(env, berlin(SPRING, 16), berlin(SPRING, 18))
    db.session.commit()
    monday = SPRING + dt.timedelta(days=1)
    assert rule(env, db, berlin(monday, 8), berlin(monday, 10)) == "calibration_expired"
