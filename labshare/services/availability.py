"""Busy and free time of one resource over a window of at most 31 days.

Three indexed queries (bookings, closures, opening periods), no lazy loads: the
window is painted reason by reason in order of precedence, so every instant has
at most one reason and the busy list is sorted and non-overlapping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import HOLDING_STATUSES, Booking, Closure, Lab, Resource, ResourceStatus
from labshare.services.rules import (
    MAX_BOOKING_SPAN,
    Span,
    calibration_cutoff,
    clip,
    institute_zone,
    load_opening_periods,
    merge,
    opening_spans,
    scope_ids,
    subtract,
)

MAX_WINDOW = dt.timedelta(days=31)

#: Reasons in order of precedence: where several apply, the first one is shown.
REASONS = ("unavailable", "calibration_expired", "closure", "closed", "booked")


@dataclass(frozen=True)
class Interval:
    start: dt.datetime
    end: dt.datetime
    reason: str | None = None


@dataclass(frozen=True)
class Availability:
    resource_id: int
    timezone: str
    busy: list[Interval]
    free: list[Interval]


def _check_window(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    for name, value in (("from", start), ("to", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationFailed(_l("The time needs a UTC offset."), field=name)
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    if end <= start:
        raise ValidationFailed(_l("The end of the window must be after its start."), field="to")
    if end - start > MAX_WINDOW:
        raise ValidationFailed(_l("The window may span at most 31 days."), field="to")
    return start, end


def holding_spans(
    resource_id: int, start: dt.datetime, end: dt.datetime, *, exclude_id: int | None = None
) -> list[Span]:
    """(start, end) of the time-holding bookings that overlap [start, end). One
    range scan of ix_booking_resource_start."""
    stmt = select(Booking.start_at, Booking.end_at).where(
        Booking.resource_id == resource_id,
        Booking.start_at < end,
        Booking.start_at > start - MAX_BOOKING_SPAN,
        Booking.end_at > start,
        Booking.status.in_(HOLDING_STATUSES),
    )
    if exclude_id is not None:
        stmt = stmt.where(Booking.id != exclude_id)
    return [(s, e) for s, e in db.session.execute(stmt)]


def closure_spans(resource: Resource, start: dt.datetime, end: dt.datetime) -> list[Span]:
    rows = db.session.execute(
        select(Closure.start_at, Closure.end_at).where(
            Closure.resource_id.in_(scope_ids(resource)),
            Closure.start_at < end,
            Closure.end_at > start,
        )
    )
    return [(s, e) for s, e in rows]


def saturated(spans: Sequence[Span], capacity: int) -> list[Span]:
    """Where at least ``capacity`` of ``spans`` overlap (sweep line, half-open)."""
    if capacity <= 1:
        return merge(spans)
    events: list[tuple[dt.datetime, int]] = []
    for s, e in spans:
        events.append((s, 1))
        events.append((e, -1))
    events.sort()  # at equal instants -1 sorts before +1: back-to-back does not stack
    out: list[Span] = []
    count = 0
    opened: dt.datetime | None = None
    for t, delta in events:
        count += delta
        if count >= capacity and opened is None:
            opened = t
        elif count < capacity and opened is not None:
            if t > opened:
                out.append((opened, t))
            opened = None
    return merge(out)


def capacity_of(resource: Resource) -> int:
    return resource.capacity if isinstance(resource, Lab) else 1


def availability(resource: Resource, start: dt.datetime, end: dt.datetime) -> Availability:
    start, end = _check_window(start, end)
    tz = institute_zone(resource)
    raw: dict[str, list[Span]] = {}
    if resource.status != ResourceStatus.AVAILABLE:
        raw["unavailable"] = [(start, end)]
    else:
        cutoff = calibration_cutoff(resource, tz)
        if cutoff is not None and cutoff < end:
            raw["calibration_expired"] = [(max(start, cutoff), end)]
        raw["closure"] = closure_spans(resource, start, end)
        opening = opening_spans(load_opening_periods(resource), tz, start, end)
        raw["closed"] = subtract([(start, end)], opening)
        raw["booked"] = saturated(holding_spans(resource.id, start, end), capacity_of(resource))

    busy: list[Interval] = []
    covered: list[Span] = []
    for reason in REASONS:
        spans = merge(clip(raw.get(reason, ()), start, end))
        if not spans:
            continue
        for s, e in subtract(spans, covered):
            busy.append(Interval(s, e, reason))
        covered = merge([*covered, *spans])
    busy.sort(key=lambda i: i.start)
    free = [Interval(s, e) for s, e in subtract([(start, end)], covered)]
    return Availability(resource_id=resource.id, timezone=tz, busy=busy, free=free)
