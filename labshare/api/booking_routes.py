"""Bookings: list, detail, create and the life-cycle transitions. Tenancy and the
rules live in the services; each handler commits once, at the end."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select

from labshare.api import bp
from labshare.api.registry import endpoint
from labshare.api.resource_routes import load_resource
from labshare.api.schemas import (
    BookingCreate,
    BookingOut,
    BookingQuery,
    CancelBody,
    RejectBody,
    UsageBody,
)
from labshare.api.serialize import booking_json, page_json
from labshare.booking import booking_path, bookings  # waitlist
from labshare.booking.permissions import can_view_booking, visible_bookings
from labshare.booking.policies import waitlist
from labshare.errors import NotFound, SlotTaken
from labshare.extensions import db
from labshare.models import Booking, Role, User
from labshare.ratelimit import booking_limit, caller_key

TRANSITION_ERRORS = (403, 404, 409, 422)


def load_booking(booking_id: int) -> Booking:
    """A booking by id, or NotFound. Visibility is checked by the caller or the service."""
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        raise NotFound(_("No booking %(id)s.", id=booking_id))
    return booking


@endpoint(
    bp,
    "/bookings",
    "GET",
    summary="Bookings the caller may see",
    description="An SME member sees their company's bookings, staff their institute's, "
    "admins all. Newest start first.",
    tag="bookings",
    auth=True,
    query=BookingQuery,
    response=BookingOut,
    paginated=True,
)
def list_bookings(user: User, query: BookingQuery) -> dict[str, Any]:
    where = [visible_bookings(user)]
    if query.status is not None:
        where.append(Booking.status == query.status)
    if query.from_ is not None:
        where.append(Booking.end_at > query.from_)
    if query.to is not None:
        where.append(Booking.start_at < query.to)
    if query.resource_id is not None:
        where.append(Booking.resource_id == query.resource_id)
    total = db.session.scalar(select(func.count(Booking.id)).where(*where)) or 0
    rows = db.session.scalars(
        select(Booking)
        .where(*where)
        .order_by(Booking.start_at.desc(), Booking.id.desc())
        .offset((query.page - 1) * query.per_page)
        .limit(query.per_page)
    ).unique()
    items = [booking_json(b, user) for b in rows]
    return page_json(items, int(total), query.page, query.per_page)


@endpoint(
    bp,
    "/bookings/<int:booking_id>",
    "GET",
    summary="One booking",
    tag="bookings",
    auth=True,
    response=BookingOut,
    errors=(404,),
)
def get_booking(user: User, booking_id: int) -> dict[str, Any]:
    booking = load_booking(booking_id)
    if not can_view_booking(user, booking):
        raise NotFound(_("No booking %(id)s.", id=booking_id))
    return booking_json(booking, user)


@endpoint(
    bp,
    "/bookings",
    "POST",
    summary="Book a lab or instrument (SME members)",
    description="201 with the booking: pending, or approved where the resource "
    "auto-approves. 409 conflict when the slot is taken; 422 rule_violation names the rule.",
    tag="bookings",
    roles=(Role.SME,),
    body=BookingCreate,
    response=BookingOut,
    status=201,
    errors=(404, 409, 422),
    limit=booking_limit,
    limit_key=caller_key,
    locks_late=True,  # booking_path.create takes it before reading the resource
)
def create_booking(user: User, body: BookingCreate) -> dict[str, Any]:
    try:
        booking = booking_path.create(
            body.resource_id, user, body.start, body.end, purpose=body.purpose, samples=body.samples
        )
    except SlotTaken as exc:  # it says whether the waitlist can be joined
        db.session.rollback()  # nothing to keep; on PostgreSQL it may be aborted
        raise exc from None
    if booking is None:  # a bundle: booked with its group, locks taken in id order
        db.session.rollback()
        resource = load_resource(body.resource_id)
        try:
            booking = bookings.create_booking(
                resource, user, body.start, body.end, purpose=body.purpose, samples=body.samples
            )
        except SlotTaken as exc:  # waitlist: say whether the line can be joined
            raise waitlist.conflict_hint(exc, resource) from None
    out = booking_json(booking)  # before the commit, which would expire what it reads
    db.session.commit()
    return out


@endpoint(
    bp,
    "/bookings/<int:booking_id>/approve",
    "POST",
    summary="Approve a pending booking (staff of its institute)",
    tag="bookings",
    auth=True,
    response=BookingOut,
    errors=TRANSITION_ERRORS,
)
def approve_booking(user: User, booking_id: int) -> dict[str, Any]:
    booking = bookings.approve_booking(load_booking(booking_id), user)
    db.session.commit()
    return booking_json(booking)


@endpoint(
    bp,
    "/bookings/<int:booking_id>/reject",
    "POST",
    summary="Reject a pending booking, with a reason (staff of its institute)",
    tag="bookings",
    auth=True,
    body=RejectBody,
    response=BookingOut,
    errors=TRANSITION_ERRORS,
)
def reject_booking(user: User, booking_id: int, body: RejectBody) -> dict[str, Any]:
    booking = bookings.reject_booking(load_booking(booking_id), user, body.reason)
    db.session.commit()
    return booking_json(booking)


@endpoint(
    bp,
    "/bookings/<int:booking_id>/cancel",
    "POST",
    summary="Cancel a pending or approved booking",
    description="Its company's members (until the cancellation deadline) and its "
    "institute's staff (any time).",
    tag="bookings",
    auth=True,
    body=CancelBody,
    response=BookingOut,
    errors=TRANSITION_ERRORS,
)
def cancel_booking(user: User, booking_id: int, body: CancelBody) -> dict[str, Any]:
    booking = bookings.cancel_booking(load_booking(booking_id), user, body.reason)
    db.session.commit()
    return booking_json(booking)


@endpoint(
    bp,
    "/bookings/<int:booking_id>/usage",
    "POST",
    summary="Record what happened; approved -> completed (staff of its institute)",
    tag="bookings",
    auth=True,
    body=UsageBody,
    response=BookingOut,
    errors=TRANSITION_ERRORS,
)
def record_usage(user: User, booking_id: int, body: UsageBody) -> dict[str, Any]:
    booking = load_booking(booking_id)
    bookings.record_usage(
        booking,
        user,
        checked_in_at=body.checked_in_at,
        checked_out_at=body.checked_out_at,
        service_type=body.service_type,
        samples_count=body.samples_count,
        problem_solved=body.problem_solved,
        notes=body.notes,
    )
    db.session.commit()
    return booking_json(booking)
