"""The lean write path of one booking (``POST /api/v1/bookings``).

It does only what must be atomic, in a bounded number of statements whatever the
rules: lock the resource and read it (one statement), read its rules, opening
hours, the booker's qualification and the quotas that apply (one statement; a
second on PostgreSQL to lock the quotas, when there are any), read what the slot
is judged against (the bookings around it, closures, open waitlist offers, the
company's active bookings, its quota usage and no-show record: one UNION ALL),
then insert the booking, its audit row and its outbox events (event rows,
rendered at delivery: no template is rendered here).

Every rule is judged exactly as ``bookings.check_slot`` judges it, in the same
order and with the same messages; only the reads are gathered. The policies'
reads (quotas, waitlist offers, the no-show record) come from their
``hooks.SlotPolicy``: ``joins`` into the policy statement, ``reads`` into the
UNION ALL, ``judge`` and ``held`` on the rows. The reads are in ``path_reads``,
their statements built once per shape. The other paths (series, groups,
waitlist offers, approvals) keep using ``check_slot``. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from labshare.booking import checks, signals, workdays
from labshare.booking.booking_row import booking_values, compute_fee
from labshare.booking.hooks import Stage, together
from labshare.booking.path_reads import (
    Around,
    Policy,
    booker_state,
    load_policy,
    lock_and_load,
    read_around,
)
from labshare.booking.path_writes import queue_new_booking_events, write_booking
from labshare.booking.rules import calibration_cutoff, institute_zone
from labshare.errors import NotFound, RuleViolation, SlotTaken
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, Resource, User
from labshare.timeutil import utcnow, zone

__all__ = [
    "Around",
    "Policy",
    "create",
    "load_policy",
    "lock_and_load",
    "queue_new_booking_events",
    "read_around",
]


def _judge(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    tz: str,
    policy: Policy,
) -> Around:
    """``bookings.check_slot`` on gathered reads: the same rules in the same order."""
    rules = policy.rules
    company_id = booker.company_id
    assert company_id is not None  # validate_request
    checks._check_available(resource)
    if resource.requires_qualification:
        local_day = start.astimezone(zone(tz)).date()
        if not policy.qualified or (
            policy.qualified_until is not None and policy.qualified_until < local_day
        ):
            raise RuleViolation(
                _l("This instrument may only be booked by users its staff have marked qualified."),
                rule="qualification",
                field="resource_id",
            )
    checks._check_time_rules(rules, tz, start, end, now)
    workdays.check_holiday(policy.days, tz, start, end)
    spans = workdays.open_spans(policy.periods, tz, start, end, policy.days)
    if not any(s <= start and end <= e for s, e in spans):
        raise RuleViolation(
            _l("The booking must lie within the lab's opening hours."),
            rule="opening_hours",
            field="start",
        )
    around = read_around(resource, company_id, start, end, now, policy, tz, booker=booker)
    if around.closures:
        raise RuleViolation(
            _l("The resource is closed during part of this time."),
            rule="closure",
            field="start",
        )
    cutoff = calibration_cutoff(resource, tz)
    if cutoff is not None and end > cutoff:
        raise RuleViolation(
            _l("The instrument's calibration expires before the end of this booking."),
            rule="calibration_expired",
            field="end",
        )
    if around.held >= rules.max_active_per_company:
        raise RuleViolation(
            _l(
                "Your company already holds %(n)d active bookings of this resource, the most "
                "allowed.",
                n=rules.max_active_per_company,
            ),
            rule="company_quota",
            field="resource_id",
        )
    slot = around.slot
    for part, gathered in zip(policy.policies, around.parts, strict=True):
        if part.stage is Stage.LIMITS:  # e.g. the quotas per period
            part.judge(slot, gathered)
    checks._check_free(
        resource, start, end, None, buffer_minutes=rules.buffer_minutes, around=around.busy
    )
    slot.busy = around.busy
    for part, gathered in zip(policy.policies, around.parts, strict=True):
        if part.stage is Stage.CLAIMS:  # e.g. an open waitlist offer
            part.judge(slot, gathered)
    return around


def _state_of(booker: User) -> tuple[Any, ...]:
    company = booker.company
    return booker_state(
        booker.active,
        booker.role,
        booker.company_id,
        booker.email_verified_at,
        company.status if company is not None else None,
    )


def create(
    resource_id: int,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
    samples: str | None = None,
    savepoint: bool = False,
    visible_only: bool = True,
) -> Booking | None:
    """Book [start, end) of resource ``resource_id`` for ``booker``, as
    ``bookings.create_booking`` does. None for a bundle instrument (booked with its
    group, whose locks are taken in id order): the caller rolls back and books it
    through ``bookings.create_booking``. ``savepoint``: on PostgreSQL insert in a
    savepoint, so that a conflict found by the exclusion constraint leaves the
    transaction usable (two statements more); without it the caller rolls back.
    ``visible_only``: a resource of an inactive institute is NotFound (as the API
    answers); the service's callers hand over a resource they already hold."""
    request = checks.validate_request(booker, start, end, purpose=purpose, samples=samples)
    resource = lock_and_load(resource_id)
    if resource is None or (visible_only and not resource.institute.active):
        raise NotFound(_l("No resource %(id)s.", id=resource_id))
    if together().books_together(resource):
        return None
    now = utcnow()
    tz = institute_zone(resource)
    policy = load_policy(resource, booker.id)
    if policy.booker != _state_of(booker):
        # changed while this request waited for the lock (its token was read before)
        db.session.refresh(booker)
        if booker.company is not None:
            db.session.refresh(booker.company)
    checks._check_booker(booker)  # again under the lock, as the database holds it now
    rules = policy.rules
    try:
        around = _judge(resource, booker, request.start, request.end, now, tz, policy)
    except SlotTaken as exc:
        if not savepoint:  # the API's caller: whether the waitlist can be joined
            exc.details.setdefault("waitlist_available", bool(rules.waitlist_enabled))
        raise
    company_id = booker.company_id
    assert company_id is not None
    fee, waived = compute_fee(resource, request.start, request.end)
    status = BookingStatus.PENDING if rules.requires_approval else BookingStatus.APPROVED
    held_reason: str | None = None
    if status == BookingStatus.APPROVED:  # e.g. a company's no-show record
        for part, gathered in zip(policy.policies, around.parts, strict=True):
            held_reason = part.held(around.slot, gathered)
            if held_reason is not None:
                status = BookingStatus.PENDING
                break
    values = booking_values(resource, booker, request, company_id, status, fee, waived)
    if status == BookingStatus.APPROVED:
        values["decided_at"] = now
    events = ["requested", "received"] if status == BookingStatus.PENDING else ["confirmed"]
    try:
        booking = write_booking(values, booker, events, reason=held_reason, savepoint=savepoint)
    except IntegrityError as exc:
        # PostgreSQL's exclusion constraint: the same conflict as the check's.
        if getattr(exc.orig, "sqlstate", None) == "23P01":
            taken = SlotTaken(_l("This time has just been booked by someone else."))
            if not savepoint:  # the API's caller: whether the waitlist can be joined
                taken.details["waitlist_available"] = bool(rules.waitlist_enabled)
            raise taken from exc
        raise
    set_committed_value(booking, "resource", resource)
    signals.booking_created.send(booking)
    return booking
