"""The rules of one slot: what a request must look like, and every rule and the
conflict check a booking must pass under the resource's write lock
(:func:`check_slot`). The policies built on the engine (quotas per period, the
waitlist's offers) add their checks through :mod:`labshare.booking.hooks`.
Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from labshare.accounts.companies import booking_refusal
from labshare.booking import workdays
from labshare.booking.availability import (
    capacity_of,
    closure_spans,
    holding_spans,
    saturated,
)
from labshare.booking.hooks import Slot, Stage, slot_policies
from labshare.booking.permissions import is_member_of_company
from labshare.booking.rules import (
    MAX_BOOKING_SPAN,
    Rules,
    calibration_cutoff,
    effective_rules,
    institute_zone,
    load_opening_periods,
    on_grid,
)
from labshare.database import is_sqlite
from labshare.errors import (
    NotAllowed,
    RuleViolation,
    SlotTaken,
    ValidationFailed,
)
from labshare.extensions import db
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    Qualification,
    Resource,
    ResourceStatus,
    Role,
    User,
)
from labshare.timeutil import zone

PURPOSE_MAX = 500
SAMPLES_MAX = 5000
REASON_MAX = 500
NOTES_MAX = 5000


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
    # a booking about to be written: a holiday added meanwhile waits for it (PostgreSQL)
    days = workdays.days_of_resource(resource, lock=not is_sqlite())
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
    ``around``: those holding bookings, already read (booking_path.py)."""
    capacity = capacity_of(resource)
    if capacity <= 1:
        if around is not None:  # built only when sent: building it costs more than judging
            rows = list(around)
        else:
            buffer = dt.timedelta(minutes=max(buffer_minutes, 0))
            stmt = select(Booking.start_at, Booking.end_at).where(
                Booking.resource_id == resource.id,
                Booking.start_at < end + buffer,
                Booking.end_at > start - buffer,
                Booking.status.in_(HOLDING_STATUSES),
            )
            if exclude_id is not None:
                stmt = stmt.where(Booking.id != exclude_id)
            rows = [(s, e) for s, e in db.session.execute(stmt)]
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


def check_slot(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    *,
    existing: Booking | None = None,
    judge_lead: bool | None = None,
) -> Rules:
    """Every rule and the conflict check for one slot; the caller holds the lock of
    ``resource`` (``lock_resources``) and has re-read it. Returns the rules used.

    ``existing``: the request being approved. Everything is judged again as at
    creation (the rules, closures, calibration, qualification or quotas may have
    changed meanwhile), except the lead time and the horizon, which were judged
    when the request was made; the request itself does not count against it.
    ``judge_lead=True``: judge them too (``existing`` moved to a new time)."""
    return judge_slot(
        resource, booker, start, end, now, existing=existing, judge_lead=judge_lead
    ).rules


def judge_slot(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    *,
    existing: Booking | None = None,
    judge_lead: bool | None = None,
) -> Slot:
    """:func:`check_slot`, returning the slot judged (rules, zone, company)."""
    policies = slot_policies()
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
    lead_and_horizon = existing is None if judge_lead is None else judge_lead
    _check_time_rules(rules, tz, start, end, now, lead_and_horizon=lead_and_horizon)
    _check_opening_hours(resource, tz, start, end)
    _check_closure_and_calibration(resource, tz, start, end)
    _check_quota(resource, company_id, rules, now, exclude_id)
    slot = Slot(resource, booker, company_id, start, end, now, tz, rules, exclude_id)
    for policy in policies:  # e.g. the quotas per period
        if policy.stage is Stage.LIMITS:
            policy.check(slot)
    _check_free(resource, start, end, exclude_id, buffer_minutes=rules.buffer_minutes)
    for policy in policies:  # e.g. an open waitlist offer holds its slot for the offeree
        if policy.stage is Stage.CLAIMS:
            policy.check(slot)
    return slot
