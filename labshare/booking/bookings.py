"""Creating bookings and moving them through their life cycle: the engine's entry
points, gathered from the modules that hold them.

- :mod:`labshare.booking.checks`: what a request must look like and the rules of a
  slot (``validate_request``, ``check_slot``);
- :mod:`labshare.booking.locking`: the write lock (``lock_resources``);
- :mod:`labshare.booking.booking_row`: the row and its fee (``new_booking``,
  ``compute_fee``);
- :mod:`labshare.booking.creation`: ``create_booking`` and ``book_locked``;
- :mod:`labshare.booking.transitions`: approve, reject, cancel, record usage, no-show.

Every function checks who may act, checks the input, then takes the write lock
before it reads what its decision depends on, so that check and write are one
atomic step. Each transition is audited and queues its notifications in the same
transaction. Nothing here commits.
"""

from __future__ import annotations

from labshare.booking.booking_row import CENT, compute_fee, new_booking
from labshare.booking.checks import (
    NOTES_MAX,
    PURPOSE_MAX,
    REASON_MAX,
    SAMPLES_MAX,
    BookingRequest,
    _aware,
    _check_available,
    _check_booker,
    _check_free,
    _check_time_rules,
    _text,
    check_slot,
    judge_slot,
    validate_request,
)
from labshare.booking.creation import book_locked, create_booking
from labshare.booking.locking import (
    _insert_or_conflict,
    _lock_booking,
    _lock_resource,
    lock_resources,
)
from labshare.booking.transitions import (
    TRANSITIONS,
    approve_booking,
    cancel_booking,
    cancel_displaced,
    mark_no_show,
    record_usage,
    reject_booking,
)

__all__ = [
    "CENT",
    "NOTES_MAX",
    "PURPOSE_MAX",
    "REASON_MAX",
    "SAMPLES_MAX",
    "TRANSITIONS",
    "BookingRequest",
    "_aware",
    "_check_available",
    "_check_booker",
    "_check_free",
    "_check_time_rules",
    "_insert_or_conflict",
    "_lock_booking",
    "_lock_resource",
    "_text",
    "approve_booking",
    "book_locked",
    "cancel_booking",
    "cancel_displaced",
    "check_slot",
    "compute_fee",
    "create_booking",
    "judge_slot",
    "lock_resources",
    "mark_no_show",
    "new_booking",
    "record_usage",
    "reject_booking",
    "validate_request",
]
