"""Each resource's calendar rows and candidate columns kept across searches, so that a
window search nobody asked before (a new window, a new capability) reads no booking
when the calendars it looks at have not changed.

The answer cache (search_cache.py, window_cache.py) keeps whole answers: a search
with another window, duration or value computes everything again, and most of that
is reading the same candidates and the same bookings. Here the parts are kept per
resource, for any window:

- the candidate (calendar columns, rules, page row: free_candidates.Candidate),
  catalogue data, kept with the catalogue's version read before it was (and the
  holidays' token: its calendar subject holds the holidays it follows);
- its busy rows (free_busy.py: holding bookings, closures of it and its lab, open
  offers with their expiry, its lab's opening periods) from shortly before the read
  until ``AHEAD`` later (a window further on: over that window only), kept with its
  stamp (its ``calendar_version``, its lab's and the holidays' token), read before
  the rows, and the scan's instant they were read at.

A search reads the stamps and the catalogue's version of its candidates first, in
ONE statement by id (the narrow columns of the primary key's rows); a candidate is
used only at the same version, its rows only with the same stamp and when they
cover the window. Triggers change the versions in the transaction of every change
(booking/calendar_cache.py relies on the same), to random values, so equal means
unchanged. The clock needs no version: the scan cuts each window by the lead time
and horizon as before, and an offer past its expiry is left out when used; rows
serve only scans whose instant is not before theirs (an offer expired then was not
read: a clock set back would miss it). What differs is read and replaced; the least
recently used resources are dropped past ``FREE_TIME_MEMO_RESOURCES`` or their rows'
budget (0: nothing is kept, every search reads as before). Each resource's free time
painted from its rows is kept with them (free_painted.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import Select, select

from labshare.booking.availability import buffer_of
from labshare.booking.rules import Span
from labshare.catalogue import free_candidates, free_page
from labshare.catalogue.free_busy import Busy, Offer, Periods, busy_rows
from labshare.catalogue.free_candidates import Candidate
from labshare.extensions import db
from labshare.models import CatalogueVersion, Instrument, Resource

EXTENSION = "labshare.free_memo"
DEFAULT_RESOURCES = 5000
#: how far beyond the read's instant a resource's rows are read when they are kept:
#: the windows people ask are mostly within the next weeks
AHEAD = dt.timedelta(days=32)
#: rows kept per resource on average at most (FreeMemo's budget)
ROWS_PER_RESOURCE = 40

if TYPE_CHECKING:
    from labshare.catalogue import free_painted

_resource = Resource.__table__
_instrument = Instrument.__table__


@dataclass(frozen=True)
class Rows:
    stamp: tuple[Any, Any, Any]
    #: the span the rows were read over
    lo: dt.datetime
    hi: dt.datetime
    #: the instant the offers were read at (one expired then was not read)
    at: dt.datetime
    held: tuple[Span, ...]
    closed: tuple[Span, ...]
    lab_closed: tuple[Span, ...]
    offers: tuple[Offer, ...]
    periods: Periods

    @property
    def size(self) -> int:
        """Rows it holds (for the memo's budget)."""
        n = len(self.held) + len(self.closed) + len(self.lab_closed) + len(self.offers)
        return n + len(self.periods)


@dataclass(frozen=True)
class _Kept:
    version: Any
    candidate: Candidate
    rows: Rows | None = None
    painted: free_painted.Painted | None = None


class FreeMemo:
    """Resource id → what is kept of it, least recently used dropped first, past
    ``size`` resources or ``ROWS_PER_RESOURCE`` times as many rows (a busy
    instrument's month can be hundreds of bookings)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.budget = size * ROWS_PER_RESOURCE
        self.lock = threading.Lock()
        self.kept: OrderedDict[int, _Kept] = OrderedDict()
        self.rows = 0  # the rows of what is kept
        self.reads = 0  # candidates and rows read (not found kept): for tests

    def get(self, rid: int) -> _Kept | None:
        with self.lock:
            found = self.kept.get(rid)
            if found is not None:
                self.kept.move_to_end(rid)
            return found

    def get_many(self, rids: Sequence[int]) -> list[_Kept | None]:
        """``get`` of each of ``rids``, under one taking of the lock."""
        with self.lock:
            found = [self.kept.get(rid) for rid in rids]
            for rid, kept in zip(rids, found, strict=True):
                if kept is not None:
                    self.kept.move_to_end(rid)
            return found

    def put(self, rid: int, kept: _Kept) -> None:
        if kept.rows is not None and _size(kept) > self.budget // 8:
            # rows that would push out much of the rest: only the candidate is kept
            kept = dataclasses.replace(kept, rows=None, painted=None)
        with self.lock:
            old = self.kept.pop(rid, None)
            self.rows += _size(kept) - _size(old)
            self.kept[rid] = kept
            while self.kept and (len(self.kept) > self.size or self.rows > self.budget):
                self.rows -= _size(self.kept.popitem(last=False)[1])

    def paint(self, rid: int, kept: _Kept, painted: free_painted.Painted) -> None:
        """Keep ``painted`` with ``kept``, unless another request replaced it since or
        it would take more than an eighth of the budget (as ``put``'s rows)."""
        with self.lock:
            if self.kept.get(rid) is not kept:
                return
            replaced = dataclasses.replace(kept, painted=painted)
            if _size(replaced) > self.budget // 8:
                return
            self.kept[rid] = replaced
            self.rows += _size(self.kept[rid]) - _size(kept)
            while self.kept and self.rows > self.budget:
                self.rows -= _size(self.kept.popitem(last=False)[1])

    def clear(self) -> None:
        with self.lock:
            self.kept.clear()
            self.rows = self.reads = 0


def _size(kept: _Kept | None) -> int:
    """Rows counted for an entry: its candidate's one, its calendar rows and its
    painted free spans, eight to a row (a span is two 8-byte integers; a row, a tuple
    of two datetimes, about 150 bytes)."""
    if kept is None:
        return 0
    painted = -(-len(kept.painted.bounds) // 16) if kept.painted is not None else 0
    return 1 + (kept.rows.size if kept.rows is not None else 0) + painted


def memo_of(app: Any) -> FreeMemo:
    found = app.extensions.get(EXTENSION)
    if not isinstance(found, FreeMemo):
        found = FreeMemo(int(app.config.get("FREE_TIME_MEMO_RESOURCES", DEFAULT_RESOURCES)))
        app.extensions[EXTENSION] = found
    return found


def active() -> FreeMemo | None:
    """The app's memo, None when it keeps nothing."""
    found = memo_of(current_app._get_current_object())  # type: ignore[attr-defined]
    return found if found.size > 0 else None


def enabled() -> bool:
    """Whether the app keeps anything (FREE_TIME_MEMO_RESOURCES above 0)."""
    return active() is not None


@functools.cache
def _build(dialect: str) -> Select[Any]:
    version = select(CatalogueVersion.version).where(CatalogueVersion.id == 1)
    return free_candidates.stamps_of_ids(
        dialect, version.scalar_subquery().label("catalogue_version")
    )


def _stamps(ids: Sequence[int]) -> tuple[Any, dict[int, tuple[Any, Any, Any]]]:
    """The catalogue's version and the stamps of ``ids`` (those that exist), now."""
    dialect = db.session.get_bind().dialect.name
    rows = db.session.connection().execute(_build(dialect), {"ids": list(ids)}).all()
    version = None
    stamps: dict[int, tuple[Any, Any, Any]] = {}
    # by position (``stamps_of_ids``' columns, then the version): a row's names cost more
    for rid, own, lab, token, read in rows:
        stamps[rid], version = (own, lab, token), read
    return version, stamps


class VersionMoved(Exception):
    """The catalogue's version read with the stamps is not the one ``expecting``."""


@dataclass
class _Expected:
    version: Any
    checked: bool = False


_EXPECTED: ContextVar[_Expected | None] = ContextVar("labshare_free_memo_expected", default=None)


@contextlib.contextmanager
def expecting(version: Any) -> Iterator[_Expected]:
    """Within, the candidates' reads check that the catalogue's version (read with
    their stamps) is ``version``, raising VersionMoved when not; ``checked`` tells
    whether one was read (a search from a list kept without reading the version is
    right only then)."""
    expected = _Expected(version)
    token = _EXPECTED.set(expected)
    try:
        yield expected
    finally:
        _EXPECTED.reset(token)


def of_ids(ids: Sequence[int]) -> list[Candidate]:
    """``free_page.of_ids``: the candidates of ``ids`` with their page rows, in that
    order; those kept at the catalogue's version now are not read again (each with
    its stamp as read now)."""
    memo = active()
    if memo is None or not ids:
        return free_page.of_ids(ids)
    version, stamps = _stamps(ids)
    expected = _EXPECTED.get()
    if expected is not None:
        if version is None or version != expected.version:
            raise VersionMoved
        expected.checked = True
    if version is None:  # no version row: nothing may be kept
        return free_page.of_ids(ids)
    out: dict[int, Candidate] = {}
    missing: dict[int, _Kept | None] = {}
    for rid, kept in zip(ids, memo.get_many(ids), strict=True):
        stamp = stamps.get(rid)
        if stamp is None:
            continue  # no such resource (any more)
        # its subject's holidays (``days``) were read with the holidays' token
        if kept is not None and kept.version == version and _token(kept) == stamp[2]:
            c = kept.candidate
            out[rid] = c if c.stamp == stamp else Candidate(c.subject, c.rules, c.page_row, stamp)
        else:
            missing[rid] = kept
    if missing:
        memo.reads += len(missing)
        for c in free_page.of_ids(list(missing)):
            out[c.subject.id] = c
            # its rows (if kept) depend on its stamp only: they stay, and so does
            # their painting (used only for a candidate with the same calendar
            # columns: most catalogue changes are elsewhere)
            old = missing[c.subject.id]
            kept = _Kept(version, c, old.rows, old.painted) if old else _Kept(version, c)
            memo.put(c.subject.id, kept)
    return [out[i] for i in ids if i in out]


def _token(kept: _Kept) -> Any:
    stamp = kept.candidate.stamp
    return None if stamp is None else stamp[2]


def busy_of(
    batch: Sequence[Candidate],
    start: dt.datetime,
    end: dt.datetime,
    lab_ids: Sequence[int],
    now: dt.datetime,
) -> Busy:
    """``busy_rows`` of ``batch`` over [start, end) at the scan's instant ``now``, with
    the opening periods of each candidate's lab (``lab_ids`` without the memo): the
    kept rows of those whose stamp is the one kept, which cover the span and were read
    no later than ``now`` (an offer expired then was not read: a clock set back would
    miss it); the others' read in ONE statement and kept (when the candidate was read
    with its stamp)."""
    memo = active()
    if memo is None:
        return busy_rows([c.subject for c in batch], start, end, lab_ids, now)
    versions = lab_versions(batch)
    out = _Parts()
    missing: list[Candidate] = []
    found: dict[int, _Kept | None] = {}
    for c in batch:
        kept = found[c.subject.id] = memo.get(c.subject.id)
        rows = kept.rows if kept is not None else None
        if (
            rows is not None
            and current(c, rows, now, versions)
            and rows.lo <= start
            and end <= rows.hi
        ):
            _add(out, c, rows)
        else:
            missing.append(c)
    if not missing:
        return out.busy()
    memo.reads += len(missing)
    # Near windows: from before any window a later search can ask (its start is cut
    # to the lead time, then widened by the buffer) to AHEAD, so that any window
    # there is answered from these rows. A window further on: its own span only (the
    # rows from now to there would be mostly unused).
    buffer = max(buffer_of(c.subject) for c in missing)
    far = end > now + AHEAD
    lo, hi = (start, end) if far else (min(start, now - buffer), now + AHEAD)
    labs = {c.subject.lab_id for c in missing}  # the others come with their kept rows
    read = busy_rows([c.subject for c in missing], lo, hi, sorted(labs), now)
    for c in missing:
        s = c.subject
        rows = Rows(
            stamp=c.stamp,  # type: ignore[arg-type]  # None: not kept below
            lo=lo,
            hi=hi,
            at=now,
            held=tuple(read.held.get(s.id, ())),
            closed=tuple(read.closed.get(s.id, ())) if s.id != s.lab_id else (),
            lab_closed=tuple(read.closed.get(s.lab_id, ())),
            offers=tuple(read.offers.get(s.id, ())),
            periods=read.periods.get(s.lab_id, ()),
        )
        _add(out, c, rows)
        if c.stamp is not None:
            kept = found[s.id]
            if far and kept and kept.rows and kept.rows.stamp == c.stamp and _near(kept.rows):
                continue  # a far window's rows do not replace valid near windows' ones
            # rows depend on the stamp only; a candidate read elsewhere is kept at no
            # version (never found by ``of_ids``) until read there
            memo.put(
                s.id,
                _Kept(None, c, rows)
                if kept is None
                else dataclasses.replace(kept, rows=rows, painted=None),
            )
    return out.busy()


def lab_versions(batch: Sequence[Candidate]) -> dict[int, set[Any]]:
    """The lab versions the batch's candidates were read with, by lab. A lab's rows are
    shared by its candidates in the answer: when those of one lab were read with two
    versions (two reads of candidates with a change of the lab between them), their
    kept rows are not used (``busy_of`` reads all of them again)."""
    versions: dict[int, set[Any]] = {}
    for c in batch:
        versions.setdefault(c.subject.lab_id, set()).add(c.stamp and c.stamp[1])
    return versions


def current(c: Candidate, rows: Rows, now: dt.datetime, versions: dict[int, set[Any]]) -> bool:
    """Whether ``rows`` kept are ``c``'s now: read at the stamp ``c`` was read with, no
    later than the scan's instant ``now`` (an offer expired then was not read: a clock
    set back would miss it), and its lab read at one version in the batch."""
    return (
        c.stamp is not None
        and rows.stamp == c.stamp
        and rows.at <= now
        and len(versions[c.subject.lab_id]) == 1
    )


def _near(rows: Rows) -> bool:
    """Rows read for near windows: from before their read (a far window's start
    after it)."""
    return rows.lo <= rows.at


@dataclass
class _Parts:
    """A ``Busy`` being put together from kept rows and rows read."""

    held: dict[int, Sequence[Span]] = dataclasses.field(default_factory=dict)
    closed: dict[int, Sequence[Span]] = dataclasses.field(default_factory=dict)
    offers: dict[int, Sequence[Offer]] = dataclasses.field(default_factory=dict)
    periods: dict[int, Periods] = dataclasses.field(default_factory=dict)

    def busy(self) -> Busy:
        return Busy(self.held, self.closed, self.offers, self.periods)


def _add(out: _Parts, c: Candidate, rows: Rows) -> None:
    s = c.subject
    out.held[s.id] = rows.held
    if s.id != s.lab_id:
        out.closed[s.id] = rows.closed
    # the same lab version for all of the batch's candidates of the lab (busy_of)
    out.closed[s.lab_id] = rows.lab_closed
    out.offers[s.id] = rows.offers
    out.periods[s.lab_id] = rows.periods


__all__ = [
    "AHEAD",
    "DEFAULT_RESOURCES",
    "EXTENSION",
    "FreeMemo",
    "Rows",
    "VersionMoved",
    "active",
    "busy_of",
    "current",
    "enabled",
    "expecting",
    "lab_versions",
    "memo_of",
    "of_ids",
]
