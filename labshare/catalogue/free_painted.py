"""Each kept resource's free time painted once over the span its rows were read for
(free_memo.py), so that a window search's check of a candidate is a bisection of it
rather than a painting of the window (free_time._fits_painted).

Painting is pointwise: each instant is free or busy by the rows over it (opening
hours, holidays, closures, bookings and their buffers, calibration expiry, a lab's
capacity), so a window's free time is any larger span's clipped to it. The span
stops a buffer short of the rows read at each end (a booking just beyond them
reaches in by its buffer). Painted only from rows without open offers (an offer
stops holding its slot when it expires, with no version change), the first time a
window inside is asked, and kept with the calendar columns it was painted for (and
used only for a candidate with the same): whether a lab follows the holidays changes
no calendar version.
"""

from __future__ import annotations

import datetime as dt
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labshare.booking import workdays
from labshare.booking.availability import CalendarSubject, buffer_of, paint
from labshare.booking.rules import Span
from labshare.catalogue import free_memo
from labshare.catalogue.free_candidates import Candidate

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def micros(t: dt.datetime) -> int:
    """``t`` (aware) in microseconds since the epoch: ``Painted``'s instants."""
    return (t - _EPOCH) // dt.timedelta(microseconds=1)


def instant(us: int) -> dt.datetime:
    """The UTC instant of ``us`` microseconds since the epoch."""
    return _EPOCH + dt.timedelta(microseconds=us)


@dataclass(frozen=True)
class Painted:
    """A resource's free time over all its kept rows' span (less its buffer at each
    end), painted once from them as ``availability.paint`` paints any window: painting
    is pointwise (each instant is free or busy by the rows over it), so the free time
    of a window inside [lo, hi] is this clipped to it. Instants are microseconds since
    the epoch (a month of spans as datetimes would take ten times the memory). Kept
    with the rows it was painted from, dropped with them."""

    #: what it was painted for: its calendar columns (``_same_calendar``)
    subject: CalendarSubject
    lo: int
    hi: int
    #: the free spans' bounds, sorted: start, end, start, end…
    bounds: array[int]


def painted_of(
    batch: Sequence[Candidate], now: dt.datetime, windows: dict[int, tuple[int, int]]
) -> dict[int, Painted]:
    """The painted free time of those of ``batch`` whose window (``windows``: by id,
    in microseconds) it covers, from rows kept that are current (``free_memo.current``)
    and hold no open offer (one stops holding its slot when it expires, with no
    version change); painted the first time such a window is asked after the rows
    were read, and again for a candidate whose calendar columns are not the ones it
    was painted for (a lab opting out of the holidays changes no stamp)."""
    memo = free_memo.active()
    if memo is None:
        return {}
    versions = free_memo.lab_versions(batch)
    out: dict[int, Painted] = {}
    opened: dict[tuple[Any, ...], list[Span]] = {}
    for c, kept in zip(batch, memo.get_many([c.subject.id for c in batch]), strict=True):
        rows = kept.rows if kept is not None else None
        if (
            kept is None
            or rows is None
            or rows.offers
            or not free_memo.current(c, rows, now, versions)
        ):
            continue
        low, high = windows[c.subject.id]
        painted = kept.painted
        if painted is None or not _same_calendar(painted.subject, c.subject):
            buffer = buffer_of(c.subject)
            if not micros(rows.lo + buffer) <= low <= high <= micros(rows.hi - buffer):
                continue  # not painted for nothing: the rows cannot answer it
            painted = _paint(c.subject, rows, opened)
            memo.paint(c.subject.id, kept, painted)
        elif not painted.lo <= low <= high <= painted.hi:
            continue
        out[c.subject.id] = painted
    return out


def _same_calendar(a: CalendarSubject, b: CalendarSubject) -> bool:
    """Whether free time painted for ``a`` is ``b``'s (the same resource): the same
    columns ``availability.paint`` reads, the holidays' calendar as the same object
    (workdays.calendar keeps the latest token's; a copy read again only means a
    painting again)."""
    if a is b:
        return True
    da, db_ = a.days, b.days
    same_days = da is db_ or (
        da is not None
        and db_ is not None
        and da.calendar is db_.calendar
        and da.region == db_.region
    )
    return same_days and (
        a.status,
        a.capacity,
        a.calibration_valid_until,
        a.timezone,
        a.buffer_minutes,
        a.lab_id,
    ) == (b.status, b.capacity, b.calibration_valid_until, b.timezone, b.buffer_minutes, b.lab_id)


def _paint(
    subject: CalendarSubject, rows: free_memo.Rows, opened: dict[tuple[Any, ...], list[Span]]
) -> Painted:
    """``subject``'s free time over its rows' span less its buffer at each end (where
    every row whose buffer reaches in was read); ``opened``: the open time of labs
    with the same hours, zone and holidays over the same span (one read's rows)."""
    buffer = buffer_of(subject)
    lo, hi = rows.lo + buffer, rows.hi - buffer
    days = subject.days
    calendar = None if days is None else days.key()
    key = (subject.timezone, calendar, rows.periods, lo, hi)
    opening = opened.get(key)
    if opening is None:
        opening = opened[key] = workdays.open_spans(rows.periods, subject.timezone, lo, hi, days)
    free = paint(
        subject,
        lo,
        hi,
        held=rows.held,
        closures=rows.closed + rows.lab_closed,
        opening=opening,
    ).free
    bounds = array("q")
    for i in free:
        bounds.append(micros(i.start))
        bounds.append(micros(i.end))
    return Painted(subject, micros(lo), micros(hi), bounds)


__all__ = ["Painted", "instant", "micros", "painted_of"]
