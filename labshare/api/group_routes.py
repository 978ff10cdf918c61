"""Booking groups: a lab and some of its instruments booked together, all or
nothing (booking/policies/groups.py). A group's members are ordinary bookings under
/bookings; approving, rejecting or cancelling any member moves the whole group."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from flask_babel import gettext as _
from pydantic import Field

from labshare.api import bp
from labshare.api.registry import AwareTime, BodyModel, ResponseModel, endpoint
from labshare.api.resource_routes import load_resource
from labshare.api.schemas import MAX_ID, BookingOut
from labshare.api.serialize import group_json
from labshare.booking.permissions import can_view_booking
from labshare.booking.policies import groups
from labshare.errors import NotFound
from labshare.extensions import db
from labshare.models import BookingGroup, Role, User
from labshare.ratelimit import booking_limit, caller_key


class GroupCreate(BodyModel):
    lab_id: int = Field(ge=1, le=MAX_ID)
    instrument_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        min_length=1,
        max_length=groups.MAX_INSTRUMENTS,
        description="instruments of that lab to book with it (their bundles come along)",
    )
    start: AwareTime
    end: AwareTime
    purpose: str = Field(min_length=1, max_length=500)
    samples: str | None = Field(None, max_length=5000)


class GroupOut(ResponseModel):
    id: int
    lab_id: int
    institute_id: int
    company_id: int
    user_id: int
    purpose: str
    created_at: dt.datetime
    bookings: list[BookingOut] = Field(description="the members, in resource id order")


def _load_group(user: User, group_id: int) -> BookingGroup:
    group = db.session.get(BookingGroup, group_id)
    members = groups.members_of(group_id) if group is not None else []
    if group is None or not members or not can_view_booking(user, members[0]):
        raise NotFound(_("No booking group %(id)s.", id=group_id))
    return group


@endpoint(
    bp,
    "/booking-groups",
    "POST",
    summary="Book a lab and some of its instruments together, all or nothing (SME members)",
    description="201 with the group and its bookings: all pending when any member needs "
    "approval, else all approved. Nothing is booked when any member is refused: 409 "
    "conflict or 422 rule_violation, the message naming the resource (and resource_id). "
    "422 validation_error field instrument_ids for an instrument of another lab or one "
    "listed twice. Approve, reject or cancel any member under /bookings to move the group.",
    tag="bookings",
    roles=(Role.SME,),
    body=GroupCreate,
    response=GroupOut,
    status=201,
    errors=(404, 409, 422),
    limit=booking_limit,
    limit_key=caller_key,
)
def create_group(user: User, body: GroupCreate) -> dict[str, Any]:
    lab = load_resource(body.lab_id)
    instruments = [load_resource(i) for i in body.instrument_ids]
    group = groups.create_group(
        lab, instruments, user, body.start, body.end, purpose=body.purpose, samples=body.samples
    )
    db.session.commit()
    return group_json(group, groups.members_of(group.id))


@endpoint(
    bp,
    "/booking-groups/<int:group_id>",
    "GET",
    summary="One booking group and its bookings",
    description="Visible to whoever may see its bookings (their company, their "
    "institute's staff, admins); 404 otherwise.",
    tag="bookings",
    auth=True,
    response=GroupOut,
    errors=(404,),
)
def get_group(user: User, group_id: int) -> dict[str, Any]:
    group = _load_group(user, group_id)
    return group_json(group, groups.members_of(group.id))
