"""Check-in and no-show: two transitions of one booking."""

from __future__ import annotations

from typing import Any

from labshare.api import bp
from labshare.api.booking_routes import TRANSITION_ERRORS, load_booking
from labshare.api.registry import BodyModel, endpoint
from labshare.api.schemas import BookingOut
from labshare.api.serialize import booking_json
from labshare.booking import bookings
from labshare.booking.policies import checkin
from labshare.extensions import db
from labshare.models import User


class NoShowBody(BodyModel):
    reason: str | None = None


@endpoint(
    bp,
    "/bookings/<int:booking_id>/check-in",
    "POST",
    summary="Check in for an approved booking (its company's members, its institute's staff)",
    description="Opens the rules' checkin_opens_minutes before the start and closes at the "
    "end (422 rule_violation checkin_window, the message says when it opens). Where the "
    "rules require check-in, a company member can no longer check in once the booking is "
    "due for release (checkin_release_minutes after the start); staff still can. A second "
    "check-in is 409 invalid_state.",
    tag="bookings",
    auth=True,
    response=BookingOut,
    errors=TRANSITION_ERRORS,
)
def check_in(user: User, booking_id: int) -> dict[str, Any]:
    booking = checkin.check_in(load_booking(booking_id), user)
    db.session.commit()
    return booking_json(booking)


@endpoint(
    bp,
    "/bookings/<int:booking_id>/no-show",
    "POST",
    summary="Mark an approved booking nobody came to as a no-show (staff of its institute)",
    description="approved -> no_show, as the scheduler does; 409 invalid_state when the "
    "booking is not approved, was checked in or has not started yet. The time it still held "
    "goes to the waitlist.",
    tag="bookings",
    auth=True,
    body=NoShowBody,
    response=BookingOut,
    errors=TRANSITION_ERRORS,
)
def mark_no_show(user: User, booking_id: int, body: NoShowBody) -> dict[str, Any]:
    booking = load_booking(booking_id)
    bookings.mark_no_show(booking, user, reason=body.reason)
    db.session.commit()
    return booking_json(booking)
