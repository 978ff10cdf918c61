"""Closures that tell the people affected. A closure over time-holding bookings is
refused until staff say what happens to them: cancel them, or ask the companies to
move them (the bookings go back to pending: nothing stays approved inside a closure,
and approval re-checks closures, so none is approved there again). Each booker gets
one message per closure (in-app and mail through the outbox, dedupe key per closure
and recipient) listing their bookings with the nearest free alternatives: the same
resource after the closure, then equivalent instruments (same measurand, a range that
covers the booked one's), the same institute first."""

from __future__ import annotations

import datetime as dt
import enum
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, select

from labshare.booking import availability, bookings
from labshare.booking.permissions import is_staff_of
from labshare.booking.rules import effective_rules, institute_zone
from labshare.catalogue import catalogue_admin
from labshare.database import begin_write
from labshare.errors import DomainError, NotAllowed, ValidationFailed
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingStatus,
    Closure,
    Instrument,
    Lab,
    Resource,
    ResourceStatus,
    User,
)
from labshare.ops import audit
from labshare.timeutil import isoformat_local, utcnow, zone

MESSAGE_MAX = 500
ALTERNATIVES = 3
SEARCH_DAYS = 14


class OnBookings(enum.StrEnum):
    CANCEL = "cancel"
    ASK_MOVE = "ask_move"


class BookingsInClosure(DomainError):
    """409: the closure covers bookings and staff have not said what to do with them."""

    status = 409
    code = "conflict"


@dataclass(frozen=True)
class Alternative:
    resource: Resource
    start: dt.datetime
    end: dt.datetime


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


def booking_brief(booking: Booking) -> dict[str, Any]:
    tz = institute_zone(booking.resource)
    return {
        "id": booking.id,
        "resource_id": booking.resource_id,
        "company_id": booking.company_id,
        "company_name": booking.company.name,
        "start": isoformat_local(booking.start_at, tz),
        "end": isoformat_local(booking.end_at, tz),
        "status": str(booking.status),
    }


# -- alternatives -------------------------------------------------------------------------


def _grid_start(value: dt.datetime, slot_minutes: int, tz: str) -> dt.datetime:
    local = value.astimezone(zone(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = (local - midnight).total_seconds() / 60
    steps = -(-minutes // slot_minutes)
    return (midnight + dt.timedelta(minutes=steps * slot_minutes)).astimezone(dt.UTC)


def _first_fit(
    resource: Resource,
    after: dt.datetime,
    length: dt.timedelta,
    closed: tuple[dt.datetime, dt.datetime] | None,
) -> Alternative | None:
    """The first free slot of ``length`` on ``resource``'s grid at or after ``after``,
    within its lead time and horizon, avoiding ``closed`` (the new closure, which the
    calendar may not show yet)."""
    rules = effective_rules(resource)
    now = utcnow()
    start = max(after, now + dt.timedelta(hours=rules.lead_time_hours))
    end = min(start + dt.timedelta(days=SEARCH_DAYS), now + dt.timedelta(days=rules.horizon_days))
    if start >= end:
        return None
    tz = institute_zone(resource)
    for free in availability.availability(resource, start, end).free:
        begin = _grid_start(free.start, rules.slot_minutes, tz)
        if closed is not None and begin < closed[1] and begin + length > closed[0]:
            begin = _grid_start(max(begin, closed[1]), rules.slot_minutes, tz)
        if begin + length <= free.end:
            return Alternative(resource, begin, begin + length)
    return None


def equivalents(resource: Resource, limit: int = 5) -> list[Instrument]:
    """Instruments that measure the same quantity over at least the same range,
    available, the same institute first."""
    if not isinstance(resource, Instrument) or resource.range_min_base is None:
        return []
    same_institute = case((Instrument.institute_id == resource.institute_id, 0), else_=1)
    return list(
        db.session.scalars(
            select(Instrument)
            .where(
                Instrument.id != resource.id,
                Instrument.measurand == resource.measurand,
                Instrument.range_min_base <= resource.range_min_base,
                Instrument.range_max_base >= resource.range_max_base,
                Instrument.status == ResourceStatus.AVAILABLE,
            )
            .order_by(same_institute, Instrument.id)
            .limit(limit)
        )
    )


def alternatives(booking: Booking, closure: Closure, closed_ids: set[int]) -> list[Alternative]:
    """The nearest free alternatives to ``booking``: its own resource after the
    closure, then equivalent instruments from the booking's own time on."""
    length = booking.end_at - booking.start_at
    found: list[Alternative] = []
    own = _first_fit(booking.resource, closure.end_at, length, None)
    if own is not None:
        found.append(own)
    for other in equivalents(booking.resource):
        if len(found) >= ALTERNATIVES:
            break
        window = (closure.start_at, closure.end_at) if other.id in closed_ids else None
        alt = _first_fit(other, booking.start_at, length, window)
        if alt is not None:
            found.append(alt)
    return found


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
    action: OnBookings | None = None
    if on_bookings:
        try:
            action = OnBookings(on_bookings)
        except ValueError:
            raise ValidationFailed(_l("Choose cancel or ask_move."), field="on_bookings") from None
    text = (message or "").strip() or None
    if text is not None and len(text) > MESSAGE_MAX:
        raise ValidationFailed(
            _l("At most %(n)d characters are allowed.", n=MESSAGE_MAX), field="message"
        )
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
    for booking in inside:
        if action is OnBookings.CANCEL:
            with notify.collect_booking_events():  # the closure's own message replaces it
                bookings.cancel_booking(booking, actor, text or _("Closed: %(kind)s", kind=kind))
        elif booking.status == BookingStatus.APPROVED:
            booking.status = BookingStatus.PENDING
            booking.decision_reason = text
            audit.record(
                "booking.closure_hold",
                booking,
                actor=actor,
                from_state=BookingStatus.APPROVED,
                to_state=BookingStatus.PENDING,
                reason=text,
                data={"closure_id": closure.id},
            )
    db.session.flush()
    _tell(closure, resource, inside, action, text, set(scope))
    return closure, inside


def _tell(
    closure: Closure,
    resource: Resource,
    inside: list[Booking],
    action: OnBookings | None,
    text: str | None,
    closed_ids: set[int],
) -> None:
    by_booker: dict[int, list[Booking]] = defaultdict(list)
    for booking in inside:
        by_booker[booking.user_id].append(booking)
    tz = institute_zone(resource)
    for bookings_of_user in by_booker.values():
        user = bookings_of_user[0].user
        locale = notify.locale_of(user)
        with force_locale(locale):
            items = [
                {
                    "booking": b,
                    "resource_name": notify.resource_name(b.resource, locale),
                    "when": notify.format_span(b.start_at, b.end_at, tz, locale),
                    "alternatives": [
                        {
                            "name": notify.resource_name(a.resource, locale),
                            "resource_id": a.resource.id,
                            "when": notify.format_span(
                                a.start, a.end, institute_zone(a.resource), locale
                            ),
                        }
                        for a in alternatives(b, closure, closed_ids)
                    ],
                }
                for b in bookings_of_user
            ]
            subject = _(
                "%(name)s is closed: your bookings need attention",
                name=notify.resource_name(resource, locale),
            )
            body_text, body_html = notify.render_for(
                "closure_notice",
                user,
                resource_name=notify.resource_name(resource, locale),
                closed=notify.format_span(closure.start_at, closure.end_at, tz, locale),
                cancelled=action is OnBookings.CANCEL,
                message=text,
                items=items,
            )
        notify.enqueue(
            user,
            "closure_notice",
            subject=subject,
            body_text=body_text,
            body_html=body_html,
            booking=bookings_of_user[0],
            dedupe_key=f"closure:{closure.id}:{user.id}",
        )
