"""Free time of many resources at once, for the search's window filter and its
"free this week" facet.

``availability()`` asks two statements per resource; a search examines up to
``AVAILABILITY_SCAN_LIMIT`` candidates, so their holding bookings, the closures of
them and their labs, and their labs' opening periods come back in ONE statement (a
UNION ALL whose branches are each a range scan of an index), and the free time is
cut from those rows with the engine's own span arithmetic (``rules.subtract``,
``availability.saturated``). The arithmetic stays in Python because opening hours
are local wall-clock times of each institute's zone (DST included) and SQLite has
no time zones; doing it in SQL on one database only would give two answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, cast, literal, null, select, union_all

from labshare.booking.availability import OpeningPeriods, availability, capacity_of, saturated
from labshare.booking.rules import (
    MAX_BOOKING_SPAN,
    Rules,
    Span,
    clip,
    institute_zone,
    lab_id_of,
    local_midnight_after,
    merge,
    opening_spans,
    scope_ids,
    subtract,
)
from labshare.extensions import db
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    Closure,
    Instrument,
    OpeningPeriod,
    Resource,
    ResourceStatus,
)
from labshare.timeutil import utcnow, zone

#: The free-time filter and facet examine at most this many candidates.
AVAILABILITY_SCAN_LIMIT = 200


def need(rules: Rules, duration: int | None) -> dt.timedelta | None:
    """How long the free slot must be: the minimum booking, or the asked duration
    rounded up to the slot grid (a booking ends on the grid); None when one booking
    may not last that long."""
    if duration is None:
        return dt.timedelta(minutes=rules.min_minutes)
    minutes = max(duration, rules.min_minutes)
    minutes = -(-minutes // rules.slot_minutes) * rules.slot_minutes
    if minutes > rules.max_minutes:
        return None
    return dt.timedelta(minutes=minutes)


def _grid_start(value: dt.datetime, slot_minutes: int, tz: str) -> dt.datetime:
    """The first instant at or after ``value`` on the resource's slot grid."""
    local = value.astimezone(zone(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = (local - midnight).total_seconds() / 60
    steps = -(-minutes // slot_minutes)  # ceiling
    return (midnight + dt.timedelta(minutes=steps * slot_minutes)).astimezone(dt.UTC)


def _fits(free: Sequence[Span], slot_minutes: int, length: dt.timedelta, tz: str) -> bool:
    """Whether ``length`` fits on the grid in one of ``free``."""
    return any(_grid_start(s, slot_minutes, tz) + length <= e for s, e in free)


def _bookable(rules: Rules, start: dt.datetime, end: dt.datetime) -> Span | None:
    """[start, end) cut to the lead time and horizon; None when nothing is left."""
    now = utcnow()
    start = max(start, now + dt.timedelta(hours=rules.lead_time_hours))
    end = min(end, now + dt.timedelta(days=rules.horizon_days))
    return (start, end) if start < end else None


def has_free_slot(
    resource: Resource,
    rules: Rules,
    start: dt.datetime,
    end: dt.datetime,
    duration: int | None = None,
) -> bool:
    """Whether a booking of the minimum length (or of ``duration`` minutes) fits on
    the grid somewhere in [start, end), within the lead time and horizon; asks
    ``availability()``, the engine's calendar (the reference the batch must match)."""
    span = _bookable(rules, start, end)
    length = need(rules, duration)
    if span is None or length is None:
        return False
    free = [(i.start, i.end) for i in availability(resource, *span).free]
    return _fits(free, rules.slot_minutes, length, institute_zone(resource))


@dataclass
class Calendars:
    """Bookings, closures and opening periods of many resources over one window."""

    held: dict[int, list[Span]]  # by resource id
    closed: dict[int, list[Span]]  # by resource id (closures of labs too)
    periods: dict[int, OpeningPeriods]  # by lab id


def calendars(resources: Sequence[Resource], start: dt.datetime, end: dt.datetime) -> Calendars:
    """ONE statement for all of ``resources``: their holding bookings, the closures
    of them and their labs (the same conditions as ``availability``), and their
    labs' opening periods."""
    ids = [r.id for r in resources]
    lab_ids = sorted({lab_id_of(r) for r in resources})
    out = Calendars(held={}, closed={}, periods={})
    if not ids:
        return out
    # Typed NULLs: PostgreSQL will not guess a UNION column's type from a bare NULL;
    # SQLite's CAST(NULL AS …) is NULL whatever the type.
    no_time = cast(null(), OpeningPeriod.opens.type)
    no_instant = cast(null(), Booking.start_at.type)
    no_day = cast(null(), OpeningPeriod.weekday.type)
    rows = db.session.execute(
        union_all(
            select(
                literal(0, Integer).label("k"),
                Booking.resource_id.label("rid"),
                Booking.start_at.label("s"),
                Booking.end_at.label("e"),
                no_day.label("wd"),
                no_time.label("opens"),
                no_time.label("closes"),
            ).where(
                Booking.resource_id.in_(ids),
                Booking.start_at < end,
                Booking.start_at > start - MAX_BOOKING_SPAN,
                Booking.end_at > start,
                Booking.status.in_(HOLDING_STATUSES),
            ),
            select(
                literal(1, Integer),
                Closure.resource_id,
                Closure.start_at,
                Closure.end_at,
                no_day,
                no_time,
                no_time,
            ).where(
                Closure.resource_id.in_(sorted({*ids, *lab_ids})),
                Closure.start_at < end,
                Closure.end_at > start,
            ),
            select(
                literal(2, Integer),
                OpeningPeriod.lab_id,
                no_instant,
                no_instant,
                OpeningPeriod.weekday,
                OpeningPeriod.opens,
                OpeningPeriod.closes,
            ).where(OpeningPeriod.lab_id.in_(lab_ids)),
        )
    )
    for k, rid, s, e, weekday, opens, closes in rows:
        if k == 2:
            out.periods.setdefault(rid, []).append((int(weekday), _time(opens), _time(closes)))
        else:
            (out.closed if k else out.held).setdefault(rid, []).append((_utc(s), _utc(e)))
    return out


def _time(value: dt.time | str) -> dt.time:
    # A NULL-typed first branch leaves SQLite's text un-parsed on some paths.
    return value if isinstance(value, dt.time) else dt.time.fromisoformat(str(value))


def _utc(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def free_spans(
    resource: Resource,
    cal: Calendars,
    start: dt.datetime,
    end: dt.datetime,
    opened: dict[tuple[Any, ...], list[Span]] | None = None,
) -> list[Span]:
    """``availability(resource, start, end).free`` from prefetched calendars: the
    window minus everything ``availability_of`` paints busy (the reasons' order
    only decides labels, not what is free)."""
    if resource.status != ResourceStatus.AVAILABLE:
        return []
    tz = institute_zone(resource)
    busy: list[Span] = []
    if isinstance(resource, Instrument) and resource.calibration_valid_until is not None:
        cutoff = local_midnight_after(resource.calibration_valid_until, tz)
        if cutoff < end:
            busy.append((max(start, cutoff), end))
    for rid in scope_ids(resource):
        busy += cal.closed.get(rid, [])
    periods = cal.periods.get(lab_id_of(resource), [])
    # Labs with the same hours in the same zone (most keep office hours) share their
    # opening spans: worked out once per request and window, as the local-time
    # arithmetic was most of the filter's time.
    memo_key = (tz, start, end, *sorted(periods))
    opening = opened.get(memo_key) if opened is not None else None
    if opening is None:
        opening = opening_spans(periods, tz, start, end)
        if opened is not None:
            opened[memo_key] = opening
    busy += subtract([(start, end)], opening)
    busy += saturated(cal.held.get(resource.id, []), capacity_of(resource))
    return subtract([(start, end)], merge(clip(busy, start, end)))


def free_in(
    resources: Sequence[Resource],
    rules: Mapping[int, Rules],
    windows: Mapping[int, Span],
    duration: int | None = None,
) -> list[Resource]:
    """The ``resources`` with a free slot (the minimum booking, or ``duration``
    minutes) in their own window ``windows[id]``: one statement however many."""
    asked: dict[int, tuple[Span, dt.timedelta]] = {}
    for r in resources:
        start, end = (t.astimezone(dt.UTC) for t in windows[r.id])
        span = _bookable(rules[r.id], start, end)
        length = need(rules[r.id], duration)
        if span is not None and length is not None:
            asked[r.id] = (span, length)
    if not asked:
        return []
    cal = calendars(
        [r for r in resources if r.id in asked],
        min(span[0] for span, _ in asked.values()),
        max(span[1] for span, _ in asked.values()),
    )
    out: list[Resource] = []
    opened: dict[tuple[Any, ...], list[Span]] = {}
    for r in resources:
        if r.id not in asked:
            continue
        (start, end), length = asked[r.id]
        free = free_spans(r, cal, start, end, opened)
        if _fits(free, rules[r.id].slot_minutes, length, institute_zone(r)):
            out.append(r)
    return out


def with_free_slot(
    resources: Sequence[Resource],
    rules: Mapping[int, Rules],
    start: dt.datetime,
    end: dt.datetime,
    duration: int | None = None,
) -> list[Resource]:
    """``[r for r in resources if has_free_slot(r, rules[r.id], start, end, duration)]``
    in one statement however many resources there are."""
    return free_in(resources, rules, {r.id: (start, end) for r in resources}, duration)


def this_week(resource: Resource) -> Span:
    """From now to the end of the local week (Sunday 24:00) in the institute's zone."""
    tz = institute_zone(resource)
    now = utcnow()
    today = now.astimezone(zone(tz)).date()
    sunday = today + dt.timedelta(days=6 - today.weekday())
    return now, local_midnight_after(sunday, tz)


def free_this_week(
    resources: Sequence[Resource], rules: Mapping[int, Rules], duration: int | None = None
) -> list[Resource]:
    return free_in(resources, rules, {r.id: this_week(r) for r in resources}, duration)


__all__ = [
    "AVAILABILITY_SCAN_LIMIT",
    "free_in",
    "free_this_week",
    "has_free_slot",
    "need",
    "with_free_slot",
]
