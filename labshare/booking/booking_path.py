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

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import TextClause

from labshare.booking import checks, signals, workdays
from labshare.booking.booking_row import booking_values, compute_fee, insert_booking
from labshare.booking.hooks import Stage, together
from labshare.booking.path_reads import Around, Policy, load_policy, lock_and_load, read_around
from labshare.booking.rules import calibration_cutoff, institute_zone
from labshare.errors import NotFound, RuleViolation, SlotTaken
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import Booking, BookingStatus, Resource, Role, User
from labshare.models.base import UTCDateTime
from labshare.ops import audit
from labshare.timeutil import utcnow, zone

__all__ = ["Around", "Policy", "create", "load_policy", "lock_and_load", "read_around"]


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
    checks._check_booker(booker)  # again under the lock
    now = utcnow()
    tz = institute_zone(resource)
    policy = load_policy(resource, booker.id)
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
    try:
        booking = insert_booking(values, savepoint=savepoint)
    except IntegrityError as exc:
        # PostgreSQL's exclusion constraint: the same conflict as the check's.
        if getattr(exc.orig, "sqlstate", None) == "23P01":
            taken = SlotTaken(_l("This time has just been booked by someone else."))
            if not savepoint:  # the API's caller: whether the waitlist can be joined
                taken.details["waitlist_available"] = bool(rules.waitlist_enabled)
            raise taken from exc
        raise
    set_committed_value(booking, "resource", resource)
    audit.insert_one(
        "booking.create",
        "booking",
        booking.id,
        institute_id=booking.institute_id,
        actor_id=booker.id,
        to_state=status,
        reason=held_reason,
    )
    if status == BookingStatus.PENDING:
        queue_new_booking_events(booking, booker, ["requested", "received"])
    else:
        queue_new_booking_events(booking, booker, ["confirmed"])
    signals.booking_created.send(booking)
    return booking


_EVENTS_INSERT = (
    "INSERT INTO notification (dedupe_key, user_id, booking_id, kind, locale, status,"
    " attempts, next_attempt_at, created_at)"
    " SELECT CAST(:prefix AS VARCHAR(100)) || CASE WHEN u.id = :booker"
    " THEN CAST(:booker_event AS VARCHAR(50)) ELSE CAST(:staff_event AS VARCHAR(50)) END"
    " || ':' || CAST(u.id AS VARCHAR(20)), u.id, :booking_id,"
    " CASE WHEN u.id = :booker THEN CAST(:booker_kind AS VARCHAR(50))"
    " ELSE CAST(:staff_kind AS VARCHAR(50)) END,"
    " CASE WHEN u.locale IN :languages THEN u.locale ELSE CAST(:default_locale AS VARCHAR(10))"
    " END, 'pending', 0, :now, :now"
    " FROM user_account u WHERE "
)
_EVENTS_TAIL = " ORDER BY u.id ON CONFLICT (dedupe_key) DO NOTHING"
_EVENT_INSERTS: dict[tuple[str, ...], TextClause] = {}


def queue_new_booking_events(booking: Booking, booker: User, events: list[str]) -> None:
    """The booking's event rows for every recipient in one INSERT ... SELECT (the
    staff read in the same statement); a row already queued is left alone."""
    if notify._series_collector.get() is not None:  # a series sends its own message
        for event in events:
            notify.booking_event(booking, event)
        return
    booker_event = next((e for e in events if notify.BOOKING_EVENTS[e] in ("booker", "both")), None)
    staff_event = next((e for e in events if notify.BOOKING_EVENTS[e] in ("staff", "both")), None)
    languages = [str(x) for x in current_app.config.get("LANGUAGES", ["zh_CN", "en"])]
    who = []
    if booker_event is not None:
        who.append("u.id = :booker")
    if staff_event is not None:
        who.append(
            "(u.institute_id = :institute_id AND u.role = :staff_role AND u.active = :yes"
            " AND u.id <> :booker)"
        )
    if not who:
        return
    # Plain SQL of fixed pieces, values bound: the staff are read by the insert itself.
    # One statement per set of recipients, built once (text() parses its SQL).
    stmt = _EVENT_INSERTS.get(tuple(who))
    if stmt is None:
        stmt = _EVENT_INSERTS[tuple(who)] = text(
            _EVENTS_INSERT + " OR ".join(who) + _EVENTS_TAIL
        ).bindparams(
            bindparam("languages", expanding=True),
            bindparam("now", type_=UTCDateTime()),
        )
    booker_event = booker_event or staff_event
    staff_event = staff_event or booker_event
    db.session.execute(
        stmt,
        {
            "prefix": f"booking:{booking.id}:",
            "booker": booker.id,
            "booker_event": booker_event,
            "staff_event": staff_event,
            "booker_kind": f"booking_{booker_event}",
            "staff_kind": f"booking_{staff_event}",
            "booking_id": booking.id,
            "languages": languages,
            "default_locale": languages[0],
            "now": utcnow(),
            "institute_id": booking.institute_id,
            "staff_role": str(Role.STAFF),
            "yes": True,
        },
    )
