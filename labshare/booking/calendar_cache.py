"""The availability document of one resource and window, rendered once per process
and served again while nothing it depends on has changed.

Correct across processes: ``resource.calendar_version`` is changed by database
triggers (migration 0004) in the same transaction as every change that affects a
resource's availability, and an instrument's calendar also depends on its lab's
row. Each request reads those versions (one indexed query, ``calendar_read.STAMP``:
they come as one string, the stamp; a first render reads them with everything else
it needs); an entry is served only when they are exactly the versions it was
rendered at. The versions are read before the
bookings and closures, so an entry is never labelled newer than its data.
The ETag is derived from the same versions. The rules' buffer (booking policies)
is part of the document: ``booking_rules`` rows change their resource's version too
(migration 0006), and the subject query reads the effective buffer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext as _
from sqlalchemy import Connection, Engine

from labshare.booking import calendar_read, workdays
from labshare.booking.availability import (
    Availability,
    CalendarSubject,
    Reader,
    WeekShape,
    _check_window,
    availability_of,
    week_shape,
)
from labshare.database import AUTOCOMMIT_READS
from labshare.errors import NotFound
from labshare.extensions import db
from labshare.models import ResourceKind, ResourceStatus
from labshare.timeutil import utcnow, zone

#: Bump when the document's shape changes, so that old ETags stop matching.
FORMAT = "2"  # 2: compact UTF-8 JSON (labshare/jsonio.py)
DEFAULT_SIZE = 4096
EXTENSION = "labshare_calendar_cache"


@dataclass(frozen=True)
class CalendarDocument:
    etag: str  # unquoted
    body: bytes  # JSON


@dataclass(frozen=True)
class _Versions:
    own: int
    lab: int
    timezone: str
    #: workdays: (token, institute follows, lab follows, province)
    calendar: tuple[str | None, bool, bool | None, str] = (None, True, None, "")


#: (opening periods, zone, window start, window end, the calendar's versions)
_WeekKey = tuple[tuple[tuple[int, dt.time, dt.time], ...], str, dt.datetime, dt.datetime, Any]


class CalendarCache:
    """A thread-safe LRU of rendered documents, and of week shapes (``week``)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._docs: OrderedDict[
            tuple[int, dt.datetime, dt.datetime], tuple[str, CalendarDocument]
        ] = OrderedDict()
        self._weeks: OrderedDict[_WeekKey, WeekShape] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.kept = _KeptConnections()

    def document(
        self, key: tuple[int, dt.datetime, dt.datetime], stamp: str
    ) -> CalendarDocument | None:
        """The document kept for ``key`` if it was rendered at ``stamp``'s versions."""
        with self._lock:
            entry = self._docs.get(key)
            if entry is None or entry[0] != stamp:
                self.misses += 1
                return None
            self._docs.move_to_end(key)
            self.hits += 1
            return entry[1]

    def store(
        self, key: tuple[int, dt.datetime, dt.datetime], stamp: str, doc: CalendarDocument
    ) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._docs[key] = (stamp, doc)
            self._docs.move_to_end(key)
            while len(self._docs) > self.size:
                self._docs.popitem(last=False)

    def has(self, key: tuple[int, dt.datetime, dt.datetime]) -> bool:
        """Whether some version of ``key``'s document is kept (then the versions are
        worth reading on their own first: most likely a hit)."""
        return key in self._docs

    def week(self, key: _WeekKey, make: Callable[[], WeekShape]) -> WeekShape:
        """The shape of a window for a lab's opening periods, zone and calendar (the
        key holds them all, so an entry never goes stale: it just ages out)."""
        with self._lock:
            found = self._weeks.get(key)
        if found is not None:
            return found
        shape = make()
        if self.size > 0:
            with self._lock:
                self._weeks[key] = shape
                while len(self._weeks) > self.size:
                    self._weeks.popitem(last=False)
        return shape

    def clear(self) -> None:
        with self._lock:
            self._docs.clear()
            self._weeks.clear()


def cache() -> CalendarCache:
    return cache_of(current_app)


def cache_of(app: Flask) -> CalendarCache:
    """The app's cache (also outside an app context: the fast path, labshare/fastpath.py)."""
    found = app.extensions.get(EXTENSION)
    if found is None:
        found = CalendarCache(int(app.config.get("CALENDAR_CACHE_SIZE", DEFAULT_SIZE)))
        app.extensions[EXTENSION] = found
    assert isinstance(found, CalendarCache)
    return found


@functools.lru_cache(maxsize=1 << 14)  # about 4 MiB at most
def _local_iso(value: dt.datetime, tz: str) -> str:
    """``value`` in ``tz``, ISO 8601: the same instants (opening and closing times,
    the hours of the grid) recur in calendar after calendar."""
    return value.astimezone(zone(tz)).isoformat()


def render(result: Availability) -> dict[str, Any]:
    tz = result.timezone
    iso = _local_iso
    return {
        "resource_id": result.resource_id,
        "timezone": tz,
        "busy": [
            {"start": iso(i.start, tz), "end": iso(i.end, tz), "reason": i.reason}
            for i in result.busy
        ],
        "free": [{"start": iso(i.start, tz), "end": iso(i.end, tz)} for i in result.free],
    }


def _etag(key: tuple[int, dt.datetime, dt.datetime], versions: _Versions) -> str:
    raw = f"{FORMAT}|{key[0]}|{key[1].isoformat()}|{key[2].isoformat()}|{versions}"
    return f"av{key[0]}-{hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()}"


class _Kept:
    """One kept connection, and when it was opened and last used."""

    __slots__ = ("born", "conn", "used")

    def __init__(self, conn: Connection, now: float) -> None:
        self.conn = conn
        self.born = now
        self.used = now


class _KeptConnections:
    """PostgreSQL: pooled connections that the process keeps checked out, in
    autocommit mode, for the calendar reads: a cache hit then costs the one query
    and nothing else (no checkout, no switch to autocommit and back, no BEGIN, no
    ROLLBACK). One per calendar read in flight, up to the pool's size: a threaded
    worker serves several requests at once, and with a single kept connection the
    other threads' reads each took a pool checkout of their own (most of them, at 4
    threads), which cost more CPU than the query. Beyond the limit a read still
    takes a connection of its own from the pool. The idle ones form a stack (the
    last used is the next used), so a burst's extra connections sit at its bottom:
    one idle for ``IDLE_SECONDS`` goes back to the pool, so that the pool's idle
    ping (labshare/database.py) sees it before its next use, and each goes back
    after ``MAX_AGE_SECONDS`` so that ``pool_recycle`` applies; after an error a
    connection is dropped. They count against the pool like the checkouts they
    replace: at most the pool's size, besides the connections the requests' own
    sessions hold (the pool's overflow covers both)."""

    IDLE_SECONDS = 10.0
    MAX_AGE_SECONDS = 300.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Kept] = []  # the least recently used first
        self._open = 0  # idle or in use

    @property
    def open(self) -> int:
        """How many connections are kept (idle or in use)."""
        return self._open

    @contextlib.contextmanager
    def reader(self, engine: Engine) -> Iterator[Connection]:
        kept = self._take(engine)
        if kept is None:  # as many in use as the pool holds
            with engine.connect() as own:
                yield own.execution_options(isolation_level="AUTOCOMMIT")
            return
        try:
            yield kept.conn
        except BaseException:
            self._drop([kept])
            raise
        kept.used = time.monotonic()
        with self._lock:
            self._idle.append(kept)

    def _take(self, engine: Engine) -> _Kept | None:
        """An idle kept connection fit for use, else a new one when under the limit,
        else None. The ones found unfit are closed (back to the pool)."""
        now = time.monotonic()
        unfit: list[_Kept] = []
        found: _Kept | None = None
        with self._lock:
            idle = self._idle
            while idle and now - idle[0].used > self.IDLE_SECONDS:
                unfit.append(idle.pop(0))
            while idle:
                candidate = idle.pop()
                if self._fit(candidate, engine, now):
                    found = candidate
                    break
                unfit.append(candidate)
            self._open -= len(unfit)
            opening = found is None and self._open < _pool_size(engine)
            if opening:
                self._open += 1
        self._close(unfit)
        if not opening:
            return found
        try:
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except BaseException:
            with self._lock:
                self._open -= 1
            raise
        return _Kept(conn, now)

    def _fit(self, kept: _Kept, engine: Engine, now: float) -> bool:
        conn = kept.conn
        return not (
            conn.closed
            or conn.invalidated
            or now - kept.used > self.IDLE_SECONDS
            or now - kept.born > self.MAX_AGE_SECONDS
            or conn.engine.pool is not engine.pool  # disposed meanwhile
        )

    def _drop(self, kept: list[_Kept]) -> None:
        with self._lock:
            self._open -= len(kept)
        self._close(kept)

    @staticmethod
    def _close(kept: list[_Kept]) -> None:
        for one in kept:
            with contextlib.suppress(Exception):
                one.conn.close()

    def close(self) -> None:
        """Give every idle kept connection back to the pool."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        self._close(idle)


def _pool_size(engine: Engine) -> int:
    size = getattr(engine.pool, "size", None)
    return max(1, int(size())) if callable(size) else 1


@contextlib.contextmanager
def _reader() -> Iterator[Reader]:
    """PostgreSQL: a kept connection (above), in autocommit mode, so that a cache
    hit costs one round trip. Each statement then sees everything committed before
    it began; as the versions are read first, the data read after them is at least
    as new. SQLite: the same reasoning with a pooled connection whose statements
    each run on their own (``AUTOCOMMIT_READS``: no BEGIN, no ROLLBACK), unless the
    request's session is already in a transaction: then that session, so that the
    calendar sees what the request itself has read or written."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        session = db.session()
        if session.in_transaction():
            yield session
            return
        with _sqlite_reader(engine) as conn:
            yield conn
        return
    with cache().kept.reader(engine) as conn:
        yield conn


@contextlib.contextmanager
def _sqlite_reader(engine: Engine) -> Iterator[Connection]:
    """A pooled SQLite connection for one calendar, checked out for it alone (never
    kept: its first BEGIN by anyone else would pin a snapshot)."""
    with engine.connect() as conn:
        yield conn.execution_options(**{AUTOCOMMIT_READS: True})


@contextlib.contextmanager
def plain_reader(store: CalendarCache, engine: Engine) -> Iterator[Connection]:
    """A reader outside any request's session (the fast path, labshare/fastpath.py).
    PostgreSQL: a kept autocommit connection, as ``_reader``; SQLite: a pooled
    connection whose statements each run on their own, as ``_reader``."""
    if engine.dialect.name == "postgresql":
        with store.kept.reader(engine) as conn:
            yield conn
    else:
        with _sqlite_reader(engine) as conn:
            yield conn


def calendar_document(resource_id: int, start: dt.datetime, end: dt.datetime) -> CalendarDocument:
    """The availability JSON of ``resource_id`` over [start, end), and its ETag.
    Raises ValidationFailed for a bad window, NotFound for an unknown resource."""
    start, end = _check_window(start, end)
    with _reader() as reader:
        doc = document_of(cache(), reader, resource_id, start, end, current_app.json.dumps)
    if doc is None:
        raise NotFound(_("No resource %(id)s.", id=resource_id))
    return doc


def _versions_of(row: Any) -> _Versions:
    """The versions an entry for ``row`` (a ``_SUBJECT`` row) must have been rendered at."""
    own = int(row.calendar_version)
    return _Versions(
        own=own,
        lab=own if row.kind == ResourceKind.LAB else int(row.lab_version),
        timezone=row.timezone or "Asia/Shanghai",
        calendar=(
            row.calendar_token,
            bool(row.institute_follows),
            None if row.lab_follows is None else bool(row.lab_follows),
            row.province_code or "",
        ),
    )


def document_of(
    store: CalendarCache,
    reader: Reader,
    resource_id: int,
    start: dt.datetime,
    end: dt.datetime,
    dumps: Callable[[Any], str],
) -> CalendarDocument | None:
    """The document of ``resource_id`` over the checked window [start, end): from
    ``store`` when current (one query: its stamp), else rendered and stored. None
    for an unknown resource. Needs no app context."""
    key = (resource_id, start, end)
    if store.has(key):
        stamp = calendar_read.stamp(reader, resource_id)
        if stamp is None:
            return None
        doc = store.document(key, stamp)
        if doc is not None:
            return doc
    # a first render (or a stale entry): everything in one statement
    rows = calendar_read.execute(
        reader, calendar_read.CALENDAR, calendar_read.params(resource_id, start, end, utcnow())
    )
    row = next((r for r in rows if r.k == calendar_read.SUBJECT_ROW), None)
    if row is None:
        return None
    is_lab = row.kind == ResourceKind.LAB
    lab_id = resource_id if is_lab else int(row.lab_id)
    versions = _versions_of(row)
    stamp = str(row.stamp)
    if store.has(key):  # another thread may have rendered it meanwhile
        doc = store.document(key, stamp)
        if doc is not None:
            return doc
    subject = CalendarSubject(
        id=resource_id,
        lab_id=lab_id,
        status=row.status,
        capacity=int(row.capacity) if is_lab else 1,
        calibration_valid_until=None if is_lab else row.calibration_valid_until,
        timezone=versions.timezone,
        buffer_minutes=int(
            (row.own_buffer if row.own_rules_id is not None else row.lab_buffer) or 0
        ),
        days=workdays.days_for(
            versions.calendar[0],
            institute_follows=versions.calendar[1],
            lab_follows=versions.calendar[2],
            region=versions.calendar[3],
            reader=reader,
        ),
    )
    buffer = (
        dt.timedelta(minutes=subject.buffer_minutes)
        if subject.buffer_minutes > 0 and subject.capacity <= 1
        else dt.timedelta(0)
    )
    read = calendar_read.split(rows, start, end, buffer)
    assert read is not None  # the subject row is there
    # a buffer beyond the widened read: availability_of reads them over the exact window
    busy = (read.held, read.closed, read.offers) if buffer <= calendar_read.MARGIN else None
    week = None
    if row.status == ResourceStatus.AVAILABLE:
        periods = tuple(sorted(read.periods))
        week = store.week(
            (periods, versions.timezone, start, end, versions.calendar),
            lambda: week_shape(list(periods), versions.timezone, start, end, subject.days),
        )
    result = availability_of(
        subject, start, end, opening_periods=[], reader=reader, busy_read=busy, week=week
    )
    body = dumps(render(result)).encode() + b"\n"
    doc = CalendarDocument(etag=_etag(key, versions), body=body)
    store.store(key, stamp, doc)
    return doc
