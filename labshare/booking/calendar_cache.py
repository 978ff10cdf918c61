"""The availability document of one resource and window, rendered once per process
and served again while nothing it depends on has changed.

Correct across processes: ``resource.calendar_version`` is changed by database
triggers (migration 0004) in the same transaction as every change that affects a
resource's availability, and an instrument's calendar also depends on its lab's
row. Each request reads those versions (one indexed query, which also returns
every column the computation needs); an entry is served only when they are
exactly the versions it was rendered at. The versions are read before the
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
FORMAT = "1"
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
            tuple[int, dt.datetime, dt.datetime], tuple[_Versions, CalendarDocument]
        ] = OrderedDict()
        self._weeks: OrderedDict[_WeekKey, WeekShape] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.kept = _KeptConnection()

    def document(
        self, key: tuple[int, dt.datetime, dt.datetime], versions: _Versions
    ) -> CalendarDocument | None:
        with self._lock:
            entry = self._docs.get(key)
            if entry is None or entry[0] != versions:
                self.misses += 1
                return None
            self._docs.move_to_end(key)
            self.hits += 1
            return entry[1]

    def store(
        self, key: tuple[int, dt.datetime, dt.datetime], versions: _Versions, doc: CalendarDocument
    ) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._docs[key] = (versions, doc)
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


class _KeptConnection:
    """PostgreSQL: one pooled connection that the process keeps checked out, in
    autocommit mode, for the calendar reads: a cache hit then costs the one query
    and nothing else (no checkout, no switch to autocommit and back, no BEGIN, no
    ROLLBACK). A second thread that finds it busy uses a connection of its own
    from the pool. It goes back to the pool after sitting idle, so that the pool's
    idle ping (labshare/database.py) sees it, and now and then so that
    ``pool_recycle`` applies; after an error it is dropped."""

    IDLE_SECONDS = 10.0
    MAX_AGE_SECONDS = 300.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._born = 0.0
        self._used = 0.0

    @contextlib.contextmanager
    def reader(self, engine: Engine) -> Iterator[Connection]:
        if not self._lock.acquire(blocking=False):
            with engine.connect() as own:
                yield own.execution_options(isolation_level="AUTOCOMMIT")
            return
        try:
            now = time.monotonic()
            conn: Connection | None = self._conn
            if conn is not None and (
                conn.closed
                or conn.invalidated
                or now - self._used > self.IDLE_SECONDS
                or now - self._born > self.MAX_AGE_SECONDS
                or conn.engine.pool is not engine.pool  # disposed meanwhile
            ):
                self._drop()
                conn = None
            if conn is None:
                conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._conn, self._born = conn, now
            try:
                yield conn
            except BaseException:
                self._drop()
                raise
            self._used = time.monotonic()
        finally:
            self._lock.release()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()


@contextlib.contextmanager
def _reader() -> Iterator[Reader]:
    """PostgreSQL: the kept connection (above), in autocommit mode, so that a cache
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
    PostgreSQL: the kept autocommit connection, as ``_reader``; SQLite: a pooled
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
    ``store`` when current (one query), else rendered and stored. None for an
    unknown resource. Needs no app context."""
    key = (resource_id, start, end)
    if store.has(key):
        found = calendar_read.execute(reader, calendar_read.SUBJECT, {"rid": resource_id})
        if not found:
            return None
        doc = store.document(key, _versions_of(found[0]))
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
    if store.has(key):  # another thread may have rendered it meanwhile
        doc = store.document(key, versions)
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
    store.store(key, versions, doc)
    return doc
