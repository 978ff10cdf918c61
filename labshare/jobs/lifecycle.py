"""End-of-booking transitions: no-show after the grace period, completion after usage."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app
from sqlalchemy import exists, select

from labshare.database import begin_write
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, UsageRecord
from labshare.services.bookings import mark_no_show
from labshare.services.lifecycle_jobs import complete_from_usage
from labshare.timeutil import utcnow


def mark_no_shows() -> dict[str, Any]:
    """Approved bookings nobody checked in to, whose end plus the grace period passed."""
    grace = dt.timedelta(minutes=int(current_app.config.get("NO_SHOW_GRACE_MINUTES", 30)))
    begin_write()
    now = utcnow()
    has_usage = exists().where(UsageRecord.booking_id == Booking.id)
    bookings = list(
        db.session.scalars(
            select(Booking)
            .where(
                Booking.status == BookingStatus.APPROVED,
                Booking.end_at <= now - grace,
                Booking.checked_in_at.is_(None),  # someone came (check-in, issue 8)
                ~has_usage,
            )
            .order_by(Booking.end_at, Booking.id)
        )
    )
    reason = "no check-in by the end of the booking plus the grace period"
    changed = [b.id for b in bookings if mark_no_show(b, quiet=True, reason=reason, now=now)]
    return {"no_show": len(changed), "ids": changed}


def complete_bookings() -> dict[str, Any]:
    """Approved bookings with a usage record whose check-out has passed."""
    begin_write()
    now = utcnow()
    bookings = list(
        db.session.scalars(
            select(Booking)
            .join(UsageRecord, UsageRecord.booking_id == Booking.id)
            .where(Booking.status == BookingStatus.APPROVED, UsageRecord.checked_out_at <= now)
            .order_by(Booking.end_at, Booking.id)
        )
    )
    changed = [b.id for b in bookings if complete_from_usage(b)]
    return {"completed": len(changed), "ids": changed}
