"""The statistics service equals a direct computation from the bookings, on seeded
random data, for every kind of scope, with no job ever run."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from labshare.campaign import stats
from labshare.campaign.stats import Period, Scope
from labshare.extensions import db
from labshare.models import (
    Booking,
    BookingStatus,
    Closure,
    Instrument,
    Lab,
    ResourceKind,
    ResourceStatus,
    Role,
    ServiceType,
    UsageRecord,
)
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import naive_median_hours, naive_wait_minutes

MONTH = Period.month("2030-01")
NOW = dt.datetime(2030, 1, 16, 3, 0, tzinfo=dt.UTC)  # the 16th, 11:00 in Shanghai


def _world(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    north = factories.make_institute(province_code="110000", province="北京市")
    south = factories.make_institute(province_code="320000", province="江苏省")
    west = factories.make_institute(
        province_code="650000", province="新疆维吾尔自治区", timezone="Asia/Urumqi"
    )
    labs = []
    for inst in (north, south, south, west):
        hours = factories.weekday_hours("08:30", "17:30", range(5))
        labs.append(factories.make_lab(institute=inst, hours=hours))
    factories.make_lab(institute=north, status=ResourceStatus.MAINTENANCE)  # not open
    factories.make_lab(institute=south, hours=[])  # no opening hours: not open
    instruments = [factories.make_instrument(lab=rng.choice(labs)) for _ in range(8)]
    db.session.add(
        Closure(
            resource_id=labs[1].id,
            start_at=dt.datetime(2030, 1, 9, 0, 0, tzinfo=dt.UTC),
            end_at=dt.datetime(2030, 1, 11, 0, 0, tzinfo=dt.UTC),
        )
    )
    smes = [factories.make_user(Role.SME) for _ in range(7)]
    recorder = factories.make_user(Role.STAFF, institute=north)
    resources: list[Any] = [*labs, *instruments]
    base = dt.datetime(2029, 12, 20, 0, 0, tzinfo=dt.UTC)
    holds: dict[int, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for _ in range(160):
        resource = rng.choice(resources)
        start = base + dt.timedelta(minutes=30 * rng.randrange(0, 2 * 24 * 60))
        end = start + dt.timedelta(minutes=30 * rng.randint(1, 8))
        status = rng.choice(list(BookingStatus))
        held = holds[resource.id]
        if status in (BookingStatus.PENDING, BookingStatus.APPROVED):
            if any(s < end and start < e for s, e in held):  # the database refuses overlaps
                status = BookingStatus.CANCELLED
            else:
                held.append((start, end))
        fee = Decimal(rng.randrange(0, 500))
        created = start - dt.timedelta(hours=rng.randint(1, 200))
        decided = (
            created + dt.timedelta(minutes=rng.randint(0, 3000))
            if status not in (BookingStatus.PENDING,) and rng.random() < 0.8
            else None
        )
        booking = factories.make_booking(
            resource=resource,
            user=rng.choice(smes),
            start=start,
            end=end,
            status=status,
            fee=fee,
            fee_waived=(fee * rng.choice([0, 50, 100]) / 100).quantize(Decimal("0.01")),
            created_at=created,
            decided_at=decided,
        )
        if status in (BookingStatus.COMPLETED, BookingStatus.APPROVED) and rng.random() < 0.8:
            db.session.add(
                UsageRecord(
                    booking_id=booking.id,
                    checked_in_at=start + dt.timedelta(seconds=rng.randint(0, 900)),
                    checked_out_at=end - dt.timedelta(seconds=rng.randint(0, 900)),
                    service_type=rng.choice(list(ServiceType)),
                    problem_solved=rng.random() < 0.5,
                    recorded_by_id=recorder.id,
                )
            )
    db.session.flush()
    return {"north": north, "south": south, "west": west, "labs": labs, "instruments": instruments}


def _reference(period: Period, keep: Any) -> dict[str, Any]:
    """The figures computed the plain way: every booking, one at a time."""
    counters = stats.Counters()
    served: set[int] = set()
    earlier: set[int] = set()
    waits: list[int] = []
    per_resource: dict[int, stats.Counters] = defaultdict(stats.Counters)
    for b in db.session.scalars(select(Booking)):
        if not keep(b.resource):
            continue
        day = b.start_at.astimezone(ZoneInfo(b.resource.institute.timezone)).date()
        if day < period.start and b.status == BookingStatus.COMPLETED:
            earlier.add(b.company_id)
        if not (period.start <= day < period.end):
            continue
        u = b.usage
        minutes = int((u.checked_out_at - u.checked_in_at).total_seconds() // 60) if u else None
        for target in (counters, per_resource[b.resource_id]):
            target.add_booking(
                b.status,
                b.fee,
                b.fee_waived,
                minutes,
                u.service_type if u else None,
                u.problem_solved if u else None,
            )
        if b.status == BookingStatus.COMPLETED:
            served.add(b.company_id)
        if b.decided_at is not None:
            waits.append(naive_wait_minutes(b.created_at, b.decided_at))
    shared = {
        rid
        for rid, c in per_resource.items()
        if c["completed"] and db.session.get(Instrument, rid) is not None
    }
    return {
        "counters": counters.values,
        "served": len(served),
        "new": len(served - earlier),
        "median": naive_median_hours(waits),
        "shared": len(shared),
    }


def _scopes(w: dict[str, Any]) -> list[tuple[Scope, Any]]:
    lab = w["labs"][1]
    instrument = w["instruments"][0]
    return [
        (Scope.everything(), lambda r: True),
        (Scope.province("320000"), lambda r: r.institute.province_code == "320000"),
        (Scope.institute(w["west"].id), lambda r: r.institute_id == w["west"].id),
        (
            Scope.lab(lab),
            lambda r: r.id == lab.id or (isinstance(r, Instrument) and r.lab_id == lab.id),
        ),
        (Scope.instrument(instrument), lambda r: r.id == instrument.id),
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figures_equal_direct_computation_without_any_job(app: Any, seed: int) -> None:
    w = _world(seed)
    db.session.commit()
    set_clock(lambda: NOW)
    for period in (MONTH, Period(dt.date(2029, 12, 25), dt.date(2030, 1, 20))):
        for scope, keep in _scopes(w):
            ref = _reference(period, keep)
            got = stats.statistics_for(period, scope)
            assert got.counters.values == ref["counters"], (scope, period)
            assert stats.total_counters(period, scope).values == ref["counters"]
            for key in ("resource", "institute", "day", "month"):
                assert stats.counters_by(period, scope, key) == stats.direct_counters(
                    period, scope, key
                ), key
            assert got.distinct_smes == ref["served"]
            assert got.new_smes == ref["new"]
            assert got.median_decision_hours == ref["median"]
            assert got.shared_instruments == ref["shared"]
    # An old booking deleted: the next read counts one less, at once.
    before = stats.statistics_for(MONTH, Scope.everything()).counters["bookings_total"]
    past = db.session.scalars(
        select(Booking).where(
            Booking.start_at >= dt.datetime(2030, 1, 2, tzinfo=dt.UTC),
            Booking.start_at < dt.datetime(2030, 1, 10, tzinfo=dt.UTC),
        )
    ).first()
    assert past is not None
    db.session.delete(past.usage) if past.usage else None
    db.session.delete(past)
    db.session.flush()
    after = stats.statistics_for(MONTH, Scope.everything()).counters["bookings_total"]
    assert after == before - 1


def test_open_labs_open_hours_and_utilisation(app: Any) -> None:
    inst = factories.make_institute()
    weekdays = factories.weekday_hours("09:00", "17:00", range(5))  # 8 h Mon-Fri
    lab = factories.make_lab(institute=inst, hours=weekdays)
    closed_lab = factories.make_lab(institute=inst, hours=[])
    factories.make_lab(institute=inst, status=ResourceStatus.RETIRED)
    instrument = factories.make_instrument(lab=lab)
    # Closed on Monday 2030-01-07, 09:00-13:00 local (01:00-05:00 UTC).
    db.session.add(
        Closure(
            resource_id=instrument.id,
            start_at=dt.datetime(2030, 1, 7, 1, 0, tzinfo=dt.UTC),
            end_at=dt.datetime(2030, 1, 7, 5, 0, tzinfo=dt.UTC),
        )
    )
    factories.make_booking(
        resource=instrument,
        start=dt.datetime(2030, 1, 8, 1, 0, tzinfo=dt.UTC),  # Tue 09:00 local
        end=dt.datetime(2030, 1, 8, 3, 30, tzinfo=dt.UTC),
        status=BookingStatus.COMPLETED,
    )
    factories.make_booking(resource=instrument, status=BookingStatus.CANCELLED)
    week = Period(dt.date(2030, 1, 7), dt.date(2030, 1, 14))
    util = stats.utilisation(week, Scope.institute(inst.id))
    assert util.open_hours[lab.id] == 40
    assert util.open_hours[instrument.id] == 36
    assert util.open_hours[closed_lab.id] == 0
    assert util.booked_hours == {instrument.id: 2.5}
    assert util.ratio(instrument.id) == round(2.5 / 36, 4)
    assert util.ratio(closed_lab.id) is None
    assert util.heat[1][9] == 1 and util.heat[1][10] == 1 and util.heat[1][11] == 0.5
    assert sum(map(sum, util.heat)) == 2.5
    figures = stats.statistics_for(week, Scope.institute(inst.id))
    assert figures.open_labs == 1  # retired and hour-less labs are not open
    assert figures.shared_instruments == 1
    # A week with no weekday is no bookable period.
    weekend = Period(dt.date(2030, 1, 12), dt.date(2030, 1, 14))
    assert stats.statistics_for(weekend, Scope.institute(inst.id)).open_labs == 0
    assert {r.kind for r in stats.resources_in(Scope.lab(lab)).values()} == {
        ResourceKind.LAB,
        ResourceKind.INSTRUMENT,
    }
    assert isinstance(lab, Lab)


def test_monthly_trend_and_period_parsing(app: Any) -> None:
    instrument = factories.make_instrument()
    for day in (
        dt.datetime(2029, 11, 3, 2, tzinfo=dt.UTC),
        dt.datetime(2030, 1, 5, 2, tzinfo=dt.UTC),
    ):
        factories.make_booking(resource=instrument, start=day, status=BookingStatus.COMPLETED)
    set_clock(lambda: NOW)
    # No job has run: the past months are counted all the same.
    trend = stats.monthly_trend("2030-01", Scope.everything(), months=3)
    assert [(m, c["completed"]) for m, c in trend] == [
        ("2029-11", 1),
        ("2029-12", 0),
        ("2030-01", 1),
    ]
    for bad in ("2030-13", "2030-1", "", "abcd-ef"):
        with pytest.raises(ValueError):
            Period.month(bad)
    assert Period.month("2030-12").end == dt.date(2031, 1, 1)
