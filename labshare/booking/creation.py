"""Creating a booking: :func:`create_booking` (what the web form and other callers
use) and :func:`book_locked`, the checked insert under the resource's lock that
series, groups, waitlist offers and bookings on behalf build on. The API's lean
path is ``booking_path.create``; ``create_booking`` delegates to it.

Who books and what they typed is checked before any lock; the slot's rules under
it. The new booking is audited, its notifications queued and ``booking_created``
sent in the same transaction. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt

from labshare.booking import booking_path, signals
from labshare.booking.booking_row import compute_fee, new_booking
from labshare.booking.checks import BookingRequest, judge_slot, validate_request
from labshare.booking.hooks import slot_policies, together
from labshare.booking.locking import _insert_or_conflict, lock_resources
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import Booking, BookingStatus, Resource, User
from labshare.ops import audit
from labshare.timeutil import utcnow


def create_booking(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
    samples: str | None = None,
    on_behalf_by: User | None = None,
) -> Booking:
    """Book ``resource`` for [start, end). Pending, or approved where the rules
    auto-approve. Raises NotAllowed, ValidationFailed, RuleViolation or SlotTaken;
    writes nothing then. ``on_behalf_by``: the staff member booking for ``booker``'s
    company (checked by ``policies/on_behalf``); every rule still applies to the booker."""
    group = together()
    if group.books_together(resource):  # e.g. "booked together" instruments: the bundle
        return group.book_together(
            resource, booker, start, end, purpose, samples, on_behalf_by=on_behalf_by
        )
    if on_behalf_by is not None:  # the full path records who booked for the company
        request = validate_request(booker, start, end, purpose=purpose, samples=samples)
        lock_resources([resource.id])
        return book_locked(resource, booker, request, on_behalf_by=on_behalf_by)
    # The lean path: the same checks as book_locked on reads gathered in a few statements.
    booking = booking_path.create(
        resource.id,
        booker,
        start,
        end,
        purpose=purpose,
        samples=samples,
        savepoint=True,
        visible_only=False,
    )
    if booking is None:  # became a bundle meanwhile
        return group.book_together(resource, booker, start, end, purpose, samples)
    return booking


def book_locked(
    resource: Resource,
    booker: User,
    request: BookingRequest,
    *,
    now: dt.datetime | None = None,
    group_id: int | None = None,  # booking groups (policies/groups.py)
    pending: bool = False,  # booking groups: created pending whatever the rules say
    on_behalf_by: User | None = None,  # staff booking for the company
) -> Booking:
    """Check and insert one booking; the caller holds the lock of ``resource``
    (``lock_resources``). Several calls under one lock (a series, a group) see each
    other's rows, since each is flushed before the next check."""
    db.session.refresh(resource)  # re-read under the lock (status, calibration, ...)
    now = now or utcnow()
    slot = judge_slot(resource, booker, request.start, request.end, now)
    rules = slot.rules
    company_id = booker.company_id
    assert company_id is not None  # _check_booker
    fee, waived = compute_fee(resource, request.start, request.end)
    status = BookingStatus.PENDING if rules.requires_approval else BookingStatus.APPROVED
    # A policy may make a booking the rules would approve wait (e.g. a no-show record).
    held_reason: str | None = None
    if status == BookingStatus.APPROVED:
        for policy in slot_policies():
            held_reason = policy.hold(slot)
            if held_reason is not None:
                status = BookingStatus.PENDING
                break
    booking = new_booking(resource, booker, request, company_id, status, fee, waived)
    if pending:  # booking groups: one member needs approval, so all wait for it
        status = booking.status = BookingStatus.PENDING
    booking.group_id = group_id  # booking groups
    booking.booked_by_id = on_behalf_by.id if on_behalf_by is not None else None
    if status == BookingStatus.APPROVED:
        booking.decided_at = now
    _insert_or_conflict(booking)
    audit.record(
        "booking.create",
        booking,
        actor=on_behalf_by or booker,
        to_state=status,
        reason=held_reason,
        data={"on_behalf_of": company_id, "booker": booker.id} if on_behalf_by else None,
    )
    if status == BookingStatus.PENDING:
        notify.booking_event(booking, "requested")
        notify.booking_event(booking, "received")
    else:
        notify.booking_event(booking, "confirmed")
    signals.booking_created.send(booking)
    return booking
