"""The nightly roll-up: per local day, resource and institute; recomputing replaces."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from labshare.extensions import db
from labshare.jobs import run_job
from labshare.jobs.rollup import rollup
from labshare.models import BookingStatus, Role, ServiceType, UsageDaily, UsageRecord
from tests import factories
from tests.test_jobs_support import freeze

DAY = dt.date(2030, 1, 7)


def _usage(booking: Any, service: ServiceType, minutes: int, solved: bool = True) -> None:
    staff = factories.make_user(Role.STAFF, institute_id=booking.institute_id)
    db.session.add(
        UsageRecord(
            booking_id=booking.id,
            checked_in_at=booking.start_at,
            checked_out_at=booking.start_at + dt.timedelta(minutes=minutes),
            service_type=service,
            problem_solved=solved,
            recorded_by_id=staff.id,
        )
    )
    db.session.flush()


def _snapshot() -> list[tuple[Any, ...]]:
    rows = db.session.scalars(
        select(UsageDaily).order_by(UsageDaily.day, UsageDaily.resource_id.nulls_first())
    )
    return [
        (
            r.day,
            r.resource_id,
            r.bookings_total,
            r.approved,
            r.completed,
            r.no_show,
            r.cancelled,
            r.usage_minutes,
            r.companies_served,
            r.calibration,
            r.testing,
            r.problems_solved,
            r.fees,
            r.fees_waived,
        )
        for r in rows
    ]


def test_rollup_counts_per_local_day_and_twice_gives_the_same(app: Any) -> None:
    institute = factories.make_institute()  # Asia/Shanghai
    a = factories.make_instrument(institute=institute)
    b = factories.make_instrument(institute=institute)
    company_user = factories.make_user(Role.SME)
    # 2030-01-06 17:00 UTC is 01:00 on the 7th in Shanghai: it counts on the 7th.
    early = factories.make_booking(
        resource=a,
        user=company_user,
        start=dt.datetime(2030, 1, 6, 17, 0, tzinfo=dt.UTC),
        status=BookingStatus.COMPLETED,
        fee=Decimal("300.00"),
        fee_waived=Decimal("150.00"),
    )
    _usage(early, ServiceType.CALIBRATION, 90)
    second = factories.make_booking(
        resource=a,
        user=company_user,
        start=dt.datetime(2030, 1, 7, 3, 0, tzinfo=dt.UTC),
        status=BookingStatus.COMPLETED,
        fee=Decimal("100.00"),
        fee_waived=Decimal("0"),
    )
    _usage(second, ServiceType.TESTING, 30, solved=False)
    factories.make_booking(
        resource=b, start=dt.datetime(2030, 1, 7, 5, 0, tzinfo=dt.UTC), status=BookingStatus.NO_SHOW
    )
    factories.make_booking(
        resource=b,
        start=dt.datetime(2030, 1, 7, 8, 0, tzinfo=dt.UTC),
        status=BookingStatus.CANCELLED,
    )
    # 16:00 UTC on the 7th is 00:00 on the 8th in Shanghai: another day.
    factories.make_booking(
        resource=b,
        start=dt.datetime(2030, 1, 7, 16, 0, tzinfo=dt.UTC),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()

    freeze(dt.datetime(2030, 1, 8, 18, 30, tzinfo=dt.UTC))  # 02:30 on the 9th, local
    run_job("rollup")
    first = _snapshot()
    run_job("rollup")
    rollup(days=[DAY])
    db.session.commit()
    assert _snapshot() == first

    z = Decimal("0.00")
    assert first == [
        # day, resource, total, approved, completed, no_show, cancelled, minutes,
        # companies, calibration, testing, solved, fees, waived
        (DAY, None, 4, 0, 2, 1, 1, 120, 1, 1, 1, 1, Decimal("400.00"), Decimal("150.00")),
        (DAY, a.id, 2, 0, 2, 0, 0, 120, 1, 1, 1, 1, Decimal("400.00"), Decimal("150.00")),
        (DAY, b.id, 2, 0, 0, 1, 1, 0, 0, 0, 0, 0, z, z),
        (DAY + dt.timedelta(days=1), None, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, z, z),
        (DAY + dt.timedelta(days=1), b.id, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, z, z),
    ]


def test_recomputing_replaces_a_days_rows(app: Any) -> None:
    booking = factories.make_booking(
        start=dt.datetime(2030, 1, 7, 3, 0, tzinfo=dt.UTC), status=BookingStatus.APPROVED
    )
    db.session.commit()
    rollup(days=[DAY])
    db.session.commit()
    assert [(r[1], r[3], r[5]) for r in _snapshot()] == [(None, 1, 0), (booking.resource_id, 1, 0)]
    booking.status = BookingStatus.NO_SHOW
    db.session.commit()
    rollup(days=[DAY])
    db.session.commit()
    assert [(r[1], r[3], r[5]) for r in _snapshot()] == [(None, 0, 1), (booking.resource_id, 0, 1)]
