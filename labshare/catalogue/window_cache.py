"""Window searches (capability or text + a free window) served again while nothing
their answer depends on has changed.

A window search's answer depends on three things beyond its parameters:

1. the catalogue (the ranking, the candidates' rows and rules):
   ``catalogue_version``, read first by every search (search_cache.py);
2. the calendars of the candidates the free-time scan examined (free_time.scan):
   their bookings, closures and opening periods and their labs', the holidays.
   Database triggers change ``resource.calendar_version`` (the resource's and its
   lab's row) with each of them, and the holidays' token with the holidays, in the
   same transaction (the calendar cache, booking/calendar_cache.py, relies on the
   same versions). Each candidate was read with those versions (its ``stamp``)
   before its bookings were, so a stamp is never newer than the data it guards;
3. the clock: a candidate's lead time and horizon cut its window, and an open
   waitlist offer expires without a version change. ``Scan.stable_until`` is the
   first instant the clock could change the answer.

A ``Guard`` records the examined candidates' ids, a digest of their stamps, the
scan's instant and that first instant. An entry is served only at the same
catalogue version, between those two instants (a clock set back is not trusted
either), and when the candidates' versions read now (one statement by id) give
exactly the recorded digest; else the search runs again and replaces it, and an
entry found stale is dropped at once. Searches with facets (the "free
this week" count starts now) are never kept.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select

from labshare.catalogue import free_candidates
from labshare.catalogue.free_candidates import Candidate
from labshare.models import Instrument, Resource
from labshare.timeutil import utcnow

_resource = Resource.__table__
_instrument = Instrument.__table__

#: (resource id, its calendar_version, its lab's, the holidays' token)
Stamp = tuple[int, Any, Any, Any]


@dataclass(frozen=True)
class Guard:
    #: the examined candidates' ids, sorted (compact: an entry's guard is counted
    #: against the cache's budget, and up to 200 candidates are examined)
    ids: array[int]
    #: a digest of their stamps in that order
    digest: bytes
    #: served only from this instant (the scan's; a clock set back is not trusted)…
    since: dt.datetime
    #: …until before this one (UTC)
    until: dt.datetime

    @property
    def size(self) -> int:
        """Bytes it holds, roughly (for the cache's budget)."""
        return self.ids.itemsize * len(self.ids) + 200


def _digest(stamps: Sequence[Stamp]) -> bytes:
    return hashlib.blake2b(repr(tuple(stamps)).encode(), digest_size=16).digest()


def guard_of(
    examined: Sequence[Candidate], since: dt.datetime, until: dt.datetime | None
) -> Guard | None:
    """The guard of a scan's answer computed at ``since``; None when it cannot be
    kept (the clock changes it already, a candidate was read without its versions,
    or one was read twice with different versions)."""
    if until is None or until <= utcnow():
        return None
    stamps: dict[int, Stamp] = {}
    for c in examined:
        if c.stamp is None:
            return None
        stamp = (c.subject.id, *c.stamp)
        if stamps.setdefault(c.subject.id, stamp) != stamp:
            return None
    ordered = [stamps[i] for i in sorted(stamps)]
    return Guard(array("q", sorted(stamps)), _digest(ordered), since, until)


@functools.cache
def _statement(dialect: str) -> Select[Any]:
    return free_candidates.stamps_of_ids(dialect)


def holds(guard: Guard, conn: Connection | Any) -> bool:
    """Whether ``guard`` still holds: before its instant, and every stamp as read now
    on ``conn`` (a Connection or the request's Session)."""
    if not guard.since <= utcnow() < guard.until:
        return False
    dialect = conn.get_bind().dialect.name if hasattr(conn, "get_bind") else conn.dialect.name
    rows = conn.execute(_statement(dialect), {"ids": guard.ids.tolist()})
    return _digest([tuple(row) for row in rows]) == guard.digest


__all__ = ["Guard", "guard_of", "holds"]
