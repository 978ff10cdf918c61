"""The search's "free" is ``availability()``'s free in every zone, not only Shanghai's:
institutes in zones with daylight saving (Berlin and New York fall back, Lord Howe
moves by half an hour) and with a half-hour offset (Kolkata), windows that cross
midnight and the clock change, whose first part is already past, over closures, a
holiday, buffers that are not a multiple of the slot, open offers and labs of several
places; compared with ``has_free_slot`` (one ``availability()`` per resource), through
the batch (``with_free_slot``) and through the search, by filter and by capability
(its in-memory ranking reads the candidates by id). On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from labshare.booking import holiday_admin, workdays
from labshare.booking.rules import effective_rules
from labshare.catalogue.free_time import has_free_slot, with_free_slot
from labshare.catalogue.search import ResourceFilters, search_resources
from labshare.extensions import db
from labshare.models import (
    BookingStatus,
    Closure,
    OpeningPeriod,
    Resource,
    ResourceKind,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.timeutil import set_clock
from tests import factories

#: Tuesday 1 October 2030, 00:00 UTC.
NOW = dt.datetime(2030, 10, 1, 0, 0, tzinfo=dt.UTC)
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")
#: (zone, the local day of its clock change or, for Kolkata, any Monday)
CHANGES = {
    "Europe/Berlin": dt.date(2030, 10, 27),  # 03:00 CEST → 02:00 CET
    "America/New_York": dt.date(2030, 11, 3),  # 02:00 EDT → 01:00 EST
    "Australia/Lord_Howe": dt.date(2030, 10, 6),  # 02:00 → 02:30 (half an hour)
    "Asia/Kolkata": dt.date(2030, 10, 7),  # +05:30, no change
}
HOLIDAY = dt.date(2030, 10, 28)  # a Monday


@pytest.fixture
def clock(app: Any) -> Any:
    set_clock(lambda: NOW)
    workdays.forget()
    yield
    set_clock(None)
    workdays.forget()


def local(day: dt.date, hour: int, tz: str, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), ZoneInfo(tz))


def _catalogue() -> list[Resource]:
    """Per zone: labs open all day, office hours, overnight and at night across the
    clock change, with instruments (one with a 45-minute buffer on a 30-minute grid),
    random bookings, closures and offers around the change."""
    rnd = random.Random(7)
    user = factories.make_user()
    hours = [
        factories.weekday_hours("00:00", "24:00", range(7)),
        factories.weekday_hours("08:00", "18:00", range(5)),
        factories.weekday_hours("22:00", "06:00", range(7)),  # overnight, over the change
        [OpeningPeriod(weekday=6, opens=dt.time(1), closes=dt.time(4))],  # Sunday night
    ]
    made: list[Resource] = []
    for z, tz in enumerate(ZONES):
        institute = factories.make_institute(timezone=tz)
        for n, periods in enumerate(hours):
            lab = factories.make_lab(
                institute=institute,
                capacity=1 + (n + z) % 2,
                hours=[
                    OpeningPeriod(weekday=p.weekday, opens=p.opens, closes=p.closes)
                    for p in periods
                ],
                rules={**factories.OPEN_RULES, "buffer_minutes": 60} if n == 1 else None,
            )
            made.append(lab)
            for m in range(2):
                rules = {
                    **factories.OPEN_RULES,
                    "buffer_minutes": 45 * m,
                    "slot_minutes": 30 + 30 * m,
                }
                made.append(factories.make_instrument(lab=lab, rules=rules))
    for resource in made:
        tz = resource.institute.timezone
        change = CHANGES[tz]
        held: list[tuple[dt.datetime, dt.datetime]] = []
        for _ in range(rnd.randrange(6)):
            start = local(change + dt.timedelta(days=rnd.randrange(-1, 2)), rnd.randrange(24), tz)
            end = start + dt.timedelta(minutes=rnd.choice((30, 90, 180, 420)))
            if resource.kind == "instrument" and any(s < end and start < e for s, e in held):
                continue  # the exclusion constraint
            held.append((start, end))
            factories.make_booking(
                resource=resource,
                user=user,
                start=start,
                end=end,
                status=rnd.choice((BookingStatus.APPROVED, BookingStatus.PENDING)),
            )
        if rnd.random() < 0.3:
            start = local(change, rnd.randrange(24), tz)
            db.session.add(
                Closure(
                    resource_id=resource.id, start_at=start, end_at=start + dt.timedelta(hours=5)
                )
            )
        if rnd.random() < 0.2:
            start = local(change, rnd.randrange(24), tz)
            db.session.add(
                WaitlistEntry(
                    resource_id=resource.id,
                    company_id=user.company_id,
                    user_id=user.id,
                    start_at=start,
                    end_at=start + dt.timedelta(hours=2),
                    purpose="等待",
                    status=WaitlistStatus.OFFERED,
                    offered_at=NOW,
                    offer_expires_at=NOW + dt.timedelta(days=60),
                )
            )
    db.session.commit()
    return made


def _windows(tz: str) -> list[tuple[dt.datetime, dt.datetime]]:
    change = CHANGES[tz]
    before = change - dt.timedelta(days=1)
    return [
        (local(before, 22, tz), local(change, 6, tz)),  # over midnight and the change
        (local(change, 0, tz), local(change + dt.timedelta(days=1), 0, tz)),  # the day
        (local(change, 1, tz, 30), local(change, 3, tz, 30)),  # the hours that move
        (local(before, 0, tz), local(change + dt.timedelta(days=2), 0, tz)),
        (local(HOLIDAY, 8, tz), local(HOLIDAY, 18, tz)),
    ]


def _compare(resources: list[Resource], start: dt.datetime, end: dt.datetime) -> int:
    """Asserts the batch and the search agree with ``has_free_slot``; the number free."""
    rules = {r.id: effective_rules(r) for r in resources}
    instruments = sorted(r.id for r in resources if r.kind == "instrument")
    for duration in (None, 90):
        expected = [r.id for r in resources if has_free_slot(r, rules[r.id], start, end, duration)]
        got = [r.id for r in with_free_slot(resources, start, end, duration)]
        assert got == expected, (start, end, duration)
        if duration and dt.timedelta(minutes=duration) > end - start:
            continue
        window: dict[str, Any] = {
            "available_from": start,
            "available_to": end,
            "duration": duration,
        }
        every = search_resources(ResourceFilters(**window), page=1, per_page=200, plain=True)
        assert [row[0] for row in every.items] == sorted(expected), (start, end, duration)
        # by capability: the in-memory ranking, candidates read by id
        fit = search_resources(
            ResourceFilters(measurand="pressure", value=5, unit="MPa", **window),
            page=1,
            per_page=200,
        )
        assert sorted(r.id for r in fit.items) == [i for i in instruments if i in expected]
    return len(expected)


def test_free_time_is_availabilitys_in_zones_with_daylight_saving(db: Any, clock: Any) -> None:
    holiday_admin.put_day(None, day=HOLIDAY.isoformat(), kind="holiday", name="节日")
    resources = _catalogue()
    counts = set()
    for tz in ZONES:
        for start, end in _windows(tz):
            counts.add(_compare(resources, start, end))
    assert len(counts) > 3  # the windows tell the resources apart


def test_the_past_part_of_a_window_is_not_free(db: Any, clock: Any) -> None:
    resources = _catalogue()
    for tz in ZONES:
        change = CHANGES[tz]
        # now is in the middle of the window: only what is left of it may be free
        set_clock(lambda change=change, tz=tz: local(change, 2, tz, 45).astimezone(dt.UTC))
        _compare(resources, local(change, 0, tz), local(change, 4, tz))
        _compare(resources, local(change, 0, tz), local(change, 2, tz, 50))


def test_a_lab_closure_closes_its_instruments_everywhere(db: Any, clock: Any) -> None:
    institute = factories.make_institute(timezone="America/New_York")
    lab = factories.make_lab(
        institute=institute,
        hours=factories.weekday_hours("00:00", "24:00", range(7)),
        rules=dict(factories.OPEN_RULES),
    )
    inst = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    day = CHANGES["America/New_York"]
    db.session.add(
        Closure(
            resource_id=lab.id,
            start_at=local(day, 0, institute.timezone),
            end_at=local(day, 23, institute.timezone),
        )
    )
    db.session.commit()
    # 23:00-24:00 is left of a 25-hour day; the lab itself is not searched, so
    # only its instrument's closure scope says the lab is closed
    tz = institute.timezone
    window: dict[str, Any] = {
        "available_from": local(day, 0, tz),
        "available_to": local(day, 23, tz),
    }
    only: dict[str, Any] = {"kind": ResourceKind.INSTRUMENT}
    assert search_resources(ResourceFilters(**window, **only), page=1, per_page=9).items == []
    fit: dict[str, Any] = {"measurand": "pressure", "value": 5, "unit": "MPa"}
    assert search_resources(ResourceFilters(**window, **fit), page=1, per_page=9).items == []
    window["available_to"] = local(day + dt.timedelta(days=1), 0, tz)
    found = search_resources(ResourceFilters(**window, **fit, duration=60), page=1, per_page=9)
    assert [r.id for r in found.items] == [inst.id]
    assert has_free_slot(
        inst, effective_rules(inst), window["available_from"], window["available_to"], 60
    )
