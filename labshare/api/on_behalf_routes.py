"""Staff book for a company of their choosing on one of their institute's resources:
one booking, a lab with some of its instruments, or a recurring series. Each records
the staff member as ``booked_by_id`` on every booking made, and tells the company
once."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from labshare.api import bp
from labshare.api.group_routes import GroupCreate, GroupOut
from labshare.api.registry import BodyModel, endpoint
from labshare.api.resource_routes import load_resource
from labshare.api.schemas import MAX_ID, BookingCreate, BookingOut
from labshare.api.serialize import booking_json, group_json
from labshare.api.series_routes import (
    SeriesCreate,
    SeriesOut,
    occurrences_json,
    series_json,
    spec_of,
)
from labshare.booking.policies import groups, on_behalf
from labshare.extensions import db
from labshare.models import Role, User


class ForCompany(BodyModel):
    company_id: int = Field(ge=1, le=MAX_ID, description="the company booked for")
    user_id: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="the member booked for; default: the company's administrator",
    )


class OnBehalfCreate(BookingCreate, ForCompany):
    pass


class GroupOnBehalfCreate(GroupCreate, ForCompany):
    pass


class SeriesOnBehalfCreate(SeriesCreate, ForCompany):
    pass


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


@endpoint(
    bp,
    "/booking-groups/on-behalf",
    "POST",
    summary="Book a lab and some of its instruments for a company (staff of the lab's institute)",
    description="As POST /booking-groups, for the company: every member booking has "
    "booked_by_id the staff member; the company is told once. Another institute's lab: "
    "404; a company not confirmed: 403 (rule company_not_confirmed).",
    tag="bookings",
    roles=(Role.STAFF,),
    body=GroupOnBehalfCreate,
    response=GroupOut,
    status=201,
    errors=(403, 404, 409, 422),
)
def book_group_on_behalf(user: User, body: GroupOnBehalfCreate) -> dict[str, Any]:
    lab = load_resource(body.lab_id)
    group = on_behalf.book_group_for_company(
        user,
        lab,
        body.instrument_ids,
        body.company_id,
        body.start,
        body.end,
        purpose=body.purpose,
        samples=body.samples,
        user_id=body.user_id,
    )
    db.session.commit()
    return group_json(group, groups.members_of(group.id))


@endpoint(
    bp,
    "/series/on-behalf",
    "POST",
    summary="Book a recurring series for a company (staff of the resource's institute)",
    description="As POST /series, for the company: every occurrence has booked_by_id the "
    "staff member; the company is told once. Another institute's resource: 404; a "
    "company not confirmed: 403 (rule company_not_confirmed).",
    tag="series",
    roles=(Role.STAFF,),
    body=SeriesOnBehalfCreate,
    response=SeriesOut,
    status=201,
    errors=(403, 404, 409, 422),
)
def book_series_on_behalf(user: User, body: SeriesOnBehalfCreate) -> dict[str, Any]:
    resource = load_resource(body.resource_id)
    plan = on_behalf.book_series_for_company(
        user,
        resource,
        body.company_id,
        body.start,
        body.end,
        spec_of(body),
        purpose=body.purpose,
        samples=body.samples,
        user_id=body.user_id,
        skip_conflicting=body.skip_conflicting,
    )
    db.session.commit()
    assert plan.series is not None
    out = series_json(plan.series, user)
    out["occurrences"] = occurrences_json(plan)
    return out
