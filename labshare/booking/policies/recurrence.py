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

The recurrence rule is in :mod:`labshare.booking.policies.recurrence_rule`, a
series once made (reading, overview, whole-series moves) in
:mod:`labshare.booking.policies.series`; their names are importable from here too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l

from labshare.booking.bookings import (
    BookingRequest,
    book_locked,
    lock_resources,
    validate_request,
)
from labshare.booking.policies.groups import bundle_of
from labshare.booking.policies.recurrence_rule import (
    FREQUENCIES,
    MAX_INTERVAL,
    MAX_OCCURRENCES,
    Expansion,
    RecurrenceSpec,
    expand,
    validate_spec,
)
from labshare.booking.policies.series import (
    SeriesOutcome,
    SeriesSummary,
    approve_series,
    can_view_series,
    cancel_series,
    get_series,
    reject_series,
    series_bookings,
    series_overview,
)
from labshare.booking.rules import effective_rules, institute_zone
from labshare.errors import (
    DomainError,
    RuleViolation,
    SlotTaken,
    ValidationFailed,
)
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    BookingSeries,
    Resource,
    User,
)
from labshare.ops import audit
from labshare.timeutil import utcnow

__all__ = [
    "FREQUENCIES",
    "MAX_INTERVAL",
    "MAX_OCCURRENCES",
    "Expansion",
    "Occurrence",
    "RecurrenceSpec",
    "SeriesOutcome",
    "SeriesPlan",
    "SeriesSummary",
    "approve_series",
    "can_view_series",
    "cancel_series",
    "create_series",
    "expand",
    "get_series",
    "preview_series",
    "reject_series",
    "series_bookings",
    "series_overview",
    "validate_spec",
]


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
    on_behalf_by: User | None = None,
) -> SeriesPlan:
    """Book every occurrence, under one lock. ``skip_conflicting`` false: all or
    nothing (any failure writes nothing and raises, listing the failures); true:
    the rest are booked, and it is an error only when none can be. Messages: one
    per series event and recipient (``notify.series_event``), not one per
    occurrence. ``on_behalf_by``: the staff member booking for ``booker``'s company
    (checked by ``policies/on_behalf``), recorded on every occurrence and as the
    actor of the series' audit row."""
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
                        booking = book_locked(
                            resource, booker, one, now=now, on_behalf_by=on_behalf_by
                        )
                        booking.series_id = series.id
                        db.session.flush()
                except (RuleViolation, SlotTaken) as exc:
                    occ.refuse(exc)
                    continue
                occ.booking_id = booking.id
        failed = plan.failed
        if failed and (not skip_conflicting or len(failed) == len(plan.occurrences)):
            raise _refusal(failed, len(plan.occurrences), nothing_booked=not skip_conflicting)
        on_behalf = {"on_behalf_of": company_id, "booker": booker.id} if on_behalf_by else {}
        audit.record(
            "series.create",
            series,
            actor=on_behalf_by or booker,
            data={
                "booked": [o.booking_id for o in plan.occurrences if o.ok],
                "skipped": [o.index for o in failed],
                "cut_at_horizon": plan.cut_at_horizon,
                **on_behalf,
            },
        )
    notify.series_event(series, events)
    plan.series = series
    return plan
