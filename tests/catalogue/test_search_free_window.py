"""The batched free-window filter: same answer as ``has_free_slot`` (which asks
``availability()`` about each resource), in a fixed number of queries."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import event, select

from labshare.booking.rules import rules_for
from labshare.catalogue.free_time import has_free_slot, with_free_slot
from labshare.catalogue.search import ResourceFilters, search_resources
from labshare.extensions import db as _db
from labshare.models import BookingStatus, Closure, Resource, ResourceStatus
from labshare.timeutil import set_clock
from tests.factories import weekday_hours

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
UTC = dt.UTC


def _at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2030, 1, day, hour, minute, tzinfo=UTC)


def _mixed_catalogue(
    make_institute: Any, make_lab: Any, make_instrument: Any, make_booking: Any
) -> list[Resource]:
    rnd = random.Random(7)
    berlin = make_institute(timezone="Europe/Berlin")
    shanghai = make_institute()
    made: list[Resource] = []
    for n in range(6):
        lab = make_lab(
            institute=berlin if n % 2 else shanghai,
            capacity=1 + n % 3,
            hours=weekday_hours("09:00", "11:00" if n % 2 else "17:00", range(5)),
            rules={"slot_minutes": 60, "min_minutes": 120} if n == 3 else None,
        )
        made.append(lab)
        for m in range(4):
            made.append(
                make_instrument(
                    lab=lab,
                    calibration_valid_until=dt.date(2030, 1, 7 + m) if m % 2 else None,
                    rules={"lead_time_hours": 200} if (n, m) == (1, 1) else None,
                )
            )
    # Capacity 2, one booking over its whole opening of 7 January: still bookable.
    shared = make_lab(institute=shanghai, capacity=2, hours=weekday_hours("09:00", "11:00"))
    make_booking(resource=shared, start=_at(7, 1), end=_at(7, 3), status=BookingStatus.APPROVED)
    made.append(shared)
    for resource in made[:-1]:
        held: list[tuple[dt.datetime, dt.datetime]] = []
        for _ in range(rnd.randrange(6)):
            start = _at(rnd.randrange(6, 10), rnd.randrange(24), rnd.choice((0, 30)))
            end = start + dt.timedelta(minutes=rnd.choice((60, 180, 600)))
            status = rnd.choice(
                (BookingStatus.APPROVED, BookingStatus.PENDING, BookingStatus.CANCELLED)
            )
            overlaps = any(s < end and start < e for s, e in held)
            if overlaps and resource.kind == "instrument" and status != BookingStatus.CANCELLED:
                continue  # the exclusion constraint (labs may overlap up to capacity)
            if status != BookingStatus.CANCELLED:
                held.append((start, end))
            make_booking(resource=resource, start=start, end=end, status=status)
        if rnd.random() < 0.3:
            start = _at(rnd.randrange(6, 10), rnd.randrange(24))
            _db.session.add(
                Closure(
                    resource_id=resource.id, start_at=start, end_at=start + dt.timedelta(days=1)
                )
            )
    _db.session.commit()
    return made


def test_batched_filter_agrees_with_availability(
    db: Any, make_institute: Any, make_lab: Any, make_instrument: Any, make_booking: Any
) -> None:
    set_clock(lambda: NOW)
    resources = _mixed_catalogue(make_institute, make_lab, make_instrument, make_booking)
    rules = rules_for(resources)
    windows = [
        (_at(6, 0), _at(7, 0)),
        (_at(7, 1), _at(7, 3)),
        (_at(8, 9, 30), _at(8, 12)),
        (_at(6, 0), _at(13, 0)),
        (_at(9, 20), _at(10, 2)),
        (_at(1, 0), _at(2, 0)),  # inside the lead time
    ]
    answers = set()
    for start, end in windows:
        expected = [r.id for r in resources if has_free_slot(r, rules[r.id], start, end)]
        assert [r.id for r in with_free_slot(resources, start, end)] == expected
        answers.add(len(expected))
    assert len(answers) > 2  # the windows tell the resources apart


def test_window_search_runs_a_fixed_number_of_queries(
    db: Any, make_institute: Any, make_lab: Any, make_instrument: Any, make_booking: Any
) -> None:
    set_clock(lambda: NOW)
    resources = _mixed_catalogue(make_institute, make_lab, make_instrument, make_booking)
    _db.session.expire_all()
    statements: list[str] = []

    def _record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(_db.engine, "before_cursor_execute", _record)
    try:
        result = search_resources(
            ResourceFilters(available_from=_at(6, 0), available_to=_at(13, 0)),
            page=1,
            per_page=200,
        )
    finally:
        event.remove(_db.engine, "before_cursor_execute", _record)
    # candidates with their rules; bookings, closures, offers and opening periods
    # (one batch: the page wants more than there are); the page (+ a BEGIN)
    assert len(statements) <= 4, statements
    available = [
        r for r in resources if _db.session.get(Resource, r.id).status == ResourceStatus.AVAILABLE
    ]
    assert 0 < result.total < len(available)


def test_no_candidates_needs_no_calendar_query(db: Any) -> None:
    assert with_free_slot([], _at(6, 0), _at(7, 0)) == []
    assert _db.session.scalars(select(Resource)).first() is None


def test_batched_filter_agrees_with_availability_for_durations(
    db: Any, make_institute: Any, make_lab: Any, make_instrument: Any, make_booking: Any
) -> None:
    set_clock(lambda: NOW)
    resources = _mixed_catalogue(make_institute, make_lab, make_instrument, make_booking)
    rules = rules_for(resources)
    answers = set()
    for start, end in [(_at(6, 0), _at(13, 0)), (_at(8, 0), _at(8, 12)), (_at(9, 1), _at(9, 5))]:
        for duration in (1, 60, 121, 240, 600):
            expected = [
                r.id for r in resources if has_free_slot(r, rules[r.id], start, end, duration)
            ]
            got = [r.id for r in with_free_slot(resources, start, end, duration)]
            assert got == expected, (start, end, duration)
            answers.add(len(expected))
    assert len(answers) > 2
