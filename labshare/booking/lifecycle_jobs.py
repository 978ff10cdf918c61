"""Completion by the scheduler once usage was recorded.

A conditional ``UPDATE ... WHERE status = 'approved'``: the database decides who
changes the row, so a second scheduler (or a rerun, or staff acting at the same
moment) finds nothing left to change, writes no second audit row and queues no
second message. It does not commit; the job does. There is no no-show function
here: the jobs call the booking engine's one transition
(``services.bookings.mark_no_show``) in its quiet mode.
"""

from __future__ import annotations

from sqlalchemy import update

from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import Booking, BookingStatus
from labshare.ops import audit
from labshare.timeutil import utcnow


def _complete(booking: Booking) -> bool:
    now = utcnow()
    result = db.session.execute(
        update(Booking)
        .where(
            Booking.id == booking.id,
            Booking.status == BookingStatus.APPROVED,
            Booking.start_at <= now,  # the window of "complete" (services/windows.py)
        )
        .values(status=BookingStatus.COMPLETED, updated_at=now)
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


def complete_from_usage(booking: Booking) -> bool:
    """approved -> completed (usage was recorded). False when no longer approved."""
    return _complete(booking)
