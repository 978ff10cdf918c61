"""Moving a booking to another time on its resource (``booking/move.py``)."""

from __future__ import annotations

from typing import Any

from labshare.api import bp
from labshare.api.booking_routes import TRANSITION_ERRORS, load_booking
from labshare.api.registry import AwareTime, BodyModel, endpoint
from labshare.api.schemas import BookingOut
from labshare.api.serialize import booking_json
from labshare.booking import move
from labshare.extensions import db
from labshare.models import User
from labshare.ratelimit import booking_limit, caller_key


class MoveBody(BodyModel):
    start: AwareTime
    end: AwareTime


@endpoint(
    bp,
    "/bookings/<int:booking_id>/move",
    "POST",
    summary="Move a pending or approved booking to another time on the same resource",
    description="Its company's members (until the cancellation deadline) and its "
    "institute's staff (until the start). The new time is judged by every rule of a "
    "new booking, the booking itself left out; 409 conflict when it is taken, and then "
    "nothing changes. The booking keeps its id; a company's move of an approved booking "
    "is pending again where the rules ask for approval. The freed time is offered to "
    "the waitlist.",
    tag="bookings",
    auth=True,
    body=MoveBody,
    response=BookingOut,
    errors=TRANSITION_ERRORS,
    limit=booking_limit,
    limit_key=caller_key,
)
def move_booking(user: User, booking_id: int, body: MoveBody) -> dict[str, Any]:
    booking = move.move_booking(load_booking(booking_id), user, body.start, body.end)
    out = booking_json(booking, user)
    db.session.commit()
    return out
