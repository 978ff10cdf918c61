"""Check-in and auto-release.

Check-in: the booking's company (on the resource's check-in page, e.g. from its QR
code) or its institute's staff say that someone came. It opens
``checkin_opens_minutes`` before the start and closes at the end; it is audited and
made under the booking's lock, and a second check-in is refused (409 invalid_state):
the first one's time and person are what the usage record defaults to.

Auto-release: where the rules say ``checkin_required``, an approved booking nobody
checked into ``checkin_release_minutes`` after its start becomes a no-show (the one
no-show transition, ``services.bookings.mark_no_show`` in its quiet mode: a
conditional UPDATE, so two schedulers never release a booking twice), is audited and
notified, and its remaining time is offered to the waitlist. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, select

from labshare.booking import windows as windows_table
from labshare.booking.bookings import _lock_booking, lock_resources, mark_no_show
from labshare.booking.permissions import can_view_booking, is_member_of_company, is_staff_of
from labshare.booking.rules import MAX_BOOKING_SPAN, Rules, effective_rules, institute_zone
from labshare.errors import InvalidTransition, NotAllowed, NotFound, RuleViolation
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, Resource, UsageRecord, User
from labshare.ops import audit
from labshare.timeutil import to_local, utcnow


@dataclass(frozen=True)
class Window:
    """When a booking can be checked into: [opens, closes), and when an unchecked
    booking is released (only where ``required``)."""

    opens: dt.datetime
    closes: dt.datetime
    release_at: dt.datetime
    required: bool

    def is_open(self, now: dt.datetime) -> bool:
        return self.opens <= now < self.closes


def window(booking: Booking, rules: Rules | None = None) -> Window:
    rules = rules or effective_rules(booking.resource)
    opens, closes = windows_table.bounds(
        windows_table.Move.CHECK_IN, booking.start_at, booking.end_at, rules
    )
    assert opens is not None and closes is not None  # the table bounds check-in both ways
    return Window(
        opens=opens,
        closes=closes,
        release_at=booking.start_at + dt.timedelta(minutes=rules.checkin_release_minutes),
        required=rules.checkin_required,
    )


def may_check_in(user: User, booking: Booking) -> bool:
    """The booking's company members and its institute's staff."""
    return is_staff_of(user, booking.institute_id) or is_member_of_company(user, booking.company_id)


def _local(value: dt.datetime, resource: Resource) -> str:
    return to_local(value, institute_zone(resource)).strftime("%Y-%m-%d %H:%M")


def check_in(booking: Booking, actor: User, *, now: dt.datetime | None = None) -> Booking:
    """Record that someone came for ``booking``: by a member of its company or staff
    of its institute, for an approved booking, from ``checkin_opens_minutes`` before
    the start until the end. Raises NotFound (another tenant), NotAllowed,
    InvalidTransition (not approved, or checked in already) or RuleViolation
    ``checkin_window``; writes nothing then."""
    if not can_view_booking(actor, booking):
        raise NotFound(_l("No such booking."))
    staff = is_staff_of(actor, booking.institute_id)
    if not staff and not is_member_of_company(actor, booking.company_id):
        raise NotAllowed(_l("Only the booking's company or its institute's staff can check in."))
    _lock_booking(booking)
    resource = booking.resource
    if booking.checked_in_at is not None:
        raise InvalidTransition(
            _l(
                "This booking was checked in already, at %(time)s.",
                time=_local(booking.checked_in_at, resource),
            )
        )
    if booking.status != BookingStatus.APPROVED:
        raise InvalidTransition(
            _l(
                "Only an approved booking can be checked in; this one is %(s)s.",
                s=str(BookingStatus(booking.status)),
            )
        )
    now = now or utcnow()
    rules = effective_rules(resource)
    win = window(booking, rules)
    if now < win.opens:
        raise RuleViolation(
            _l(
                "Check-in opens at %(time)s, %(n)d minutes before the start.",
                time=_local(win.opens, resource),
                n=rules.checkin_opens_minutes,
            ),
            rule="checkin_window",
        )
    if now >= win.closes:
        raise RuleViolation(
            _l(
                "Check-in closed at the end of the booking, %(time)s.",
                time=_local(win.closes, resource),
            ),
            rule="checkin_window",
        )
    if win.required and not staff and now >= win.release_at:
        # The booking is due for release; staff (on site) may still check it in.
        raise RuleViolation(
            _l(
                "Check-in closed at %(time)s, %(n)d minutes after the start; please ask the "
                "institute's staff.",
                time=_local(win.release_at, resource),
                n=rules.checkin_release_minutes,
            ),
            rule="checkin_window",
        )
    booking.checked_in_at = now
    booking.checked_in_by_id = actor.id
    db.session.flush()
    audit.record(
        "booking.check_in",
        booking,
        actor=actor,
        data={"checked_in_at": now.isoformat()},
    )
    return booking


def windows(bookings: list[Booking]) -> dict[int, Window]:
    """The window of each booking (rules read once per resource)."""
    cache: dict[int, Rules] = {}
    out: dict[int, Window] = {}
    for booking in bookings:
        if booking.resource_id not in cache:
            cache[booking.resource_id] = effective_rules(booking.resource)
        out[booking.id] = window(booking, cache[booking.resource_id])
    return out


# -- auto-release -------------------------------------------------------------------------


def due_for_release(
    now: dt.datetime, *, resource_id: int | None = None
) -> list[tuple[Booking, Window]]:
    """Approved bookings without a check-in (nor a usage record) of resources whose
    rules require check-in, whose start plus the release minutes has passed (of
    ``resource_id`` only, if given). Ordered by resource id (the order locks are
    taken in), then start."""
    has_usage = exists().where(UsageRecord.booking_id == Booking.id)
    stmt = select(Booking).where(
        Booking.status == BookingStatus.APPROVED,
        Booking.checked_in_at.is_(None),
        Booking.start_at <= now,
        Booking.start_at > now - MAX_BOOKING_SPAN,
        ~has_usage,
    )
    if resource_id is not None:
        stmt = stmt.where(Booking.resource_id == resource_id)
    candidates = list(
        db.session.scalars(stmt.order_by(Booking.resource_id, Booking.start_at, Booking.id))
    )
    found = windows(candidates)
    return [
        (b, found[b.id])
        for b in candidates
        if found[b.id].required and found[b.id].release_at <= now
    ]


def release_unchecked(
    now: dt.datetime | None = None, *, resource_id: int | None = None
) -> list[int]:
    """Release the bookings ``due_for_release`` (of ``resource_id`` only, if given;
    the scheduler goes one resource at a time): each becomes a no-show (audited,
    notified) and its remaining time goes to the waitlist. Returns the ids this call
    changed; a booking someone else released (or checked in) meanwhile is skipped."""
    now = now or utcnow()
    due = due_for_release(now, resource_id=resource_id)
    if not due:
        return []
    lock_resources([b.resource_id for b, _w in due])
    changed: list[int] = []
    for booking, win in due:
        minutes = int((win.release_at - booking.start_at) / dt.timedelta(minutes=1))
        reason = f"no check-in within {minutes} minutes of the start"
        if mark_no_show(booking, quiet=True, reason=reason, now=now):
            changed.append(booking.id)
    return changed
