"""Creating bookings and moving them through their life cycle.

Every function here checks who may act, checks the input, then takes the write
lock (``begin_write`` on SQLite, the resource's row on PostgreSQL) before it reads
what its decision depends on, so that check and write are one atomic step. Each
transition is audited and queues its notifications in the same transaction.
Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from labshare.accounts.companies import booking_refusal
from labshare.booking import workdays
from labshare.booking.availability import (
    capacity_of,
    closure_spans,
    holding_spans,
    saturated,
)
from labshare.booking.permissions import can_view_booking, is_member_of_company, is_staff_of
from labshare.booking.policies import group_hooks as groups_hook  # booking groups (issue 8)
from labshare.booking.policies.no_shows import no_show_count  # booking policies
from labshare.booking.policies.quotas import check_period_quotas  # booking policies
from labshare.booking.rules import (
    MAX_BOOKING_SPAN,
    Rules,
    calibration_cutoff,
    effective_rules,
    institute_zone,
    load_opening_periods,
    on_grid,
)
from labshare.booking.windows import Move
from labshare.booking.windows import check as check_window
from labshare.database import begin_write, is_sqlite
from labshare.errors import (
    InvalidTransition,
    NotAllowed,
    NotFound,
    RuleViolation,
    SlotTaken,
    ValidationFailed,
)
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingStatus,
    Qualification,
    Resource,
    ResourceKind,
    ResourceStatus,
    Role,
    ServiceType,
    UsageRecord,
    User,
)
from labshare.ops import audit
from labshare.timeutil import utcnow, zone

PURPOSE_MAX = 500
SAMPLES_MAX = 5000
REASON_MAX = 500
NOTES_MAX = 5000
CENT = Decimal("0.01")

#: Allowed transitions (DESIGN.md). Auto-approved bookings are created approved.
TRANSITIONS: dict[BookingStatus, frozenset[BookingStatus]] = {
    BookingStatus.PENDING: frozenset(
        {BookingStatus.APPROVED, BookingStatus.REJECTED, BookingStatus.CANCELLED}
    ),
    BookingStatus.APPROVED: frozenset(
        {BookingStatus.COMPLETED, BookingStatus.CANCELLED, BookingStatus.NO_SHOW}
    ),
    BookingStatus.REJECTED: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
    BookingStatus.COMPLETED: frozenset(),
    BookingStatus.NO_SHOW: frozenset(),
}


# -- input checks -------------------------------------------------------------------------


def _aware(value: dt.datetime, field: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValidationFailed(_l("A date and time is required."), field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(_l("The time needs a UTC offset, for example +08:00."), field=field)
    return value.astimezone(dt.UTC)


def _text(value: str | None, field: str, limit: int, *, required: bool) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise ValidationFailed(_l("This field is required."), field=field)
        return None
    if len(text) > limit:
        raise ValidationFailed(_l("At most %(n)d characters are allowed.", n=limit), field=field)
    return text


def _check_booker(booker: User) -> None:
    if not (booker.active and booker.role == Role.SME and booker.company_id is not None):
        raise NotAllowed(_l("Only members of a company can book."))
    # A company nobody has vouched for yet reads but does not book.
    refusal = booking_refusal(booker.company)
    if refusal is not None:
        raise refusal
    if booker.email_verified_at is None:
        raise NotAllowed(
            _l(
                "Please confirm your e-mail address before booking: open the link we "
                "mailed you, or ask for a new one on your account's security page."
            )
        )


# -- locking ------------------------------------------------------------------------------


def _lock_resource(resource_id: int) -> None:
    """Take the write lock for ``resource_id``: on SQLite the database's (BEGIN
    IMMEDIATE), on PostgreSQL the resource's row. Callers re-read after this."""
    begin_write()
    db.session.execute(select(Resource.id).where(Resource.id == resource_id).with_for_update())


def _lock_booking(booking: Booking) -> None:
    """Lock the booking's resource, then the booking (always in this order, so two
    transitions cannot deadlock), and re-read the booking."""
    booking_id, resource_id = booking.id, booking.resource_id
    _lock_resource(resource_id)
    db.session.execute(select(Booking.id).where(Booking.id == booking_id).with_for_update())
    db.session.refresh(booking)


def _insert_or_conflict(booking: Booking) -> None:
    """Insert ``booking``. On PostgreSQL the exclusion constraint may still refuse
    an overlap (SQLSTATE 23P01): that is the same conflict as the check's, never a
    500. The insert runs in a savepoint, so the caller's transaction stays usable."""
    if is_sqlite():
        db.session.add(booking)
        db.session.flush()
        return
    try:
        with db.session.begin_nested():
            db.session.add(booking)
            db.session.flush()
    except IntegrityError as exc:
        if booking in db.session:
            db.session.expunge(booking)
        if getattr(exc.orig, "sqlstate", None) == "23P01":
            raise SlotTaken(_l("This time has just been booked by someone else.")) from exc
        raise


# -- the rules ----------------------------------------------------------------------------


def _check_available(resource: Resource) -> None:
    if resource.status != ResourceStatus.AVAILABLE:
        raise RuleViolation(
            _l("This resource cannot be booked at the moment (maintenance or retired)."),
            rule="instrument_unavailable",
            field="resource_id",
        )


def _check_qualification(resource: Resource, booker: User, start: dt.datetime, tz: str) -> None:
    if not resource.requires_qualification:
        return
    qualification = db.session.scalar(
        select(Qualification).where(
            Qualification.user_id == booker.id, Qualification.resource_id == resource.id
        )
    )
    local_day = start.astimezone(zone(tz)).date()
    if qualification is None or (
        qualification.valid_until is not None and qualification.valid_until < local_day
    ):
        raise RuleViolation(
            _l("This instrument may only be booked by users its staff have marked qualified."),
            rule="qualification",
            field="resource_id",
        )


def _check_time_rules(
    rules: Rules,
    tz: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    *,
    lead_and_horizon: bool = True,
) -> None:
    for field, value in (("start", start), ("end", end)):
        if not on_grid(value, rules.slot_minutes, tz):
            raise RuleViolation(
                _l(
                    "Bookings must start and end on the %(n)d-minute slot grid.",
                    n=rules.slot_minutes,
                ),
                rule="granularity",
                field=field,
            )
    minutes = (end - start) / dt.timedelta(minutes=1)
    if minutes < rules.min_minutes:
        raise RuleViolation(
            _l("Bookings must last at least %(n)d minutes.", n=rules.min_minutes),
            rule="min_duration",
            field="end",
        )
    max_minutes = min(rules.max_minutes, MAX_BOOKING_SPAN / dt.timedelta(minutes=1))
    if minutes > max_minutes:
        raise RuleViolation(
            _l("Bookings may last at most %(n)d minutes.", n=int(max_minutes)),
            rule="max_duration",
            field="end",
        )
    if not lead_and_horizon:  # judged when the request was made
        return
    if start < now + dt.timedelta(hours=rules.lead_time_hours):
        raise RuleViolation(
            _l("Bookings must start at least %(n)d hours ahead.", n=rules.lead_time_hours),
            rule="lead_time",
            field="start",
        )
    if start > now + dt.timedelta(days=rules.horizon_days):
        raise RuleViolation(
            _l(
                "Bookings can be made at most %(n)d days ahead.",
                n=rules.horizon_days,
            ),
            rule="horizon",
            field="start",
        )


def _check_opening_hours(resource: Resource, tz: str, start: dt.datetime, end: dt.datetime) -> None:
    days = workdays.days_of_resource(resource)
    workdays.check_holiday(days, tz, start, end)
    spans = workdays.open_spans(load_opening_periods(resource), tz, start, end, days)
    if not any(s <= start and end <= e for s, e in spans):
        raise RuleViolation(
            _l("The booking must lie within the lab's opening hours."),
            rule="opening_hours",
            field="start",
        )


def _check_closure_and_calibration(
    resource: Resource, tz: str, start: dt.datetime, end: dt.datetime
) -> None:
    if closure_spans(resource, start, end):
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


def _check_quota(
    resource: Resource,
    company_id: int,
    rules: Rules,
    now: dt.datetime,
    exclude_id: int | None = None,
) -> None:
    stmt = select(func.count(Booking.id)).where(
        Booking.resource_id == resource.id,
        Booking.company_id == company_id,
        Booking.status.in_(HOLDING_STATUSES),
        Booking.end_at > now,
    )
    if exclude_id is not None:
        stmt = stmt.where(Booking.id != exclude_id)
    held = db.session.scalar(stmt)
    if (held or 0) >= rules.max_active_per_company:
        raise RuleViolation(
            _l(
                "Your company already holds %(n)d active bookings of this resource, the most "
                "allowed.",
                n=rules.max_active_per_company,
            ),
            rule="company_quota",
            field="resource_id",
        )


def _check_free(
    resource: Resource,
    start: dt.datetime,
    end: dt.datetime,
    exclude_id: int | None = None,
    *,
    buffer_minutes: int = 0,
    around: Sequence[tuple[dt.datetime, dt.datetime]] | None = None,
) -> None:
    """Refuse when the slot is taken: any overlapping holding booking of an
    instrument; ``capacity`` overlapping at some instant for a lab. The rules'
    buffer (resources of capacity 1 only: instruments and single-place labs) also
    refuses a holding booking less than ``buffer_minutes`` before or after.
    ``around``: those holding bookings, already read (services/booking_path.py)."""
    capacity = capacity_of(resource)
    if capacity <= 1:
        buffer = dt.timedelta(minutes=max(buffer_minutes, 0))
        stmt = select(Booking.start_at, Booking.end_at).where(
            Booking.resource_id == resource.id,
            Booking.start_at < end + buffer,
            Booking.end_at > start - buffer,
            Booking.status.in_(HOLDING_STATUSES),
        )
        if exclude_id is not None:
            stmt = stmt.where(Booking.id != exclude_id)
        rows = list(around) if around is not None else db.session.execute(stmt).all()
        if any(s < end and e > start for s, e in rows):
            raise SlotTaken(_l("This time is already booked."))
        if rows:
            raise SlotTaken(
                _l(
                    "This resource keeps a buffer of %(n)d minutes between bookings; "
                    "this time is too close to another booking.",
                    n=buffer_minutes,
                ),
                details={"buffer_minutes": buffer_minutes},
            )
        return
    spans = (
        list(around)
        if around is not None
        else holding_spans(resource.id, start, end, exclude_id=exclude_id)
    )
    clipped = [(max(s, start), min(e, end)) for s, e in spans]
    if saturated(clipped, capacity):
        raise SlotTaken(_l("The lab is fully booked during part of this time."))


def compute_fee(
    resource: Resource, start: dt.datetime, end: dt.datetime
) -> tuple[Decimal, Decimal]:
    hours = Decimal(int((end - start).total_seconds())) / Decimal(3600)
    fee = (hours * Decimal(resource.fee_per_hour or 0)).quantize(CENT, rounding=ROUND_HALF_UP)
    waived = (fee * Decimal(resource.fee_waiver_percent or 0) / Decimal(100)).quantize(
        CENT, rounding=ROUND_HALF_UP
    )
    return fee, min(waived, fee)


# -- creation -----------------------------------------------------------------------------


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
    company (checked by ``services/on_behalf``); every rule still applies to the booker."""
    if groups_hook.bundle_of(resource):  # "booked together" instruments: the whole bundle
        return groups_hook.book_bundle(resource, booker, start, end, purpose, samples)
    if on_behalf_by is not None:  # the full path records who booked for the company
        request = validate_request(booker, start, end, purpose=purpose, samples=samples)
        lock_resources([resource.id])
        return book_locked(resource, booker, request, on_behalf_by=on_behalf_by)
    # The lean path: the same checks as book_locked on reads gathered in a few statements.
    from labshare.booking import booking_path  # it builds on this module

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
        return groups_hook.book_bundle(resource, booker, start, end, purpose, samples)
    return booking


@dataclass(frozen=True)
class BookingRequest:
    """A request's checked input: aware UTC times, trimmed texts."""

    start: dt.datetime
    end: dt.datetime
    purpose: str
    samples: str | None


def validate_request(
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
    samples: str | None = None,
) -> BookingRequest:
    """Who books and what they typed, checked before any lock is taken."""
    _check_booker(booker)
    start = _aware(start, "start")
    end = _aware(end, "end")
    if end <= start:
        raise ValidationFailed(_l("The end must be after the start."), field="end")
    purpose_text = _text(purpose, "purpose", PURPOSE_MAX, required=True)
    assert purpose_text is not None  # required
    samples_text = _text(samples, "samples", SAMPLES_MAX, required=False)
    return BookingRequest(start, end, purpose_text, samples_text)


def lock_resources(resource_ids: Sequence[int]) -> None:
    """Take the write lock for several resources, in id order (so two requests
    that lock overlapping sets cannot deadlock)."""
    for resource_id in sorted(set(resource_ids)):
        _lock_resource(resource_id)


def check_slot(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    *,
    existing: Booking | None = None,
) -> Rules:
    """Every rule and the conflict check for one slot; the caller holds the lock of
    ``resource`` (``lock_resources``) and has re-read it. Returns the rules used.

    ``existing``: the request being approved. Everything is judged again as at
    creation (the rules, closures, calibration, qualification or quotas may have
    changed meanwhile), except the lead time and the horizon, which were judged
    when the request was made; the request itself does not count against it."""
    company_id = existing.company_id if existing is not None else booker.company_id
    if existing is None:
        _check_booker(booker)  # again under the lock: a waitlist offer is taken later
    elif not is_member_of_company(booker, existing.company_id):
        raise NotAllowed(
            _l(
                "The member who asked for this booking has left the company or was "
                "deactivated; reject the request instead."
            )
        )
    assert company_id is not None  # _check_booker
    exclude_id = existing.id if existing is not None else None
    rules = effective_rules(resource)
    tz = institute_zone(resource)
    _check_available(resource)
    _check_qualification(resource, booker, start, tz)
    _check_time_rules(rules, tz, start, end, now, lead_and_horizon=existing is None)
    _check_opening_hours(resource, tz, start, end)
    _check_closure_and_calibration(resource, tz, start, end)
    _check_quota(resource, company_id, rules, now, exclude_id)
    check_period_quotas(resource, company_id, start, end, tz, exclude_id=exclude_id)
    _check_free(resource, start, end, exclude_id, buffer_minutes=rules.buffer_minutes)
    # -- waitlist (issue 8): an open offer holds its slot for the offeree --
    from labshare.booking.policies.waitlist import check_offers

    check_offers(
        resource,
        booker,
        start,
        end,
        now,
        buffer_minutes=rules.buffer_minutes,
        exclude_id=exclude_id,
    )
    # -- end waitlist --
    return rules


def new_booking(
    resource: Resource,
    booker: User,
    request: BookingRequest,
    company_id: int,
    status: BookingStatus,
    fee: Decimal,
    waived: Decimal,
) -> Booking:
    """The booking row both write paths insert (resource kind and institute copied)."""
    return Booking(
        resource_id=resource.id,
        resource_kind=ResourceKind(resource.kind),
        institute_id=resource.institute_id,
        company_id=company_id,
        user_id=booker.id,
        start_at=request.start,
        end_at=request.end,
        status=status,
        purpose=request.purpose,
        samples=request.samples,
        fee=fee,
        fee_waived=waived,
    )


def book_locked(
    resource: Resource,
    booker: User,
    request: BookingRequest,
    *,
    now: dt.datetime | None = None,
    group_id: int | None = None,  # booking groups (services/groups.py)
    pending: bool = False,  # booking groups: created pending whatever the rules say
    on_behalf_by: User | None = None,  # staff booking for the company
) -> Booking:
    """Check and insert one booking; the caller holds the lock of ``resource``
    (``lock_resources``). Several calls under one lock (a series, a group) see each
    other's rows, since each is flushed before the next check."""
    db.session.refresh(resource)  # re-read under the lock (status, calibration, ...)
    now = now or utcnow()
    rules = check_slot(resource, booker, request.start, request.end, now)
    company_id = booker.company_id
    assert company_id is not None  # _check_booker
    fee, waived = compute_fee(resource, request.start, request.end)
    status = BookingStatus.PENDING if rules.requires_approval else BookingStatus.APPROVED
    # -- booking policies: a company with too many no-shows waits for approval --
    held_reason: str | None = None
    threshold = rules.no_show_approval_threshold
    if status == BookingStatus.APPROVED and threshold is not None:
        count = no_show_count(company_id, resource.institute_id, now)
        if count >= threshold:
            status = BookingStatus.PENDING
            held_reason = f"no-show record {count} >= threshold {threshold}: needs approval"
    # -- end booking policies --
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
    return booking


# -- transitions --------------------------------------------------------------------------


# -- waitlist (issue 8) --
def _offer_to_waitlist(booking: Booking) -> None:
    """``booking`` (locked) just stopped holding time: offer it to the waitlist."""
    from labshare.booking.policies.waitlist import slot_freed

    slot_freed(booking)


# -- end waitlist --


def _authorize_staff(actor: User, booking: Booking) -> None:
    if not can_view_booking(actor, booking):
        raise NotFound(_l("No such booking."))
    if not is_staff_of(actor, booking.institute_id):
        raise NotAllowed(_l("Only staff of the booking's institute can do this."))


def _transition(
    booking: Booking,
    actor: User | None,
    to: BookingStatus,
    *,
    action: str,
    reason: str | None = None,
) -> None:
    """Move ``booking`` (already locked and re-read) to ``to``, audited."""
    current = BookingStatus(booking.status)
    if to not in TRANSITIONS[current]:
        raise InvalidTransition(
            _l(
                "A %(current)s booking cannot become %(to)s.",
                current=str(current),
                to=str(to),
            )
        )
    booking.status = to
    audit.record(action, booking, actor=actor, from_state=current, to_state=to, reason=reason)


def approve_booking(booking: Booking, actor: User) -> Booking:
    """pending -> approved, by staff of the booking's institute, before the booking
    starts (``windows``). Runs the creation checks again (``check_slot``, all but the
    lead time and the horizon), since the request may have waited."""
    if groups_hook.acts_on_group(booking):  # a group's members move together
        return groups_hook.group_transition(booking, "approve", actor)
    _authorize_staff(actor, booking)
    _lock_booking(booking)
    current = BookingStatus(booking.status)
    if current != BookingStatus.PENDING:
        raise InvalidTransition(
            _l("Only a pending booking can be approved; this one is %(s)s.", s=str(current))
        )
    resource = booking.resource
    db.session.refresh(resource)
    now = utcnow()
    tz = institute_zone(resource)
    check_window(Move.APPROVE, booking.start_at, booking.end_at, effective_rules(resource), now, tz)
    check_slot(resource, booking.user, booking.start_at, booking.end_at, now, existing=booking)
    _transition(booking, actor, BookingStatus.APPROVED, action="booking.approve")
    booking.decided_by_id = actor.id
    booking.decided_at = now
    db.session.flush()
    notify.booking_event(booking, "confirmed")
    return booking


def reject_booking(booking: Booking, actor: User, reason: str) -> Booking:
    """pending -> rejected, by staff of the booking's institute, with a reason."""
    if groups_hook.acts_on_group(booking):  # a group's members move together
        return groups_hook.group_transition(booking, "reject", actor, reason)
    _authorize_staff(actor, booking)
    reason_text = _text(reason, "reason", REASON_MAX, required=True)
    _lock_booking(booking)
    now = utcnow()
    resource = booking.resource
    # reject has no window today (staff can always clear an undecided request); asking
    # the table keeps that a decision made in one place
    check_window(
        Move.REJECT,
        booking.start_at,
        booking.end_at,
        effective_rules(resource),
        now,
        institute_zone(resource),
    )
    _transition(booking, actor, BookingStatus.REJECTED, action="booking.reject", reason=reason_text)
    booking.decided_by_id = actor.id
    booking.decided_at = now
    booking.decision_reason = reason_text
    db.session.flush()
    notify.booking_event(booking, "rejected")
    _offer_to_waitlist(booking)  # waitlist (issue 8)
    return booking


def cancel_booking(booking: Booking, actor: User, reason: str | None = None) -> Booking:
    """pending/approved -> cancelled, by the booking's company (before the
    cancellation deadline) or its institute's staff, before the booking starts
    (``windows``)."""
    if groups_hook.acts_on_group(booking):  # a group's members move together
        return groups_hook.group_transition(booking, "cancel", actor, reason)
    if not can_view_booking(actor, booking):
        raise NotFound(_l("No such booking."))
    staff = is_staff_of(actor, booking.institute_id)
    if not staff and not is_member_of_company(actor, booking.company_id):
        raise NotAllowed(_l("Only the booking's company or its institute's staff can cancel it."))
    reason_text = _text(reason, "reason", REASON_MAX, required=False)
    _lock_booking(booking)
    current = BookingStatus(booking.status)
    if BookingStatus.CANCELLED not in TRANSITIONS[current]:
        raise InvalidTransition(
            _l(
                "Only a pending or approved booking can be cancelled; this one is %(s)s.",
                s=str(current),
            )
        )
    now = utcnow()
    rules = effective_rules(booking.resource)
    check_window(
        Move.CANCEL_BY_STAFF if staff else Move.CANCEL_BY_COMPANY,
        booking.start_at,
        booking.end_at,
        rules,
        now,
        institute_zone(booking.resource),
    )
    if not staff:
        deadline = booking.start_at - dt.timedelta(hours=rules.cancel_deadline_hours)
        if now > deadline:
            raise RuleViolation(
                _l(
                    "Bookings can be cancelled online until %(n)d hours before they start; "
                    "please contact the institute.",
                    n=rules.cancel_deadline_hours,
                ),
                rule="cancellation_deadline",
            )
    _transition(
        booking, actor, BookingStatus.CANCELLED, action="booking.cancel", reason=reason_text
    )
    booking.cancelled_by_id = actor.id
    booking.cancelled_at = now
    # -- booking policies: the company's late cancellation counts as a no-show --
    if not staff:
        late_hours = rules.late_cancel_hours
        if late_hours > 0 and now > booking.start_at - dt.timedelta(hours=late_hours):
            booking.late_cancellation = True
            audit.record(
                "booking.late_cancellation",
                booking,
                actor=actor,
                reason=reason_text or f"cancelled less than {late_hours} hours before the start",
                data={"late_cancel_hours": late_hours},
            )
    # -- end booking policies --
    if reason_text is not None:
        booking.decision_reason = reason_text
    db.session.flush()
    notify.booking_event(booking, "cancelled")
    _offer_to_waitlist(booking)  # waitlist (issue 8)
    return booking


def record_usage(
    booking: Booking,
    actor: User,
    *,
    checked_in_at: dt.datetime | None,
    checked_out_at: dt.datetime,
    service_type: ServiceType | str,
    samples_count: int,
    problem_solved: bool,
    notes: str | None = None,
) -> UsageRecord:
    """approved -> completed, recording what happened; by the institute's staff, once
    the booking has begun (``windows``); neither time may lie in the future.
    ``checked_in_at=None``: the booking's check-in time (required without one)."""
    _authorize_staff(actor, booking)
    if checked_in_at is None:  # check-in (issue 8): the booking's own, if someone checked in
        if booking.checked_in_at is None:
            raise ValidationFailed(_l("This field is required."), field="checked_in_at")
        checked_in_at = booking.checked_in_at
    checked_in = _aware(checked_in_at, "checked_in_at")
    checked_out = _aware(checked_out_at, "checked_out_at")
    if checked_out <= checked_in:
        raise ValidationFailed(
            _l("The check-out time must be after the check-in time."), field="checked_out_at"
        )
    try:
        service = ServiceType(service_type)
    except ValueError:
        raise ValidationFailed(
            _l(
                "Unknown service type; use one of: %(types)s.",
                types=", ".join(t.value for t in ServiceType),
            ),
            field="service_type",
        ) from None
    if isinstance(samples_count, bool) or not isinstance(samples_count, int) or samples_count < 0:
        raise ValidationFailed(
            _l("The number of samples must be a whole number, 0 or more."), field="samples_count"
        )
    if not isinstance(problem_solved, bool):
        raise ValidationFailed(_l("Answer yes or no."), field="problem_solved")
    notes_text = _text(notes, "notes", NOTES_MAX, required=False)

    _lock_booking(booking)
    current = BookingStatus(booking.status)
    if BookingStatus.COMPLETED not in TRANSITIONS[current]:
        raise InvalidTransition(
            _l("A %(current)s booking cannot become %(to)s.", current=str(current), to="completed")
        )
    now = utcnow()
    resource = booking.resource
    tz = institute_zone(resource)
    check_window(
        Move.RECORD_USAGE, booking.start_at, booking.end_at, effective_rules(resource), now, tz
    )
    for field, value in (("checked_in_at", checked_in), ("checked_out_at", checked_out)):
        if value > now:
            raise ValidationFailed(
                _l("This time is in the future; record what has happened."), field=field
            )
    _transition(booking, actor, BookingStatus.COMPLETED, action="booking.complete")
    usage = UsageRecord(
        booking_id=booking.id,
        checked_in_at=checked_in,
        checked_out_at=checked_out,
        service_type=service,
        samples_count=samples_count,
        problem_solved=problem_solved,
        notes=notes_text,
        recorded_by_id=actor.id,
    )
    db.session.add(usage)
    db.session.flush()
    notify.booking_event(booking, "completed")
    if booking.end_at > now:  # completed early: the rest of its time goes to the line
        _offer_to_waitlist(booking)
    return usage


# -- no-show (the one transition; check-in, issue 8) ---------------------------------------


def mark_no_show(
    booking: Booking,
    actor: User | None = None,
    *,
    quiet: bool = False,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """approved -> no_show: nobody came. Audited ("booking.no_show") and notified
    ("no_show") the same way whoever does it.

    Staff (``actor``, or the operator with ``actor=None``): authorised, under the
    booking's lock; a booking that is not approved, or was checked in, raises
    InvalidTransition.

    ``quiet=True`` (the scheduler's jobs): no authorisation, no lock of its own; a
    conditional ``UPDATE ... WHERE status = 'approved' AND checked_in_at IS NULL``
    decides, so a second scheduler (or a rerun, or staff acting at the same moment)
    changes nothing and writes nothing: False then.

    While the booking's end is still ahead, the time it held is offered to the
    waitlist (``waitlist.slot_freed``); in quiet mode the caller holds the
    resource's lock then (``lock_resources``). Returns True when it changed the row.
    """
    from sqlalchemy import exists, update

    from labshare.booking.policies import waitlist  # imports this module

    if not quiet:
        if actor is not None:
            _authorize_staff(actor, booking)
        reason = _text(reason, "reason", REASON_MAX, required=False)
        _lock_booking(booking)
        current = BookingStatus(booking.status)
        if BookingStatus.NO_SHOW not in TRANSITIONS[current]:
            raise InvalidTransition(
                _l(
                    "A %(current)s booking cannot become %(to)s.",
                    current=str(current),
                    to=str(BookingStatus.NO_SHOW),
                )
            )
        if booking.checked_in_at is not None:
            raise InvalidTransition(_l("This booking was checked in, so it is not a no-show."))
    now = now or utcnow()
    if not quiet:
        check_window(
            Move.NO_SHOW,
            booking.start_at,
            booking.end_at,
            effective_rules(booking.resource),
            now,
            institute_zone(booking.resource),
        )
    # The definition of a no-show, whoever asks: approved, begun (the window opens
    # at the start), nobody checked in, no usage recorded.
    result = db.session.execute(
        update(Booking)
        .where(
            Booking.id == booking.id,
            Booking.status == BookingStatus.APPROVED,
            Booking.checked_in_at.is_(None),
            Booking.start_at <= now,
            ~exists().where(UsageRecord.booking_id == Booking.id),
        )
        .values(status=BookingStatus.NO_SHOW, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(booking)
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return False
    audit.record(
        "booking.no_show",
        booking,
        actor=actor,
        from_state=BookingStatus.APPROVED,
        to_state=BookingStatus.NO_SHOW,
        reason=reason,
    )
    notify.booking_event(booking, "no_show")
    if booking.end_at > now:
        waitlist.slot_freed(booking)
    db.session.flush()
    return True


# -- end no-show --
