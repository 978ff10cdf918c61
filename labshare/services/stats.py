"""Campaign statistics, first version: totals computed directly from bookings.

Counts the bookings that start in [start, end). ``approved`` counts bookings that
are approved now (not yet completed, cancelled or marked no-show).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, func, select, true

from labshare.extensions import db
from labshare.models import (
    Booking,
    BookingStatus,
    Lab,
    ResourceKind,
    ResourceStatus,
    UsageRecord,
)


@dataclass(frozen=True)
class CampaignTotals:
    requested: int
    pending: int
    approved: int
    rejected: int
    cancelled: int
    completed: int
    no_show: int
    usage_hours: float
    distinct_smes: int
    fees_charged: Decimal
    fees_waived: Decimal
    shared_instruments: int
    open_labs: int


def campaign_totals(
    start: dt.datetime, end: dt.datetime, *, institute_id: int | None = None
) -> CampaignTotals:
    """Totals over the bookings starting in [start, end); one institute's, or all."""
    scope: ColumnElement[bool] = (
        Booking.institute_id == institute_id if institute_id is not None else true()
    )
    window = and_(scope, Booking.start_at >= start, Booking.start_at < end)

    by_status = {
        BookingStatus(status): int(n)
        for status, n in db.session.execute(
            select(Booking.status, func.count(Booking.id)).where(window).group_by(Booking.status)
        )
    }
    completed = Booking.status == BookingStatus.COMPLETED
    fees = db.session.execute(
        select(
            func.coalesce(func.sum(Booking.fee), 0),
            func.coalesce(func.sum(Booking.fee_waived), 0),
            func.count(func.distinct(Booking.company_id)),
        ).where(window, completed)
    ).one()
    shared = db.session.scalar(
        select(func.count(func.distinct(Booking.resource_id))).where(
            window,
            Booking.resource_kind == ResourceKind.INSTRUMENT,
            Booking.status.in_(
                (BookingStatus.APPROVED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW)
            ),
        )
    )
    # Durations are summed here rather than in SQL: interval arithmetic differs
    # between SQLite and PostgreSQL, and one row per completed booking is small.
    usage_seconds = sum(
        (out - inn).total_seconds()
        for inn, out in db.session.execute(
            select(UsageRecord.checked_in_at, UsageRecord.checked_out_at)
            .join(Booking, Booking.id == UsageRecord.booking_id)
            .where(window)
        )
    )
    lab_scope: ColumnElement[bool] = (
        Lab.institute_id == institute_id if institute_id is not None else true()
    )
    open_labs = db.session.scalar(
        select(func.count(Lab.id)).where(lab_scope, Lab.status == ResourceStatus.AVAILABLE)
    )
    charged_gross = Decimal(fees[0])
    waived = Decimal(fees[1])
    return CampaignTotals(
        requested=sum(by_status.values()),
        pending=by_status.get(BookingStatus.PENDING, 0),
        approved=by_status.get(BookingStatus.APPROVED, 0),
        rejected=by_status.get(BookingStatus.REJECTED, 0),
        cancelled=by_status.get(BookingStatus.CANCELLED, 0),
        completed=by_status.get(BookingStatus.COMPLETED, 0),
        no_show=by_status.get(BookingStatus.NO_SHOW, 0),
        usage_hours=round(usage_seconds / 3600, 2),
        distinct_smes=int(fees[2]),
        fees_charged=charged_gross - waived,
        fees_waived=waived,
        shared_instruments=int(shared or 0),
        open_labs=int(open_labs or 0),
    )
