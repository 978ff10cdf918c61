"""Busy and free time of one resource over a window of at most 31 days.

Two indexed queries (bookings and closures in one UNION ALL, opening periods), no
lazy loads: the window is painted reason by reason in order of precedence, so
every instant has at most one reason and the busy list is sorted and
non-overlapping. ``availability_of`` works from a ``CalendarSubject`` (the few
columns that matter), so a caller that already has them (the calendar cache)
needs no ORM load of the resource.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import Connection, Integer, Time, bindparam, select, text
from sqlalchemy.orm import Session

from labshare.booking import workdays
from labshare.booking.rules import (
    MAX_BOOKING_SPAN,
    Span,
    clip,
    effective_rules,
    institute_zone,
    lab_id_of,
    load_opening_periods,
    local_midnight_after,
    merge,
    scope_ids,
    subtract,
)
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    Closure,
    Instrument,
    Lab,
    Resource,
    ResourceStatus,
    UTCDateTime,
)
from labshare.timeutil import utcnow  # waitlist

MAX_WINDOW = dt.timedelta(days=31)

#: Reasons in order of precedence: where several apply, the first one is shown.
REASONS = (
    "unavailable",
    "calibration_expired",
    "closure",
    "holiday",
    "closed",
    "booked",
    "buffer",
    "offered",
)


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


@dataclass(frozen=True)
class CalendarSubject:
    """What a resource's availability depends on, besides its bookings, closures
    and opening periods."""

    id: int
    lab_id: int  # the lab whose opening hours and closures apply (itself for a lab)
    status: str
    capacity: int
    calibration_valid_until: dt.date | None
    timezone: str
    #: The rules' buffer around each holding booking (capacity-1 resources only).
    buffer_minutes: int = 0  # booking policies
    #: The holidays and make-up workdays its lab follows (None: none).
    days: workdays.Days | None = None


OpeningPeriods = list[tuple[int, dt.time, dt.time]]
#: What runs the queries: the request's session, or a connection of the caller's.
Reader = Session | Connection


def subject_of(resource: Resource) -> CalendarSubject:
    return CalendarSubject(
        id=resource.id,
        lab_id=lab_id_of(resource),
        status=resource.status,
        capacity=capacity_of(resource),
        calibration_valid_until=(
            resource.calibration_valid_until if isinstance(resource, Instrument) else None
        ),
        timezone=institute_zone(resource),
        buffer_minutes=effective_rules(resource).buffer_minutes,  # booking policies
        days=workdays.days_of_resource(resource),
    )


#: Plain SQL, built once, as ``_BUSY`` below: a calendar's first render runs it, and
#: building a select() and its cache key cost about as much as running it.
_PERIODS = (
    text("SELECT weekday, opens, closes FROM opening_period WHERE lab_id = :lab_id")
    .bindparams(bindparam("lab_id", type_=Integer))
    .columns(weekday=Integer, opens=Time, closes=Time)
)


def opening_periods_of_lab(lab_id: int, reader: Reader | None = None) -> OpeningPeriods:
    rows = (reader or db.session()).execute(_PERIODS, {"lab_id": lab_id})
    return [(int(w), o, c) for w, o, c in rows]


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


if {str(s) for s in HOLDING_STATUSES} != {"pending", "approved"}:  # spelled out in _BUSY
    raise RuntimeError("HOLDING_STATUSES changed: update _BUSY")
#: Bookings and closures in one round trip, each branch a range scan of its
#: (resource_id, start_at) index. Plain SQL, built once: on a cache miss the
#: statement's construction and cache key would cost more than running it.
_BUSY = (
    text(
        "SELECT 0 AS k, start_at, end_at FROM booking"
        " WHERE resource_id = :rid AND start_at < :end AND start_at > :span_start"
        " AND end_at > :start AND status IN ('pending', 'approved')"
        " UNION ALL"
        " SELECT 1 AS k, start_at, end_at FROM closure"
        " WHERE resource_id IN (:rid, :lab_id) AND start_at < :end AND end_at > :start"
        # waitlist: open, unexpired offers hold their slot
        " UNION ALL"
        " SELECT 2 AS k, start_at, end_at FROM waitlist_entry"
        " WHERE resource_id = :rid AND status = 'offered' AND offer_expires_at > :now"
        " AND start_at < :end AND end_at > :start"
    )
    .bindparams(
        bindparam("rid", type_=Integer),
        bindparam("lab_id", type_=Integer),
        bindparam("start", type_=UTCDateTime()),
        bindparam("end", type_=UTCDateTime()),
        bindparam("span_start", type_=UTCDateTime()),
        bindparam("now", type_=UTCDateTime()),  # waitlist
    )
    .columns(k=Integer, start_at=UTCDateTime(), end_at=UTCDateTime())
)


def _busy_spans(
    subject: CalendarSubject,
    start: dt.datetime,
    end: dt.datetime,
    reader: Reader,
    *,
    offers: list[Span] | None = None,
) -> tuple[list[Span], list[Span]]:
    """(holding bookings, closures of the resource or its lab) overlapping [start, end);
    the open offers to the waitlist are appended to ``offers``, where given."""
    params = {
        "rid": subject.id,
        "lab_id": subject.lab_id,
        "start": start,
        "end": end,
        "span_start": start - MAX_BOOKING_SPAN,
        "now": utcnow(),  # waitlist
    }
    held: list[Span] = []
    closed: list[Span] = []
    for k, s, e in reader.execute(_BUSY, params):
        if k == 2:  # waitlist: an open offer
            if offers is not None:
                offers.append((s, e))
            continue
        (closed if k else held).append((s, e))
    return held, closed


@dataclass(frozen=True)
class WeekShape:
    """What a window looks like before any booking: closed (outside the opening
    hours, holidays included) and the holidays. The same for every resource whose
    lab has the same opening periods, zone and calendar."""

    closed: tuple[Span, ...]
    holidays: tuple[Span, ...]


def week_shape(
    periods: OpeningPeriods,
    tz: str,
    start: dt.datetime,
    end: dt.datetime,
    days: workdays.Days | None,
) -> WeekShape:
    opening = workdays.open_spans(periods, tz, start, end, days)
    return WeekShape(
        closed=tuple(subtract([(start, end)], opening)),
        holidays=tuple(s for _d, s in workdays.holidays_between(days, tz, start, end)),
    )


def availability(resource: Resource, start: dt.datetime, end: dt.datetime) -> Availability:
    subject = subject_of(resource)
    periods = load_opening_periods(resource) if resource.status == ResourceStatus.AVAILABLE else []
    return availability_of(subject, start, end, opening_periods=periods)


def availability_of(
    subject: CalendarSubject,
    start: dt.datetime,
    end: dt.datetime,
    *,
    opening_periods: OpeningPeriods | None = None,
    reader: Reader | None = None,
    busy_read: tuple[list[Span], list[Span], list[Span]] | None = None,
    week: WeekShape | None = None,
) -> Availability:
    """``availability`` of the resource ``subject`` describes. ``opening_periods``
    of its lab, when the caller has them (else they are loaded); the queries run on
    ``reader`` (default: the session). ``busy_read``: the holding bookings, closures and
    open offers over the window widened by the buffer, when the caller has read
    them (else they are read); ``week``: the open time and holidays of the
    window, when the caller has them (``week_shape``)."""
    run: Reader = reader if reader is not None else db.session()
    start, end = _check_window(start, end)
    if subject.status != ResourceStatus.AVAILABLE:
        return paint(subject, start, end)
    if busy_read is not None:
        held, closures, offers = busy_read
    else:
        buffer = buffer_of(subject)
        offers = []  # waitlist: open offers, from the same query
        held, closures = _busy_spans(subject, start - buffer, end + buffer, run, offers=offers)
    if week is None:
        if opening_periods is None:
            opening_periods = opening_periods_of_lab(subject.lab_id, run)
        week = week_shape(opening_periods, subject.timezone, start, end, subject.days)
    return paint(subject, start, end, held=held, closures=closures, offers=offers, week=week)


def buffer_of(subject: CalendarSubject) -> dt.timedelta:
    """The rules' buffer around each holding booking (capacity-1 resources only): the
    bookings, closures and offers are read over the window widened by it."""
    if subject.buffer_minutes > 0 and subject.capacity <= 1:
        return dt.timedelta(minutes=subject.buffer_minutes)
    return dt.timedelta(0)


def paint(
    subject: CalendarSubject,
    start: dt.datetime,
    end: dt.datetime,
    *,
    held: Sequence[Span] = (),
    closures: Sequence[Span] = (),
    offers: Sequence[Span] = (),
    opening_periods: Sequence[tuple[int, dt.time, dt.time]] = (),
    opening: Sequence[Span] | None = None,
    week: WeekShape | None = None,
) -> Availability:
    """The calendar of [start, end) (UTC, checked) from rows already read: the holding
    bookings, closures (of the resource or its lab) and open offers overlapping the
    window widened by ``buffer_of(subject)``, and the lab's opening periods (or
    ``opening``: ``workdays.open_spans`` of them over [start, end), or ``week``: the
    window's ``week_shape``, where the caller has it). No statement: the search's
    free-time filter paints many resources from one read."""
    tz = subject.timezone
    raw: dict[str, list[Span]] = {}
    if subject.status != ResourceStatus.AVAILABLE:
        raw["unavailable"] = [(start, end)]
    else:
        if subject.calibration_valid_until is not None:
            cutoff = local_midnight_after(subject.calibration_valid_until, tz)
            if cutoff < end:
                raw["calibration_expired"] = [(max(start, cutoff), end)]
        raw["closure"] = list(closures)
        # -- booking policies: the buffer around holding bookings (capacity 1) --
        buffer = buffer_of(subject)
        if buffer:  # around bookings, and around open offers (they hold time too)
            raw["buffer"] = [(s - buffer, s) for s, _e in [*held, *offers]] + [
                (e, e + buffer) for _s, e in [*held, *offers]
            ]
        # -- end booking policies --
        if week is None:
            if opening is None:
                opening = workdays.open_spans(opening_periods, tz, start, end, subject.days)
            week = WeekShape(
                closed=tuple(subtract([(start, end)], opening)),
                holidays=tuple(
                    s for _d, s in workdays.holidays_between(subject.days, tz, start, end)
                ),
            )
        raw["holiday"] = list(week.holidays)
        raw["closed"] = list(week.closed)
        raw["booked"] = saturated(held, subject.capacity)
        # -- waitlist: an open offer holds its slot (one unit of a lab) --
        if offers:
            raw["offered"] = saturated([*held, *offers], subject.capacity)
        # -- end waitlist --

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
    return Availability(resource_id=subject.id, timezone=tz, busy=busy, free=free)
