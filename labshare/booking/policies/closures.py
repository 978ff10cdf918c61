"""Closures that tell the people affected. A closure over time-holding bookings is
refused until staff say what happens to them: cancel them, or ask the companies to
move them (the bookings go back to pending: nothing stays approved inside a closure,
and approval re-checks closures, so none is approved there again). Each booker gets
one message per closure (dedupe key per closure and recipient) listing their bookings
with the nearest free alternatives. What happens to the bookings and the message are
``booking/displaced``'s, which public holidays use too."""

from __future__ import annotations

import datetime as dt

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.booking import bookings, displaced
from labshare.booking.displaced import OnBookings, booking_brief
from labshare.booking.permissions import is_staff_of
from labshare.catalogue import catalogue_admin
from labshare.database import begin_write
from labshare.errors import DomainError, NotAllowed
from labshare.extensions import db
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    Closure,
    Instrument,
    Lab,
    Resource,
    User,
)

__all__ = ["BookingsInClosure", "OnBookings", "affected", "booking_brief", "close", "notice"]


class BookingsInClosure(DomainError):
    """409: the closure covers bookings and staff have not said what to do with them."""

    status = 409
    code = "conflict"


def _scope_ids(resource: Resource) -> list[int]:
    """The resource and, for a lab, its instruments (a lab's closure closes them)."""
    ids = [resource.id]
    if isinstance(resource, Lab):
        ids += list(
            db.session.scalars(select(Instrument.id).where(Instrument.lab_id == resource.id))
        )
    return ids


def affected(resource: Resource, start: dt.datetime, end: dt.datetime) -> list[Booking]:
    """The time-holding bookings a closure of ``resource`` over [start, end) covers."""
    return list(
        db.session.scalars(
            select(Booking)
            .where(
                Booking.resource_id.in_(_scope_ids(resource)),
                Booking.status.in_(HOLDING_STATUSES),
                Booking.start_at < end,
                Booking.end_at > start,
            )
            .order_by(Booking.start_at, Booking.id)
        )
    )


# -- the closure --------------------------------------------------------------------------


def close(
    actor: User,
    resource: Resource,
    start: dt.datetime,
    end: dt.datetime,
    *,
    kind: str,
    note: str | None = None,
    on_bookings: str | None = None,
    message: str | None = None,
    dry_run: bool = False,
) -> tuple[Closure | None, list[Booking]]:
    """Close ``resource`` over [start, end) and deal with the bookings inside.

    ``dry_run``: only the bookings it would cover (nothing written). Bookings inside and
    no ``on_bookings``: ``BookingsInClosure`` (409) listing them, nothing written."""
    if not is_staff_of(actor, resource.institute_id):
        raise NotAllowed(_l("Only staff of the institute can change its catalogue."))
    action = displaced.parse_choice(on_bookings)
    text = displaced.parse_message(message)
    begin_write()
    scope = _scope_ids(resource)
    bookings.lock_resources(scope)  # then the bookings: the one lock order
    if dry_run:  # the same checks as creating it, in a savepoint always rolled back
        savepoint = db.session.begin_nested()
        try:
            catalogue_admin.add_closure(actor, resource, start, end, kind=kind, note=note)
            return None, affected(resource, start, end)
        finally:
            savepoint.rollback()
    closure = catalogue_admin.add_closure(actor, resource, start, end, kind=kind, note=note)
    inside = affected(resource, start, end)
    if inside and action is None:
        raise BookingsInClosure(
            _l(
                "%(n)d bookings fall in this closure: choose to cancel them or to ask "
                "the companies to move them.",
                n=len(inside),
            ),
            details={"bookings": [booking_brief(b) for b in inside]},
        )
    if action is not None and inside:
        items = [displaced.Displaced(b, (closure.start_at, closure.end_at)) for b in inside]
        displaced.settle(
            actor,
            items,
            action,
            text=text,
            cancel_reason=_("Closed: %(kind)s", kind=kind),
            hold_action="booking.closure_hold",
            hold_data={"closure_id": closure.id},
        )
        displaced.tell(
            items,
            notice(closure, resource, set(scope)),
            cancelled=action is OnBookings.CANCEL,
            text=text,
        )
    return closure, inside


def notice(closure: Closure, resource: Resource, closed_ids: set[int]) -> displaced.Notice:
    """What a closure's message is about: ``resource`` is closed over the closure's
    time; alternatives avoid the closure on every resource it closes (the calendar may
    not show it yet). Worded when read or sent (``displaced_notice``)."""
    return displaced.Notice(
        source={
            "type": "closure",
            "closure_id": closure.id,
            "resource_id": resource.id,
            "start": closure.start_at.isoformat(),
            "end": closure.end_at.isoformat(),
            "closed_ids": sorted(closed_ids),
        },
        dedupe=lambda user_id: f"closure:{closure.id}:{user_id}",
    )
