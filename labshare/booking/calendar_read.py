"""What a calendar's first render reads, in one statement.

A cache hit needs the versions alone (``STAMP``: one indexed query, which on
PostgreSQL goes to the driver's libpq connection as a prepared statement of its
own, see ``stamp``). A first
render needs those and, besides, the holding bookings, the closures of the resource
and of its lab, the open offers to the waitlist and the lab's opening periods:
``CALENDAR`` returns them all, one UNION ALL whose first branch is the ``SUBJECT``
row and whose other branches are each a range scan of their table's index, so a
first render costs one round trip, and everything it reads comes from one snapshot
(one statement), the versions included.

The buffer of the rules widens the window the bookings are read in, and the buffer
is in the row the same statement returns: the statement reads a window widened by
``MARGIN``, and ``split`` keeps exactly what the old, exact query kept, so the
document is the same. A buffer longer than ``MARGIN`` (none in practice) makes
``split`` answer None, and the caller reads again with the exact window.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import weakref
from collections import namedtuple
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg import pq
from sqlalchemy import (
    Connection,
    Integer,
    String,
    Time,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    text,
)

from labshare.booking import workdays
from labshare.booking.availability import OpeningPeriods
from labshare.booking.rules import MAX_BOOKING_SPAN, Span
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingRules,
    Closure,
    Institute,
    Instrument,
    Lab,
    OpeningPeriod,
    Resource,
    UTCDateTime,
    WaitlistEntry,
)

#: How far beyond the window the statement reads bookings, closures and offers, so
#: that any buffer up to it needs no second read (a day: far beyond any in use).
MARGIN = dt.timedelta(days=1)

_resource = Resource.__table__
_lab_row = Resource.__table__.alias("lab_resource")
_instrument = Instrument.__table__
_lab = Lab.__table__
_institute = Institute.__table__
_own_rules = BookingRules.__table__.alias("own_rules")  # booking policies: the buffer
_lab_rules = BookingRules.__table__.alias("lab_rules")
_holiday_lab = Lab.__table__.alias("holiday_lab")  # workdays: the lab's opt-out


def _part(column: Any) -> Any:
    return func.coalesce(cast(column, String), literal_column("''", String))


#: Every version a cached document depends on, as one string: the resource's and its
#: lab's ``calendar_version`` (triggers change them with everything else the document
#: shows), the zone, and what its holidays depend on (``_Versions`` in
#: calendar_cache.py has them apart, for the ETag). A cached document is served only
#: while this is exactly the string it was rendered with (the same expression on the
#: same database, so the same string for the same versions).
_STAMP = functools.reduce(
    lambda a, b: a + literal_column("'|'", String) + b,
    [
        _part(_resource.c.calendar_version),
        _part(_lab_row.c.calendar_version),
        _part(_institute.c.timezone),
        _part(_institute.c.follows_holidays),
        _part(_institute.c.province_code),
        _part(_holiday_lab.c.follows_holidays),
        _part(workdays.token_column()),
    ],
)

#: The versions a cached document must match, and every column a render needs.
SUBJECT = (
    select(
        _resource.c.kind,
        _resource.c.status,
        _resource.c.calendar_version,
        _instrument.c.lab_id,
        _instrument.c.calibration_valid_until,
        _lab.c.capacity,
        _lab_row.c.calendar_version.label("lab_version"),
        _institute.c.timezone,
        _own_rules.c.id.label("own_rules_id"),
        _own_rules.c.buffer_minutes.label("own_buffer"),
        _lab_rules.c.buffer_minutes.label("lab_buffer"),
        # workdays: what the holidays and make-up workdays of the document depend on
        _institute.c.follows_holidays.label("institute_follows"),
        _institute.c.province_code,
        _holiday_lab.c.follows_holidays.label("lab_follows"),
        workdays.token_column().label("calendar_token"),
        _STAMP.label("stamp"),
    )
    .select_from(
        _resource.join(_institute, _institute.c.id == _resource.c.institute_id)
        .outerjoin(_instrument, _instrument.c.id == _resource.c.id)
        .outerjoin(_lab, _lab.c.id == _resource.c.id)
        .outerjoin(_lab_row, _lab_row.c.id == _instrument.c.lab_id)
        # booking_rules rows change the resource's calendar_version (migration 0006)
        .outerjoin(_own_rules, _own_rules.c.resource_id == _resource.c.id)
        .outerjoin(_lab_rules, _lab_rules.c.resource_id == _instrument.c.lab_id)
        .outerjoin(
            _holiday_lab,
            _holiday_lab.c.id == func.coalesce(_instrument.c.lab_id, _resource.c.id),
        )
    )
    .where(_resource.c.id == bindparam("rid", type_=Integer))
)

#: A cache hit's one query: the stamp alone, with only the joins it needs.
STAMP = (
    select(_STAMP.label("stamp"))
    .select_from(
        _resource.join(_institute, _institute.c.id == _resource.c.institute_id)
        .outerjoin(_instrument, _instrument.c.id == _resource.c.id)
        .outerjoin(_lab_row, _lab_row.c.id == _instrument.c.lab_id)
        .outerjoin(
            _holiday_lab,
            _holiday_lab.c.id == func.coalesce(_instrument.c.lab_id, _resource.c.id),
        )
    )
    .where(_resource.c.id == bindparam("rid", type_=Integer))
)

# -- the first render's statement ------------------------------------------------------

SUBJECT_ROW, HELD, CLOSED, OFFERED, PERIOD = 0, 1, 2, 3, 4

if {str(s) for s in HOLDING_STATUSES} != {"pending", "approved"}:  # spelled out below
    raise RuntimeError("HOLDING_STATUSES changed: update calendar_read")

_key_resource = Resource.__table__.alias("key_resource")
_key_instrument = Instrument.__table__.alias("key_instrument")
#: The lab whose closures and opening hours apply: the instrument's, or the lab itself.
_lab_key = (
    select(func.coalesce(_key_instrument.c.lab_id, _key_resource.c.id))
    .select_from(
        _key_resource.outerjoin(_key_instrument, _key_instrument.c.id == _key_resource.c.id)
    )
    .where(_key_resource.c.id == bindparam("rid", type_=Integer))
    .scalar_subquery()
)


def _nulls() -> list[Any]:
    """The subject's columns, empty (the rows of the other branches)."""
    return [cast(null(), c.type).label(c.name) for c in SUBJECT.selected_columns]


def _tail(kind: int, s: Any = None, e: Any = None, wd: Any = None, o: Any = None, c: Any = None):  # type: ignore[no-untyped-def]
    return [
        literal_column(str(kind), Integer).label("k"),
        s if s is not None else cast(null(), UTCDateTime()).label("s"),
        e if e is not None else cast(null(), UTCDateTime()).label("e"),
        wd if wd is not None else cast(null(), Integer()).label("wd"),
        o if o is not None else cast(null(), Time()).label("o"),
        c if c is not None else cast(null(), Time()).label("c"),
    ]


_rid = bindparam("rid", type_=Integer)
_wstart = bindparam("wstart", type_=UTCDateTime())
_wend = bindparam("wend", type_=UTCDateTime())
_now = bindparam("now", type_=UTCDateTime())
_b = Booking.__table__
_c = Closure.__table__
_w = WaitlistEntry.__table__
_p = OpeningPeriod.__table__

CALENDAR = SUBJECT.add_columns(*_tail(SUBJECT_ROW)).union_all(
    select(*_nulls(), *_tail(HELD, _b.c.start_at, _b.c.end_at)).where(
        _b.c.resource_id == _rid,
        _b.c.start_at < _wend,
        _b.c.start_at > bindparam("wspan", type_=UTCDateTime()),
        _b.c.end_at > _wstart,
        text("booking.status IN ('pending', 'approved')"),
    ),
    select(*_nulls(), *_tail(CLOSED, _c.c.start_at, _c.c.end_at)).where(
        _c.c.resource_id.in_([_rid, _lab_key]),
        _c.c.start_at < _wend,
        _c.c.end_at > _wstart,
    ),
    # waitlist: open, unexpired offers hold their slot
    select(*_nulls(), *_tail(OFFERED, _w.c.start_at, _w.c.end_at)).where(
        _w.c.resource_id == _rid,
        text("waitlist_entry.status = 'offered'"),
        _w.c.offer_expires_at > _now,
        _w.c.start_at < _wend,
        _w.c.end_at > _wstart,
    ),
    select(*_nulls(), *_tail(PERIOD, wd=_p.c.weekday, o=_p.c.opens, c=_p.c.closes)).where(
        _p.c.lab_id == _lab_key
    ),
)


def params(
    resource_id: int, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> dict[str, Any]:
    return {
        "rid": resource_id,
        "wstart": start - MARGIN,
        "wend": end + MARGIN,
        "wspan": start - MARGIN - MAX_BOOKING_SPAN,
        "now": now,
    }


@dataclass
class Read:
    subject: Any  # the SUBJECT row
    periods: OpeningPeriods
    held: list[Span]
    closed: list[Span]
    offers: list[Span]


def split(
    rows: Iterable[Any], start: dt.datetime, end: dt.datetime, buffer: dt.timedelta
) -> Read | None:
    """The rows of ``CALENDAR``, sorted by kind, each list cut to what the exact
    query over [start - buffer, end + buffer) returns (``availability._BUSY``).
    None when there is no subject row (an unknown resource)."""
    subject = None
    periods: OpeningPeriods = []
    spans: tuple[list[Span], list[Span], list[Span]] = ([], [], [])
    for row in rows:
        k = row.k
        if k == SUBJECT_ROW:
            subject = row
        elif k == PERIOD:
            periods.append((int(row.wd), row.o, row.c))
        else:
            spans[k - 1].append((row.s, row.e))
    if subject is None:
        return None
    lo, hi = start - buffer, end + buffer
    span_start = lo - MAX_BOOKING_SPAN
    held = [(s, e) for s, e in spans[0] if s < hi and s > span_start and e > lo]
    closed = [(s, e) for s, e in spans[1] if s < hi and e > lo]
    offers = [(s, e) for s, e in spans[2] if s < hi and e > lo]
    return Read(subject, periods, held, closed, offers)


# -- sent through the driver -----------------------------------------------------------


class _Prepared:
    """A statement compiled once for one dialect, with the bind and result
    processing SQLAlchemy would apply, so that it can be sent through the driver
    directly: SQLAlchemy's execution (context, result object, rows) costs several
    times what these statements cost to run."""

    def __init__(self, stmt: Any, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.defaults = dict(compiled.params)
        self.binds = {
            name: proc
            for name, bind in compiled.binds.items()
            if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        self.order: list[str] | None = (
            list(compiled.positiontup) if compiled.positional and compiled.positiontup else None
        )
        columns = list(stmt.selected_columns)
        self.row: Any = namedtuple("CalendarRow", [c.name for c in columns])  # type: ignore[misc]
        self.results = [
            (i, proc)
            for i, c in enumerate(columns)
            if (proc := c.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
        ]

    def parameters(self, values: dict[str, Any]) -> Any:
        merged = {**self.defaults, **values}
        for name, proc in self.binds.items():
            merged[name] = proc(merged[name])
        if self.order is not None:
            return [merged[name] for name in self.order]
        return merged

    def rows(self, raw: Iterable[Any]) -> list[Any]:
        out = []
        make = self.row._make
        results = self.results
        for values in raw:
            if results:
                values = list(values)
                for i, proc in results:
                    value = values[i]
                    if value is not None:  # each processor gives None for None
                        values[i] = proc(value)
            out.append(make(values))
        return out


_PREPARED: dict[tuple[int, str], _Prepared] = {}


def _prepared(stmt: Any, dialect: Any) -> _Prepared:
    key = (id(stmt), dialect.name)
    found = _PREPARED.get(key)
    if found is None:
        found = _PREPARED[key] = _Prepared(stmt, dialect)
    return found


def execute(reader: Any, stmt: Any, values: dict[str, Any]) -> list[Any]:
    """The rows of ``stmt`` (``SUBJECT``, ``STAMP`` or ``CALENDAR``) with ``values``, typed as
    SQLAlchemy types them. On a Connection (the calendar's own: the fast path, or a
    request outside a transaction) sent through the driver, the engine's
    ``before_cursor_execute`` listeners told as for any statement (the write guard
    and the statement counters see it); on a Session, through SQLAlchemy."""
    if not isinstance(reader, Connection):
        return list(reader.execute(stmt, values))
    dialect = reader.dialect
    prepared = _prepared(stmt, dialect)
    params = prepared.parameters(values)
    driver = reader.connection.driver_connection
    assert driver is not None  # a live connection: checked out for this reader
    try:
        cursor = driver.cursor()
        try:
            if reader._has_events or reader.engine._has_events:
                reader.dispatch.before_cursor_execute(
                    reader, cursor, prepared.sql, params, None, False
                )
            if dialect.name == "postgresql":
                cursor.execute(prepared.sql, params, prepare=True)
            else:
                cursor.execute(prepared.sql, params)
            return prepared.rows(cursor.fetchall())
        finally:
            cursor.close()
    except Exception:
        # what SQLAlchemy would do on a lost connection, whatever went wrong: the
        # driver's connection is not trusted again
        reader.invalidate()
        raise


# -- a cache hit's query, through libpq ------------------------------------------------

#: The name of ``STAMP``'s prepared statement on a PostgreSQL connection.
_STAMP_NAME = b"labshare_calendar_stamp"
#: The driver connections ``STAMP`` has been prepared on, each with the Python name of
#: its encoding (a new connection is a new object: it prepares it again).
_STAMP_READY: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


#: invalid_sql_statement_name: no prepared statement of that name.
_NO_SUCH_STATEMENT = b"26000"
#: duplicate_prepared_statement: prepared already.
_PREPARED_ALREADY = b"42P05"


def _prepare_stamp(pgconn: Any, numbered: bytes) -> None:
    made = pgconn.prepare(_STAMP_NAME, numbered)
    if made.status != pq.ExecStatus.COMMAND_OK and (
        made.error_field(pq.DiagnosticField.SQLSTATE) != _PREPARED_ALREADY
    ):
        raise RuntimeError(made.get_error_message())


@functools.lru_cache(maxsize=4)
def _stamp_sql(dialect: Any) -> tuple[str, bytes, tuple[str, ...]]:
    """``STAMP`` for libpq: the SQL as SQLAlchemy compiles it (for the listeners) and
    with numbered parameters, and the names of the parameters in their order."""
    compiled = STAMP.compile(dialect=dialect)
    sql = str(compiled)
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    numbered = re.sub(r"%\(([a-z_0-9]+)\)s", number, sql).replace("%%", "%")
    return sql, numbered.encode(), tuple(names)


def stamp(reader: Any, resource_id: int) -> str | None:
    """``STAMP`` of ``resource_id``; None for an unknown resource. On a PostgreSQL
    Connection (the calendar's own, in autocommit mode) sent through the driver's
    libpq connection as a prepared statement of its own: a cache hit is this one
    query, and psycopg's cursor (adapters, the prepared-statement cache, the result
    object, rows) cost the worker more CPU than the query costs the server. The
    engine's ``before_cursor_execute`` listeners are told as for any statement (the
    statement counters see it)."""
    if not isinstance(reader, Connection) or reader.dialect.name != "postgresql":
        rows = execute(reader, STAMP, {"rid": resource_id})
        return str(rows[0].stamp) if rows else None
    sql, numbered, names = _stamp_sql(reader.dialect)
    values = {**_prepared(STAMP, reader.dialect).defaults, "rid": resource_id}
    params = [str(int(values[name])).encode() for name in names]
    driver = reader.connection.driver_connection
    assert driver is not None  # a live connection: checked out for this reader
    try:
        if (reader._has_events or reader.engine._has_events) and (
            reader.dispatch.before_cursor_execute
        ):
            reader.dispatch.before_cursor_execute(reader, None, sql, values, None, False)
        pgconn = driver.pgconn
        encoding = _STAMP_READY.get(driver)
        if encoding is None:
            _prepare_stamp(pgconn, numbered)
            encoding = _STAMP_READY[driver] = driver.info.encoding
        result = pgconn.exec_prepared(_STAMP_NAME, params)
        if (
            result.status == pq.ExecStatus.FATAL_ERROR
            and result.error_field(pq.DiagnosticField.SQLSTATE) == _NO_SUCH_STATEMENT
        ):  # dropped meanwhile (DISCARD ALL, DEALLOCATE): prepared again
            _prepare_stamp(pgconn, numbered)
            result = pgconn.exec_prepared(_STAMP_NAME, params)
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise RuntimeError(result.get_error_message())
        if not result.ntuples:
            return None
        raw = result.get_value(0, 0)
        assert raw is not None  # every part is coalesced
        return bytes(raw).decode(encoding)
    except Exception:
        # as ``execute``: the driver's connection is not trusted again
        reader.invalidate()
        raise
