"""The week calendar of one resource: a grid of local-time rows by seven days,
painted from ``availability()`` (the engine decides what is free; this module
only lays it out in the institute's zone)."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

from labshare.booking import workdays
from labshare.booking.availability import availability
from labshare.booking.rules import (
    Rules,
    closes_next_day,
    effective_rules,
    institute_zone,
    load_opening_periods,
    local_instant,
)
from labshare.models import Resource
from labshare.timeutil import NonexistentLocalTime, localize, to_local, utcnow

WEEK_RE = re.compile(r"^(\d{4})-W(\d{1,2})$")
MIN_ROW_MINUTES = 30
DEFAULT_DAY = (8 * 60, 18 * 60)


@dataclass(frozen=True)
class Cell:
    #: free, booked, closed, closure, calibration_expired, unavailable, past, soon, later, none
    state: str
    start_local: dt.datetime
    book_start: str | None = None
    book_end: str | None = None


@dataclass(frozen=True)
class Week:
    monday: dt.date
    days: list[dt.date]
    rows: list[str]
    cells: list[list[Cell]]  # [row][day]
    timezone: str
    rules: Rules
    row_minutes: int
    iso: str
    prev_iso: str
    next_iso: str
    this_iso: str
    free_count: int
    #: Per day: the public holiday or make-up workday it is, for the lab (else None).
    day_notes: list[workdays.Day | None] = field(default_factory=list)


def iso_week(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text: str | None) -> dt.date | None:
    """The Monday of ``YYYY-Www``; None when absent or malformed."""
    match = WEEK_RE.match((text or "").strip())
    if not match:
        return None
    year, week = int(match.group(1)), int(match.group(2))
    if not 2000 <= year <= 2100:
        return None
    try:
        return dt.date.fromisocalendar(year, week, 1)
    except ValueError:
        return None


def _row_range(resource: Resource, step: int) -> tuple[int, int]:
    """First and last minute of the day to show: the span of the opening hours."""
    periods = load_opening_periods(resource)
    if not periods:
        first, last = DEFAULT_DAY
    else:
        first = min(o.hour * 60 + o.minute for _, o, _c in periods)
        last = max(
            24 * 60 if closes_next_day(o, c) else c.hour * 60 + c.minute for _, o, c in periods
        )
        if any(closes_next_day(o, c) and c != dt.time(0) for _, o, c in periods):
            first = 0  # overnight: the morning after shows from midnight
    first = (first // step) * step
    last = min(24 * 60, math.ceil(last / step) * step)
    return first, max(last, first + step)


def _overlaps(s: dt.datetime, e: dt.datetime, a: dt.datetime, b: dt.datetime) -> bool:
    return s < b and a < e


def build_week(resource: Resource, monday: dt.date | None = None) -> Week:
    tz = institute_zone(resource)
    now = utcnow()
    today = to_local(now, tz).date()
    if monday is None:
        monday = today - dt.timedelta(days=today.weekday())
    rules = effective_rules(resource)
    slot = rules.slot_minutes
    step = slot * max(1, math.ceil(MIN_ROW_MINUTES / slot))
    length = max(rules.min_minutes, slot)
    length = math.ceil(length / slot) * slot
    days = [monday + dt.timedelta(days=i) for i in range(7)]
    window_start = local_instant(monday, dt.time(0), tz)
    window_end = local_instant(monday + dt.timedelta(days=7), dt.time(0), tz)
    avail = availability(resource, window_start, window_end)
    first, last = _row_range(resource, step)
    lead_limit = now + dt.timedelta(hours=rules.lead_time_hours)
    horizon_limit = now + dt.timedelta(days=rules.horizon_days)

    rows: list[str] = []
    cells: list[list[Cell]] = []
    free_count = 0
    for minute in range(first, last, step):
        rows.append(f"{minute // 60:02d}:{minute % 60:02d}")
        line: list[Cell] = []
        for day in days:
            naive = dt.datetime.combine(day, dt.time(0)) + dt.timedelta(minutes=minute)
            try:
                start = localize(naive, tz).astimezone(dt.UTC)
            except NonexistentLocalTime:
                line.append(Cell("none", naive))
                continue
            end = start + dt.timedelta(minutes=step)
            state = "free"
            for interval in avail.busy:
                if _overlaps(start, end, interval.start, interval.end):
                    state = interval.reason or "booked"
                    break
            if end <= now:
                state = "past"
            elif state == "free" and start < lead_limit:
                state = "soon"
            elif state == "free" and start > horizon_limit:
                state = "later"
            if state == "free":
                free_count += 1
                line.append(
                    Cell(
                        "free",
                        naive,
                        book_start=naive.strftime("%Y-%m-%dT%H:%M"),
                        book_end=(naive + dt.timedelta(minutes=length)).strftime("%Y-%m-%dT%H:%M"),
                    )
                )
            else:
                line.append(Cell(state, naive))
        cells.append(line)
    this_monday = today - dt.timedelta(days=today.weekday())
    return Week(
        monday=monday,
        days=days,
        rows=rows,
        cells=cells,
        timezone=tz,
        rules=rules,
        row_minutes=step,
        iso=iso_week(monday),
        prev_iso=iso_week(monday - dt.timedelta(days=7)),
        next_iso=iso_week(monday + dt.timedelta(days=7)),
        this_iso=iso_week(this_monday),
        free_count=free_count,
        day_notes=workdays.notes_of(resource, days),
    )
