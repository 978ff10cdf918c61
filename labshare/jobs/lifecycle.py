"""End-of-booking transitions: no-show after the grace period, completion after usage.

Both work one resource at a time (``units.per_resource``: the resource's lock, then
its bookings, a short transaction each), so they never deadlock with staff acting
on the same bookings, nor with a second scheduler."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, exists, select

from labshare.booking.bookings import mark_no_show
from labshare.booking.lifecycle_jobs import complete_from_usage
from labshare.database import begin_write
from labshare.extensions import db
from labshare.jobs.units import per_resource
from labshare.models import Booking, BookingStatus, UsageRecord
from labshare.timeutil import utcnow


def _resources(*where: ColumnElement[bool], join_usage: bool = False) -> list[int]:
    stmt = select(Booking.resource_id).where(*where).distinct()
    if join_usage:
        stmt = stmt.join(UsageRecord, UsageRecord.booking_id == Booking.id)
    return list(db.session.scalars(stmt))


def mark_no_shows() -> dict[str, Any]:
    """Approved bookings nobody checked in to, whose end plus the grace period passed."""
    grace = dt.timedelta(minutes=int(current_app.config.get("NO_SHOW_GRACE_MINUTES", 30)))
    begin_write()
    now = utcnow()
    has_usage = exists().where(UsageRecord.booking_id == Booking.id)
    due = (
        Booking.status == BookingStatus.APPROVED,
        Booking.end_at <= now - grace,
        Booking.checked_in_at.is_(None),  # someone came (check-in)
        ~has_usage,
    )

    def work(resource_id: int) -> list[int]:
        bookings = db.session.scalars(
            select(Booking)
            .where(Booking.resource_id == resource_id, *due)
            .order_by(Booking.end_at, Booking.id)
        )
        return [b.id for b in list(bookings) if mark_no_show(b, quiet=True, reason=reason, now=now)]

    reason = "no check-in by the end of the booking plus the grace period"
    changed = per_resource(_resources(*due), work, what="no-shows")
    return {"no_show": len(changed), "ids": changed}


def complete_bookings() -> dict[str, Any]:
    """Approved bookings with a usage record whose check-out has passed."""
    begin_write()
    now = utcnow()
    due = (Booking.status == BookingStatus.APPROVED, UsageRecord.checked_out_at <= now)

    def work(resource_id: int) -> list[int]:
        bookings = db.session.scalars(
            select(Booking)
            .join(UsageRecord, UsageRecord.booking_id == Booking.id)
            .where(Booking.resource_id == resource_id, *due)
            .order_by(Booking.end_at, Booking.id)
        )
        return [b.id for b in list(bookings) if complete_from_usage(b)]

    changed = per_resource(_resources(*due, join_usage=True), work, what="complete")
    return {"completed": len(changed), "ids": changed}
