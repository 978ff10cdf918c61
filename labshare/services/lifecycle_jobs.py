"""Transitions made by the scheduler at the end of a booking: no-show and completion.

Each is a conditional ``UPDATE ... WHERE status = 'approved'``: the database decides
who changes the row, so a second scheduler (or a rerun, or staff acting at the same
moment) finds nothing left to change, writes no second audit row and queues no
second message. Neither commits; the job does.
"""

from __future__ import annotations

from sqlalchemy import update

from labshare.extensions import db
from labshare.models import Booking, BookingStatus
from labshare.services import audit, notify
from labshare.timeutil import utcnow


def _transition(booking: Booking, to: BookingStatus, action: str, reason: str) -> bool:
    result = db.session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == BookingStatus.APPROVED)
        .values(status=to, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        db.session.refresh(booking)
        return False
    db.session.refresh(booking)
    audit.record(
        action,
        booking,
        actor=None,
        from_state=BookingStatus.APPROVED,
        to_state=to,
        reason=reason,
    )
    notify.booking_event(booking, "no_show" if to is BookingStatus.NO_SHOW else "completed")
    return True


def mark_no_show(booking: Booking) -> bool:
    """approved -> no_show (nobody checked in). False when the booking was no longer
    approved; nothing is written then."""
    return _transition(
        booking,
        BookingStatus.NO_SHOW,
        "booking.no_show",
        "no check-in by the end of the booking plus the grace period",
    )


def complete_from_usage(booking: Booking) -> bool:
    """approved -> completed (usage was recorded). False when no longer approved."""
    return _transition(booking, BookingStatus.COMPLETED, "booking.complete", "usage recorded")
