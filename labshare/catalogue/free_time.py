"""Free time of many resources at once, for the search's window filter and its
"free this week" facet.

Exactness first: a resource counts as free only where ``availability()`` (the
engine's calendar) would show a bookable slot, so the same function paints it
(``availability.paint``: opening hours with holidays and make-up workdays, closures
of the resource and its lab, calibration expiry, status, the rules' buffer, open
waitlist offers, a lab's capacity), from rows read for many resources at once.

Cheap first, in rank order, and only as far as needed:

1. ``subjects``: the candidates' calendar columns (status, lab, zone, calibration,
   capacity, the holidays they follow) in ONE statement over the ranked ids, no ORM;
2. their rules and their labs' opening periods: one statement each;
3. a resource whose free time is kept painted over the month its rows were read for
   (free_painted.py) is answered from it: a bisection and a grid fit, nothing read
   or painted;
4. the *static* check: the window painted without bookings, closures or offers.
   More busy time only removes free time, so a resource whose static free time has
   no slot (closed that day, a holiday, calibration expired, maintenance) is
   certainly not free and its bookings are never read. Labs with the same hours,
   zone and holidays share the local-time arithmetic;
5. the exact check, in batches in rank order: ONE statement (a UNION ALL of three
   index range scans, free_busy.py) brings the batch's holding bookings, closures
   and open offers, or none when each resource's rows are kept (free_memo.py), each
   resource is painted, and the scan stops as soon as ``wanted`` are found.

The arithmetic stays in Python because opening hours are local wall-clock times of
each institute's zone (DST included) and SQLite has no time zones; doing it in SQL
on one database only would give two answers.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labshare.booking import workdays
from labshare.booking.availability import (
    CalendarSubject,
    availability,
    buffer_of,
    paint,
)
from labshare.booking.rules import (
    Rules,
    Span,
    institute_zone,
    local_midnight_after,
)
from labshare.catalogue import free_busy, free_candidates, free_memo, free_painted
from labshare.catalogue.free_busy import Periods
from labshare.catalogue.free_candidates import Candidate, Candidates
from labshare.models import Resource
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


def _bookable(
    rules: Rules, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None
) -> Span | None:
    """[start, end) cut to the lead time and horizon; None when nothing is left."""
    now = now or utcnow()
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


# -- the scan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scan:
    #: ids with a free slot, in rank order
    found: list[int]
    #: the rules of the examined candidates
    rules: dict[int, Rules]
    #: every candidate up to the limit was examined (``found`` is all of them)
    complete: bool
    #: there are candidates beyond the limit (never examined)
    beyond: bool
    #: the candidates examined (their calendars decided the answer)
    examined: tuple[Candidate, ...]
    #: until when the clock cannot change the answer (window_cache.py): the first
    #: instant a candidate's lead time cuts into its window; the scan's own instant
    #: when the clock changed it already (a horizon inside the window, an open offer)
    stable_until: dt.datetime
    #: the scan's instant (its lead times and horizons were measured from it)
    at: dt.datetime


def scan(
    candidates: Candidates,
    window: Callable[[CalendarSubject], Span],
    duration: int | None = None,
    *,
    limit: int,
    wanted: int | None = None,
) -> Scan:
    """Which of the first ``limit`` candidates (in rank order) have a free slot (the
    minimum booking, or ``duration`` minutes) in their ``window(subject)``, as
    ``has_free_slot`` answers; stops once ``wanted`` are found. Works in batches,
    each a little larger than what is still wanted and at least twice the last,
    so a page costs a few statements even when most candidates are booked."""
    found: list[int] = []
    rules: dict[int, Rules] = {}
    memo = _Memo()
    examined: list[Candidate] = []
    done = size = 0

    def result(complete: bool, beyond: bool) -> Scan:
        return Scan(found, rules, complete, beyond, tuple(examined), memo.until, memo.now)

    while done < limit:
        size = max(size * 2, limit if wanted is None else (wanted - len(found)) * 3 // 2 + 2)
        # one more than the batch: whether anything is left after it
        ahead = candidates.first(min(done + size, limit) + 1)
        batch = ahead[done : min(done + size, limit)]
        if not batch:
            break
        rules.update((c.subject.id, c.rules) for c in batch)
        examined += batch
        checked = _check(batch, window, duration, memo)
        for n, c in enumerate(batch):
            if not checked.get(c.subject.id, False):
                continue
            found.append(c.subject.id)
            if wanted is not None and len(found) >= wanted:
                last = done + n + 1
                left = len(ahead) > last and last < limit
                return result(complete=not left, beyond=len(ahead) > limit)
        done += len(batch)
    return result(complete=True, beyond=len(candidates.first(limit + 1)) > limit)


_UNSEEN: Any = object()

#: ``_Memo.until`` when nothing examined depends on the clock
_FOREVER = dt.datetime.max.replace(tzinfo=dt.UTC)


class _Memo:
    """What the batches of one scan share: opening periods by lab, and the opening
    spans of labs with the same hours, zone, holidays and window (most keep office
    hours; the local-time arithmetic is most of a check's time)."""

    def __init__(self) -> None:
        #: one instant for the whole scan, so that equal windows share their spans
        self.now = utcnow()
        self.periods: dict[int, Periods] = {}
        self.opened: dict[tuple[Any, ...], list[Span]] = {}
        self.static: dict[tuple[Any, ...], bool] = {}
        #: (window, rules) → the bookable span and slot length (None: no slot)
        self.cuts: dict[tuple[Any, ...], _Cut | None] = {}
        #: (zone, holidays, hours) → its class; resource id → its lab's class
        self.alike: dict[tuple[Any, ...], int] = {}
        self.classes: dict[int, int] = {}
        #: ``Scan.stable_until`` of what was examined so far
        self.until = _FOREVER

    def settles(self, rules: Rules, start: dt.datetime, end: dt.datetime) -> None:
        """Narrow ``until`` to what the clock does to ``_bookable(rules, start, end)``:
        the same span while the lead time stays before ``start`` and the horizon
        beyond ``end``; nothing ever when the lead time is past ``end`` already;
        changing now when either cuts into the window (it moves with the clock)."""
        lead = self.now + dt.timedelta(hours=rules.lead_time_hours)
        if end <= lead:
            return
        if end > self.now + dt.timedelta(days=rules.horizon_days) or start < lead:
            self.until = min(self.until, self.now)
        else:
            self.until = min(self.until, start - dt.timedelta(hours=rules.lead_time_hours))

    def key(self, s: CalendarSubject, start: dt.datetime, end: dt.datetime) -> tuple[Any, ...]:
        """What the lab's open time over [start, end) depends on: the window and the
        class of labs with the same zone, holidays and hours (a small number, so
        that the key hashes cheaply: most candidates' checks are a look-up)."""
        cls = self.classes.get(s.id)
        if cls is None:
            days_key = None if s.days is None else s.days.key()
            alike = (s.timezone, days_key, self.periods.get(s.lab_id, ()))
            cls = self.alike.setdefault(alike, len(self.alike))
            if s.lab_id in self.periods:  # else its hours are not known yet
                self.classes[s.id] = cls
        return (cls, start, end)

    def opening(self, s: CalendarSubject, start: dt.datetime, end: dt.datetime) -> list[Span]:
        key = self.key(s, start, end)
        found = self.opened.get(key)
        if found is None:
            periods = self.periods.get(s.lab_id, ())
            found = workdays.open_spans(periods, s.timezone, start, end, s.days)
            self.opened[key] = found
        return found


def _check(
    batch: Sequence[Candidate],
    window: Callable[[CalendarSubject], Span],
    duration: int | None,
    memo: _Memo,
) -> dict[int, bool]:
    """Free or not, for each of ``batch`` that could be: from its painted free time
    where it is kept; for the others one statement for their bookings, closures,
    offers and (new) labs' opening periods; then the static check
    (the window painted as if nothing were booked: more busy time only removes free
    time, so a lab closed that day, a holiday, an expired calibration end it without
    painting the bookings), then the exact painting."""
    cuts: dict[int, _Cut] = {}
    for c in batch:
        asked_window = window(c.subject)
        # candidates with equal rules and window share the arithmetic (most do)
        key = (asked_window, c.rules)
        cut = memo.cuts.get(key, _UNSEEN)
        if cut is _UNSEEN:
            start, end = (t.astimezone(dt.UTC) for t in asked_window)
            memo.settles(c.rules, start, end)
            span = _bookable(c.rules, start, end, memo.now)
            length = need(c.rules, duration)
            cut = memo.cuts[key] = None if span is None or length is None else _Cut(span, length)
        if cut is not None:
            cuts[c.subject.id] = cut
    # free time kept painted (free_painted.py): a look-up, no statement, no painting
    kept = free_painted.painted_of(
        [c for c in batch if c.subject.id in cuts],
        memo.now,
        {rid: (cut.low, cut.high) for rid, cut in cuts.items()},
    )
    asked: dict[int, tuple[CalendarSubject, Span, dt.timedelta]] = {}
    out: dict[int, bool] = {}
    for c in batch:
        cut = cuts.get(c.subject.id)
        if cut is None:
            continue
        kept_free = kept.get(c.subject.id)
        if kept_free is not None:
            out[c.subject.id] = _fits_painted(kept_free, cut, c)
        else:
            asked[c.subject.id] = (c.subject, cut.span, cut.length)
    # Labs seen in an earlier batch: the static check before the read, so that the
    # rows of a candidate that cannot be free are not even read.
    passed: set[int] = set()
    for c in batch:
        if c.subject.id not in asked or c.subject.lab_id not in memo.periods:
            continue
        if _could_be_free(c, *asked[c.subject.id][1:], memo):
            passed.add(c.subject.id)
        else:
            del asked[c.subject.id]
    if not asked:
        return out
    widened = {i: _widened(s, span) for i, (s, span, _n) in asked.items()}
    busy = free_memo.busy_of(
        [c for c in batch if c.subject.id in asked],
        min(w[0] for w in widened.values()),
        max(w[1] for w in widened.values()),
        [s.lab_id for s, _span, _n in asked.values() if s.lab_id not in memo.periods],
        memo.now,
    )
    for s, _span, _n in asked.values():
        memo.periods.setdefault(s.lab_id, busy.periods.get(s.lab_id, ()))
    for c in batch:
        if c.subject.id not in asked:
            continue
        s, (start, end), length = asked[c.subject.id]
        if s.id not in passed and not _could_be_free(c, (start, end), length, memo):
            continue
        held, closed, offers = free_busy.own(s, busy, *widened[s.id], memo.now)
        if offers:  # it holds the slot until it expires, which no version records
            memo.until = min(memo.until, memo.now)
        if not (held or closed or offers):
            out[s.id] = True  # nothing more than the static check painted: it fits
            continue
        opening = memo.opening(s, start, end)
        painted = paint(s, start, end, held=held, closures=closed, offers=offers, opening=opening)
        out[s.id] = _fits(
            [(i.start, i.end) for i in painted.free], c.rules.slot_minutes, length, s.timezone
        )
    return out


class _Cut:
    """A window cut by the lead time and horizon, and the slot it must hold, also in
    microseconds (``free_painted.Painted``'s instants)."""

    __slots__ = ("high", "length", "low", "need", "span")

    def __init__(self, span: Span, length: dt.timedelta) -> None:
        self.span, self.length = span, length
        self.low, self.high = free_painted.micros(span[0]), free_painted.micros(span[1])
        self.need = length // dt.timedelta(microseconds=1)


def _fits_painted(painted: free_painted.Painted, cut: _Cut, c: Candidate) -> bool:
    """``_fits`` over ``painted``'s free time clipped to the cut window (inside what
    it painted: ``free_painted.painted_of`` gives it only then)."""
    low, high, bounds = cut.low, cut.high, painted.bounds
    slot, tz = c.rules.slot_minutes, c.subject.timezone
    # bounds up to ``low``: an odd count when ``low`` is inside a free span
    k = bisect_right(bounds, low) // 2 * 2
    while k < len(bounds) and bounds[k] < high:
        start, end = max(bounds[k], low), min(bounds[k + 1], high)
        if _grid_micros(start, slot, tz) + cut.need <= end:
            return True
        k += 2
    return False


#: (instant, slot minutes, zone) → ``_grid_start`` of it: a painted span's start
#: is asked again by every window that begins before it; a window starting now adds
#: one that is never asked again, so the memo is cleared when full
_GRID: dict[tuple[int, int, str], int] = {}


def _grid_micros(us: int, slot_minutes: int, tz: str) -> int:
    """``_grid_start`` of the instant ``us`` (microseconds since the epoch), likewise."""
    key = (us, slot_minutes, tz)
    found = _GRID.get(key)
    if found is None:
        if len(_GRID) > 8192:  # about 1.5 MB
            _GRID.clear()
        grid = _grid_start(free_painted.instant(us), slot_minutes, tz)
        found = _GRID[key] = free_painted.micros(grid)
    return found


def _could_be_free(c: Candidate, span: Span, length: dt.timedelta, memo: _Memo) -> bool:
    """The static check: whether the slot would fit were nothing booked, closed or
    offered (more busy time only removes free time). Candidates alike in everything
    it depends on share one answer."""
    s = c.subject
    key = (
        *memo.key(s, *span),
        s.status,
        s.calibration_valid_until,
        c.rules.slot_minutes,
        length,
    )
    found = memo.static.get(key)
    if found is None:
        opening = memo.opening(s, *span)
        static = [(i.start, i.end) for i in paint(s, *span, opening=opening).free]
        found = memo.static[key] = _fits(static, c.rules.slot_minutes, length, s.timezone)
    return found


def _widened(subject: CalendarSubject, span: Span) -> Span:
    buffer = buffer_of(subject)
    return span[0] - buffer, span[1] + buffer


def with_free_slot(
    resources: Sequence[Resource],
    start: dt.datetime,
    end: dt.datetime,
    duration: int | None = None,
) -> list[Resource]:
    """``[r for r in resources if has_free_slot(r, effective_rules(r), start, end,
    duration)]`` in a few statements however many resources there are."""
    candidates = Candidates.of(free_candidates.of_ids([r.id for r in resources]))
    found = set(scan(candidates, lambda _s: (start, end), duration, limit=len(resources)).found)
    return [r for r in resources if r.id in found]


def this_week(subject: CalendarSubject, now: dt.datetime) -> Span:
    """From ``now`` to the end of the local week (Sunday 24:00) in the institute's zone."""
    today = now.astimezone(zone(subject.timezone)).date()
    sunday = today + dt.timedelta(days=6 - today.weekday())
    return now, local_midnight_after(sunday, subject.timezone)


__all__ = [
    "AVAILABILITY_SCAN_LIMIT",
    "has_free_slot",
    "need",
    "scan",
    "this_week",
    "with_free_slot",
]
