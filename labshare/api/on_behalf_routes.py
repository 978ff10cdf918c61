"""Staff book for a company of their choosing on one of their institute's resources."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from labshare.api import bp
from labshare.api.registry import endpoint
from labshare.api.resource_routes import load_resource
from labshare.api.schemas import MAX_ID, BookingCreate, BookingOut
from labshare.api.serialize import booking_json
from labshare.booking.policies import on_behalf
from labshare.extensions import db
from labshare.models import Role, User


class OnBehalfCreate(BookingCreate):
    company_id: int = Field(ge=1, le=MAX_ID, description="the company booked for")
    user_id: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="the member booked for; default: the company's administrator",
    )


@endpoint(
    bp,
    "/bookings/on-behalf",
    "POST",
    summary="Book for a company (staff of the resource's institute)",
    description="The booking is the company's, with a member as its booker and "
    "booked_by_id the staff member; every rule applies as if the member had booked, "
    "and the member is told. Another institute's resource: 404.",
    tag="bookings",
    roles=(Role.STAFF,),
    body=OnBehalfCreate,
    response=BookingOut,
    status=201,
    errors=(404, 409, 422),
)
def book_on_behalf(user: User, body: OnBehalfCreate) -> dict[str, Any]:
    resource = load_resource(body.resource_id)
    booking = on_behalf.book_for_company(
        user,
        resource,
        body.company_id,
        body.start,
        body.end,
        purpose=body.purpose,
        samples=body.samples,
        user_id=body.user_id,
    )
    db.session.commit()
    return booking_json(booking, user)
