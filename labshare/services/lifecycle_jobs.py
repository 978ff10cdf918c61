"""Transitions made by the scheduler at the end of a booking: no-show and completion.

Each is a conditional ``UPDATE ... WHERE status = 'approved'``: the database decides
who changes the row, so a second scheduler (or a rerun, or staff acting at the same
moment) finds nothing left to change, writes no second audit row and queues no
second message. Neither commits; the job does. The no-show is the booking engine's
one transition (``services.bookings.mark_no_show``) in its quiet mode.
"""

from __future__ import annotations

from sqlalchemy import update

from labshare.extensions import db
from labshare.models import Booking, BookingStatus
from labshare.services import audit, bookings, notify
from labshare.timeutil import utcnow


def _complete(booking: Booking) -> bool:
    result = db.session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == BookingStatus.APPROVED)
        .values(status=BookingStatus.COMPLETED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(booking)
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return False
    audit.record(
        "booking.complete",
        booking,
        actor=None,
        from_state=BookingStatus.APPROVED,
        to_state=BookingStatus.COMPLETED,
        reason="usage recorded",
    )
    notify.booking_event(booking, "completed")
    return True


def mark_no_show(booking: Booking) -> bool:
    """approved -> no_show (nobody checked in by the end plus the grace period).
    False when the booking was no longer approved, or was checked in; nothing is
    written then."""
    return bookings.mark_no_show(
        booking,
        quiet=True,
        reason="no check-in by the end of the booking plus the grace period",
    )


def complete_from_usage(booking: Booking) -> bool:
    """approved -> completed (usage was recorded). False when no longer approved."""
    return _complete(booking)
