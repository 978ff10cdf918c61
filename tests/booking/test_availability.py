"""Availability: busy intervals with their reasons, free ones as the complement,
labs busy only where full, and a bounded number of queries."""

from __future__ import annotations

import datetime as dt
import itertools
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from labshare.booking.availability import MAX_WINDOW, Availability, Interval, availability
from labshare.booking.bookings import create_booking
from labshare.errors import ValidationFailed
from labshare.models import BookingStatus, Closure, ResourceStatus, Role
from labshare.timeutil import set_clock
from tests.factories import weekday_hours

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 600,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "requires_approval": False,
    "max_active_per_company": 100,
    "cancel_deadline_hours": 0,
}


def t(day: int, h: int, mi: int = 0) -> dt.datetime:
    """2030-01-<day> h:mi in Shanghai, as UTC."""
    return dt.datetime(2030, 1, day, h, mi, tzinfo=SH).astimezone(dt.UTC)


def spans(items: list[Interval]) -> list[tuple[dt.datetime, dt.datetime, str | None]]:
    return [(i.start, i.end, i.reason) for i in items]


pytestmark = pytest.mark.usefixtures("cheap_passwords")


@pytest.fixture
def env(db: Any, make_lab: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    lab = make_lab(hours=weekday_hours("08:00", "18:00"), capacity=2, rules=dict(RULES))
    inst = make_instrument(lab=lab, rules=dict(RULES))
    users = [make_user(Role.SME) for _ in range(3)]
    db.session.commit()
    return SimpleNamespace(lab=lab, inst=inst, users=users)


def check_shape(a: Availability, start: dt.datetime, end: dt.datetime) -> None:
    """Busy sorted and non-overlapping, free its complement, together tiling the window."""
    everything = sorted([*a.busy, *a.free], key=lambda i: i.start)
    assert everything[0].start == start and everything[-1].end == end
    for prev, nxt in itertools.pairwise(everything):
        assert prev.end == nxt.start
    for prev, nxt in itertools.pairwise(a.busy):
        assert prev.end <= nxt.start
        if prev.end == nxt.start:
            assert prev.reason != nxt.reason  # same reasons are merged
    assert all(i.reason is None for i in a.free)
    assert all(i.start < i.end for i in everything)


def test_open_day_without_bookings(db, env):
    a = availability(env.inst, t(7, 0), t(8, 0))
    check_shape(a, t(7, 0), t(8, 0))
    assert a.resource_id == env.inst.id and a.timezone == "Asia/Shanghai"
    assert spans(a.busy) == [(t(7, 0), t(7, 8), "closed"), (t(7, 18), t(8, 0), "closed")]
    assert spans(a.free) == [(t(7, 8), t(7, 18), None)]


def test_instrument_bookings_are_busy_and_merged(db, env):
    u = env.users
    create_booking(env.inst, u[0], t(7, 9), t(7, 10), purpose="x")
    create_booking(env.inst, u[1], t(7, 10), t(7, 11), purpose="x")  # back to back
    cancelled = create_booking(env.inst, u[2], t(7, 14), t(7, 15), purpose="x")
    cancelled.status = BookingStatus.CANCELLED
    db.session.commit()
    a = availability(env.inst, t(7, 8), t(7, 18))
    check_shape(a, t(7, 8), t(7, 18))
    assert spans(a.busy) == [(t(7, 9), t(7, 11), "booked")]


def test_booking_partly_outside_the_window_is_clipped(db, env):
    create_booking(env.inst, env.users[0], t(7, 9), t(7, 12), purpose="x")
    db.session.commit()
    a = availability(env.inst, t(7, 10), t(7, 11))
    assert spans(a.busy) == [(t(7, 10), t(7, 11), "booked")]
    assert a.free == []


def test_lab_is_busy_only_where_capacity_is_reached(db, env):
    u = env.users
    create_booking(env.lab, u[0], t(7, 9), t(7, 12), purpose="x")
    create_booking(env.lab, u[1], t(7, 10), t(7, 11), purpose="x")
    create_booking(env.lab, u[1], t(7, 11), t(7, 13), purpose="x")
    create_booking(env.lab, u[2], t(7, 15), t(7, 16), purpose="x")
    db.session.commit()
    a = availability(env.lab, t(7, 8), t(7, 18))
    check_shape(a, t(7, 8), t(7, 18))
    assert spans(a.busy) == [(t(7, 10), t(7, 12), "booked")]


def test_reasons_and_their_precedence(db, env):
    env.inst.calibration_valid_until = dt.date(2030, 1, 8)
    db.session.add(Closure(resource_id=env.lab.id, start_at=t(7, 12), end_at=t(7, 20)))
    db.session.commit()
    create_booking(env.inst, env.users[0], t(7, 9), t(7, 10), purpose="x")
    create_booking(env.inst, env.users[0], t(7, 11), t(7, 12), purpose="x")
    db.session.commit()
    a = availability(env.inst, t(7, 0), t(10, 0))
    check_shape(a, t(7, 0), t(10, 0))
    assert spans(a.busy) == [
        (t(7, 0), t(7, 8), "closed"),
        (t(7, 9), t(7, 10), "booked"),
        (t(7, 11), t(7, 12), "booked"),
        (t(7, 12), t(7, 20), "closure"),  # the closure wins over "closed" after 18:00
        (t(7, 20), t(8, 8), "closed"),
        (t(8, 18), t(9, 0), "closed"),
        (t(9, 0), t(10, 0), "calibration_expired"),  # wins over "closed" and everything
    ]
    assert spans(a.free) == [
        (t(7, 8), t(7, 9), None),
        (t(7, 10), t(7, 11), None),
        (t(8, 8), t(8, 18), None),
    ]


def test_instrument_closure_and_other_instruments(db, env, make_instrument):
    sibling = make_instrument(lab=env.lab, rules=dict(RULES))
    db.session.add(Closure(resource_id=sibling.id, start_at=t(7, 9), end_at=t(7, 10)))
    db.session.add(Closure(resource_id=env.inst.id, start_at=t(7, 14), end_at=t(7, 15)))
    db.session.commit()
    create_booking(sibling, env.users[0], t(7, 11), t(7, 12), purpose="x")
    db.session.commit()
    a = availability(env.inst, t(7, 8), t(7, 18))
    assert spans(a.busy) == [(t(7, 14), t(7, 15), "closure")]


@pytest.mark.parametrize("status", [ResourceStatus.MAINTENANCE, ResourceStatus.RETIRED])
def test_unavailable_covers_the_window(db, env, status):
    env.inst.status = status
    db.session.commit()
    a = availability(env.inst, t(7, 0), t(8, 0))
    assert spans(a.busy) == [(t(7, 0), t(8, 0), "unavailable")]
    assert a.free == []


def test_lab_without_opening_hours_is_closed(db, env):
    env.lab.opening_periods = []
    db.session.commit()
    a = availability(env.inst, t(7, 0), t(8, 0))
    assert spans(a.busy) == [(t(7, 0), t(8, 0), "closed")]


def test_window_given_in_another_offset(db, env):
    start = dt.datetime(2030, 1, 7, 0, 0, tzinfo=SH)
    a = availability(env.inst, start, start + dt.timedelta(days=1))
    assert a.busy[0].start == start.astimezone(dt.UTC)
    assert a.busy[0].start.tzinfo == dt.UTC


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (t(7, 0), t(7, 0)),
        (t(7, 1), t(7, 0)),
        (t(1, 0), t(1, 0) + MAX_WINDOW + dt.timedelta(minutes=1)),
        (dt.datetime(2030, 1, 7), t(8, 0)),
    ],
)
def test_bad_window(db, env, start, end):
    with pytest.raises(ValidationFailed) as info:
        availability(env.inst, start, end)
    assert info.value.field in ("to", "from")
    if start.tzinfo is not None:
        assert info.value.field == "to"


def test_window_of_exactly_31_days_is_fine(db, env):
    a = availability(env.inst, t(1, 0), t(1, 0) + MAX_WINDOW)
    assert len(a.free) == 31


def test_free_slots_are_bookable(db, env):
    create_booking(env.inst, env.users[0], t(7, 9), t(7, 10), purpose="x")
    db.session.commit()
    a = availability(env.inst, t(7, 0), t(8, 0))
    for gap in a.free:
        create_booking(env.inst, env.users[1], gap.start, gap.end, purpose="x")
    db.session.commit()
    after = availability(env.inst, t(7, 0), t(8, 0))
    assert after.free == []


def test_query_count_is_bounded(db, env, make_booking):
    """No N+1: a fixed few statements however many bookings and closures there are."""
    for day in range(2, 30):
        make_booking(
            resource=env.inst,
            user=env.users[0],
            start=t(day, 9),
            end=t(day, 10),
            status=BookingStatus.APPROVED,
        )
        db.session.add(Closure(resource_id=env.lab.id, start_at=t(day, 12), end_at=t(day, 13)))
    db.session.commit()
    resource = db.session.get(type(env.inst), env.inst.id)
    assert resource.status and resource.institute.timezone  # loaded before counting
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        a = availability(resource, t(1, 0), t(31, 0))
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # bookings + closures, opening periods, and constant extras of the booking policies: the rules
    # (buffer), the waitlist's offered holds. Never one per booking or closure.
    assert len(queries) <= 5, queries
    assert sum(1 for i in a.busy if i.reason == "booked") == 28
    assert sum(1 for i in a.busy if i.reason == "closure") == 28
