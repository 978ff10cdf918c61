"""Recurring bookings: a series expands (python-dateutil's ``rrule``) into
occurrences, each booked as an ordinary ``Booking`` through the one engine path
(``lock_resources`` once, then ``book_locked`` per occurrence).

Occurrences are computed as wall-clock times in the institute's zone, so a
09:00-11:00 slot stays 09:00-11:00 local across a DST switch. Expansion stops at
the resource's booking horizon and is capped at ``MAX_OCCURRENCES``.

Preview (``preview_series``) rehearses the creation under the same lock in a
savepoint that is always rolled back: each occurrence is booked through
``book_locked`` and flushed before the next is checked, exactly as on creation,
so the preview marks what creation would refuse (conflicts, every rule, the
company's active bookings and quotas per period counting the earlier
occurrences), and writes nothing.

Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, rrule
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, select

from labshare.booking.bookings import (
    REASON_MAX,
    BookingRequest,
    approve_booking,
    book_locked,
    cancel_booking,
    lock_resources,
    reject_booking,
    validate_request,
)
from labshare.booking.permissions import (
    can_view_tenant,
    is_member_of_company,
    is_staff_of,
    visible_series,
)
from labshare.booking.policies.groups import bundle_of
from labshare.booking.rules import effective_rules, institute_zone, local_instant
from labshare.errors import (
    DomainError,
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
    BookingSeries,
    BookingStatus,
    Resource,
    User,
)
from labshare.ops import audit
from labshare.timeutil import utcnow, zone

#: No series has more occurrences than this (after the horizon cut).
MAX_OCCURRENCES = 100
MAX_INTERVAL = 99
FREQUENCIES = {"daily": DAILY, "weekly": WEEKLY, "monthly": MONTHLY}


# -- the recurrence rule ------------------------------------------------------------------


@dataclass(frozen=True)
class RecurrenceSpec:
    """A checked recurrence rule. ``weekdays``: Monday = 0 (weekly only; empty means
    the first occurrence's weekday). Exactly one of ``until`` (a local date,
    inclusive) and ``count``."""

    freq: str
    interval: int = 1
    weekdays: tuple[int, ...] = ()
    until: dt.date | None = None
    count: int | None = None


def validate_spec(
    freq: Any,
    *,
    interval: Any = 1,
    weekdays: Any = None,
    until: Any = None,
    count: Any = None,
) -> RecurrenceSpec:
    """Check a rule as typed; ValidationFailed names the field."""
    if freq not in FREQUENCIES:
        raise ValidationFailed(
            _l("Choose how often: daily, weekly or monthly."), field="recurrence.freq"
        )
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int)
        or not (1 <= interval <= MAX_INTERVAL)
    ):
        raise ValidationFailed(
            _l("The interval must be a whole number from 1 to %(n)d.", n=MAX_INTERVAL),
            field="recurrence.interval",
        )
    days: tuple[int, ...] = ()
    if weekdays:
        if freq != "weekly":
            raise ValidationFailed(
                _l("Weekdays can only be chosen for a weekly series."),
                field="recurrence.weekdays",
            )
        if not isinstance(weekdays, (list, tuple)) or any(
            isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6 for d in weekdays
        ):
            raise ValidationFailed(
                _l("Weekdays are numbers from 0 (Monday) to 6 (Sunday)."),
                field="recurrence.weekdays",
            )
        days = tuple(sorted(set(weekdays)))
    if (until is None) == (count is None):
        raise ValidationFailed(
            _l("Give either an end date or a number of occurrences, not both."),
            field="recurrence.until" if until is None else "recurrence.count",
        )
    if count is not None and (
        isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_OCCURRENCES
    ):
        raise ValidationFailed(
            _l("The number of occurrences must be from 1 to %(n)d.", n=MAX_OCCURRENCES),
            field="recurrence.count",
        )
    if until is not None and (not isinstance(until, dt.date) or isinstance(until, dt.datetime)):
        raise ValidationFailed(_l("The end date must be a date."), field="recurrence.until")
    return RecurrenceSpec(freq, interval, days, until, count)


@dataclass(frozen=True)
class Expansion:
    occurrences: list[tuple[dt.datetime, dt.datetime]]
    #: Some occurrences of the rule lay beyond the booking horizon and were left out.
    cut_at_horizon: bool


def expand(
    spec: RecurrenceSpec,
    start: dt.datetime,
    end: dt.datetime,
    tz: str,
    horizon: dt.datetime,
) -> Expansion:
    """The occurrences of ``spec`` whose first one is [start, end) (aware), as aware
    UTC spans, computed in wall-clock time of ``tz``; those starting after
    ``horizon`` are cut. ValidationFailed when there are none, too many, or they
    overlap one another."""
    z = zone(tz)
    local_start = start.astimezone(z).replace(tzinfo=None)
    local_end = end.astimezone(z).replace(tzinfo=None)
    wall = local_end - local_start
    if spec.until is not None and spec.until < local_start.date():
        raise ValidationFailed(
            _l("The end date must not be before the first occurrence."),
            field="recurrence.until",
        )
    kwargs: dict[str, Any] = {"dtstart": local_start, "interval": spec.interval}
    if spec.freq == "weekly":
        kwargs["byweekday"] = spec.weekdays or (local_start.weekday(),)
    if spec.count is not None:
        kwargs["count"] = spec.count
    else:
        assert spec.until is not None
        kwargs["until"] = dt.datetime.combine(spec.until, dt.time(23, 59, 59))
    occurrences: list[tuple[dt.datetime, dt.datetime]] = []
    cut = False
    for naive in rrule(FREQUENCIES[spec.freq], **kwargs):
        occ_start = local_instant(naive.date(), naive.time(), tz)
        if occ_start > horizon:
            cut = True
            break
        if len(occurrences) >= MAX_OCCURRENCES:
            raise ValidationFailed(
                _l(
                    "A series may have at most %(n)d occurrences; choose an earlier end date.",
                    n=MAX_OCCURRENCES,
                ),
                field="recurrence.until",
            )
        naive_end = naive + wall
        occ_end = local_instant(naive_end.date(), naive_end.time(), tz)
        if occurrences and occ_start < occurrences[-1][1]:
            raise ValidationFailed(
                _l("The occurrences would overlap one another; shorten the booking."),
                field="end",
            )
        occurrences.append((occ_start, occ_end))
    if not occurrences:
        if cut:
            raise RuleViolation(
                _l("The series starts beyond the booking horizon."),
                rule="horizon",
                field="start",
            )
        raise ValidationFailed(
            _l("No occurrence falls on the chosen days before the end date."),
            field="recurrence.until",
        )
    return Expansion(occurrences, cut)


# -- preview ------------------------------------------------------------------------------


@dataclass
class Occurrence:
    """One occurrence and its fate: ok, or why not (``code`` conflict or
    rule_violation, ``rule``, ``message``); ``booking_id`` once booked."""

    index: int
    start: dt.datetime
    end: dt.datetime
    ok: bool = True
    code: str | None = None
    rule: str | None = None
    message: str | None = None
    booking_id: int | None = None

    def refuse(self, exc: DomainError) -> None:
        self.ok = False
        self.code = exc.code
        self.rule = exc.rule
        self.message = str(exc.message)


@dataclass
class SeriesPlan:
    spec: RecurrenceSpec
    timezone: str
    occurrences: list[Occurrence]
    cut_at_horizon: bool
    series: BookingSeries | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[Occurrence]:
        return [o for o in self.occurrences if not o.ok]


def _plan(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    spec: RecurrenceSpec,
    purpose: str,
    samples: str | None,
    now: dt.datetime,
) -> tuple[BookingRequest, SeriesPlan]:
    request = validate_request(booker, start, end, purpose=purpose, samples=samples)
    if bundle_of(resource):
        # Booking it alone books its "booked together" bundle as a group; a series
        # books one resource per occurrence, so it would break that promise.
        raise ValidationFailed(
            _l(
                "This instrument is booked together with others and cannot be booked "
                "as a series; book each occurrence on its own."
            ),
            field="resource_id",
        )
    rules = effective_rules(resource)
    tz = institute_zone(resource)
    horizon = now + dt.timedelta(days=rules.horizon_days)
    expansion = expand(spec, request.start, request.end, tz, horizon)
    occurrences = [Occurrence(i, s, e) for i, (s, e) in enumerate(expansion.occurrences)]
    return request, SeriesPlan(spec, tz, occurrences, expansion.cut_at_horizon)


def preview_series(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    spec: RecurrenceSpec,
    *,
    purpose: str,
    samples: str | None = None,
    now: dt.datetime | None = None,
) -> SeriesPlan:
    """Every occurrence, ok or the rule it breaks / the conflict: exactly what
    ``create_series`` would do now. It rehearses the creation under the same lock
    in a savepoint that is always rolled back, so later occurrences see the earlier
    ones (quotas per period, the company's active bookings, the buffer); nothing is
    kept, no message is queued."""
    now = now or utcnow()
    request, plan = _plan(resource, booker, start, end, spec, purpose, samples, now)
    lock_resources([resource.id])
    db.session.refresh(resource)
    rehearsal = db.session.begin_nested()
    try:
        with notify.collect_booking_events():  # collected, then dropped
            for occ in plan.occurrences:
                one = BookingRequest(occ.start, occ.end, request.purpose, request.samples)
                try:
                    with db.session.begin_nested():
                        book_locked(resource, booker, one, now=now)
                except (RuleViolation, SlotTaken) as exc:
                    occ.refuse(exc)
    finally:
        rehearsal.rollback()
    return plan


# -- creation -----------------------------------------------------------------------------


def _occurrence_json(occ: Occurrence) -> dict[str, Any]:
    return {
        "index": occ.index,
        "start": occ.start.isoformat(),
        "end": occ.end.isoformat(),
        "ok": occ.ok,
        "code": occ.code,
        "rule": occ.rule,
        "message": occ.message,
        "booking_id": occ.booking_id,
    }


def _refusal(failed: Sequence[Occurrence], total: int, *, nothing_booked: bool) -> DomainError:
    """The error for a series that cannot be booked: 409 conflict when every failure
    is a conflict, else 422 rule_violation naming the first rule broken. The
    failing occurrences are listed under ``occurrences`` (additive)."""
    details = {"occurrences": [_occurrence_json(o) for o in failed]}
    if nothing_booked:
        message = _l(
            "%(n)d of %(total)d occurrences cannot be booked; nothing was booked.",
            n=len(failed),
            total=total,
        )
    else:
        message = _l("None of the occurrences can be booked.")
    rule_failures = [o for o in failed if o.code != SlotTaken.code]
    if not rule_failures:
        return SlotTaken(message, details=details)
    return RuleViolation(message, rule=rule_failures[0].rule, field="recurrence", details=details)


def create_series(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    spec: RecurrenceSpec,
    *,
    purpose: str,
    samples: str | None = None,
    skip_conflicting: bool,
    now: dt.datetime | None = None,
) -> SeriesPlan:
    """Book every occurrence, under one lock. ``skip_conflicting`` false: all or
    nothing (any failure writes nothing and raises, listing the failures); true:
    the rest are booked, and it is an error only when none can be. Messages: one
    per series event and recipient (``notify.series_event``), not one per
    occurrence."""
    now = now or utcnow()
    request, plan = _plan(resource, booker, start, end, spec, purpose, samples, now)
    company_id = booker.company_id
    assert company_id is not None
    lock_resources([resource.id])
    db.session.refresh(resource)
    with db.session.begin_nested():  # a refusal below rolls back the series row too
        series = BookingSeries(
            user_id=booker.id,
            company_id=company_id,
            resource_id=resource.id,
            institute_id=resource.institute_id,
            freq=spec.freq,
            interval_n=spec.interval,
            weekdays=",".join(str(d) for d in spec.weekdays) or None,
            until_date=spec.until,
            count_n=spec.count,
            start_at=request.start,
            end_at=request.end,
            timezone=plan.timezone,
            purpose=request.purpose,
            samples=request.samples,
            created_at=now,
        )
        db.session.add(series)
        db.session.flush()
        with notify.collect_booking_events() as events:
            for occ in plan.occurrences:
                one = BookingRequest(occ.start, occ.end, request.purpose, request.samples)
                try:
                    with db.session.begin_nested():
                        booking = book_locked(resource, booker, one, now=now)
                        booking.series_id = series.id
                        db.session.flush()
                except (RuleViolation, SlotTaken) as exc:
                    occ.refuse(exc)
                    continue
                occ.booking_id = booking.id
        failed = plan.failed
        if failed and (not skip_conflicting or len(failed) == len(plan.occurrences)):
            raise _refusal(failed, len(plan.occurrences), nothing_booked=not skip_conflicting)
        audit.record(
            "series.create",
            series,
            actor=booker,
            data={
                "booked": [o.booking_id for o in plan.occurrences if o.ok],
                "skipped": [o.index for o in failed],
                "cut_at_horizon": plan.cut_at_horizon,
            },
        )
    notify.series_event(series, events)
    plan.series = series
    return plan


# -- reading and tenancy ------------------------------------------------------------------


def can_view_series(user: User, series: BookingSeries) -> bool:
    return can_view_tenant(user, institute_id=series.institute_id, company_id=series.company_id)


def get_series(series_id: int, user: User) -> BookingSeries:
    """The series, or NotFound when it does not exist or ``user`` may not see it."""
    series = db.session.get(BookingSeries, series_id)
    if series is None or not can_view_series(user, series):
        raise NotFound(_l("No such series."))
    return series


def series_bookings(series: BookingSeries) -> list[Booking]:
    return list(
        db.session.scalars(
            select(Booking)
            .where(Booking.series_id == series.id)
            .order_by(Booking.start_at, Booking.id)
        ).unique()
    )


@dataclass(frozen=True)
class SeriesSummary:
    """A series with its number of occurrences and how many are still active
    (pending or approved, and not over yet)."""

    series: BookingSeries
    occurrences: int
    active: int


def series_overview(user: User, now: dt.datetime, *, limit: int) -> tuple[list[SeriesSummary], int]:
    """The series ``user`` may see (an SME member: their company's), those with
    active occurrences first, then newest first; at most ``limit``, and how many
    there are in all."""
    scope = visible_series(user)
    total = int(db.session.scalar(select(func.count(BookingSeries.id)).where(scope)) or 0)
    if total == 0:
        return [], 0
    of_series = Booking.series_id == BookingSeries.id
    occurrences = (
        select(func.count(Booking.id)).where(of_series).correlate(BookingSeries).scalar_subquery()
    )
    active = (
        select(
            func.coalesce(
                func.sum(
                    case(
                        (Booking.status.in_(HOLDING_STATUSES) & (Booking.end_at > now), 1),
                        else_=0,
                    )
                ),
                0,
            )
        )
        .where(of_series)
        .correlate(BookingSeries)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(BookingSeries, occurrences.label("occurrences"), active.label("active"))
        .where(scope)
        .order_by(
            case((active > 0, 0), else_=1),
            BookingSeries.created_at.desc(),
            BookingSeries.id.desc(),
        )
        .limit(limit)
    ).unique()
    return [
        SeriesSummary(series=series, occurrences=int(n or 0), active=int(a or 0))
        for series, n, a in rows
    ], total


# -- whole-series transitions -------------------------------------------------------------


@dataclass
class SeriesOutcome:
    """What a whole-series transition did: ``changed`` bookings, and ``skipped``
    ones (in a state that allowed it, refused by a rule: booking and error).
    Bookings in other states are left alone."""

    series: BookingSeries
    changed: list[Booking]
    skipped: list[tuple[Booking, DomainError]]


def _each(
    series: BookingSeries,
    actor: User,
    action: str,
    eligible: frozenset[BookingStatus],
    step: Callable[[Booking], object],
    reason: str | None = None,
) -> SeriesOutcome:
    """Apply ``step`` to every occurrence in an ``eligible`` state, each in a
    savepoint (a refused one leaves the transaction usable), under the resource's
    lock taken once; one message per event. Refuses when nothing changed."""
    lock_resources([series.resource_id])
    changed: list[Booking] = []
    skipped: list[tuple[Booking, DomainError]] = []
    with notify.collect_booking_events() as events:
        for booking in series_bookings(series):
            if BookingStatus(booking.status) not in eligible:
                continue
            try:
                with db.session.begin_nested():
                    step(booking)
            except (RuleViolation, SlotTaken, InvalidTransition) as exc:
                db.session.refresh(booking)
                skipped.append((booking, exc))
                continue
            changed.append(booking)
    if not changed:
        if skipped:
            first = skipped[0][1]
            first.details = {
                **first.details,
                "occurrences": [
                    {"booking_id": b.id, "code": e.code, "rule": e.rule, "message": str(e.message)}
                    for b, e in skipped
                ],
            }
            raise first
        raise InvalidTransition(_l("No occurrence of this series is in a state that allows this."))
    audit.record(
        action,
        series,
        actor=actor,
        reason=reason,
        data={"changed": [b.id for b in changed], "skipped": [b.id for b, _e in skipped]},
    )
    notify.series_event(series, events)
    return SeriesOutcome(series, changed, skipped)


def _authorize_staff(actor: User, series: BookingSeries) -> None:
    if not can_view_series(actor, series):
        raise NotFound(_l("No such series."))
    if not is_staff_of(actor, series.institute_id):
        raise NotAllowed(_l("Only staff of the booking's institute can do this."))


def approve_series(series: BookingSeries, actor: User) -> SeriesOutcome:
    """Approve every pending occurrence (each re-checked as a single approval is;
    those refused stay pending and are reported)."""
    _authorize_staff(actor, series)
    return _each(
        series,
        actor,
        "series.approve",
        frozenset({BookingStatus.PENDING}),
        lambda b: approve_booking(b, actor),
    )


def reject_series(series: BookingSeries, actor: User, reason: str) -> SeriesOutcome:
    """Reject every pending occurrence, with one reason."""
    _authorize_staff(actor, series)
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed(_l("This field is required."), field="reason")
    if len(text) > REASON_MAX:
        raise ValidationFailed(
            _l("At most %(n)d characters are allowed.", n=REASON_MAX), field="reason"
        )
    return _each(
        series,
        actor,
        "series.reject",
        frozenset({BookingStatus.PENDING}),
        lambda b: reject_booking(b, actor, text),
        reason=text,
    )


def cancel_series(series: BookingSeries, actor: User, reason: str | None = None) -> SeriesOutcome:
    """Cancel every pending or approved occurrence: by the series' company (each
    occurrence before its own cancellation deadline; later ones are left alone and
    reported) or the institute's staff."""
    if not can_view_series(actor, series):
        raise NotFound(_l("No such series."))
    if not (
        is_staff_of(actor, series.institute_id) or is_member_of_company(actor, series.company_id)
    ):
        raise NotAllowed(_l("Only the booking's company or its institute's staff can cancel it."))
    text = (reason or "").strip() or None
    if text is not None and len(text) > REASON_MAX:
        raise ValidationFailed(
            _l("At most %(n)d characters are allowed.", n=REASON_MAX), field="reason"
        )
    return _each(
        series,
        actor,
        "series.cancel",
        frozenset({BookingStatus.PENDING, BookingStatus.APPROVED}),
        lambda b: cancel_booking(b, actor, text),
        reason=text,
    )
