"""The additive counters of a period and scope, from the stored days where they can be
trusted and counted live where not.

Every figure equals a count over the bookings and usage records at the time of asking.
The additive counters of institute scopes come from ``stats_daily`` (per institute and
local day) for the days no trigger marked dirty, and from a GROUP BY over the bookings
for the dirty ones. So an edit years later, an import, a restore or a scheduler that
never ran is counted at the next read (``campaign/stats_store.py``)."""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Numeric,
    and_,
    func,
    literal,
    select,
    text,
    true,
    tuple_,
    type_coerce,
)
from sqlalchemy.orm import Session

from labshare.campaign.counters import (
    _MONEY_FIELDS,
    _STORED_FIELDS,
    Counters,
    _aggregate,
    _buckets,
    counted_status,
    usage_minutes_of,
)
from labshare.campaign.periods import (
    Period,
    Scope,
    ZoneGroup,
    _midnight,
    _resource_filter,
    _wide,
    booking_window,
    zone_groups,
)
from labshare.database import is_sqlite
from labshare.extensions import db
from labshare.models import (
    Booking,
    StatsDaily,
    StatsDirty,
    UsageRecord,
)
from labshare.timeutil import zone

#: Past this many dirty (institute, local day) pairs in a window, the window is
#: counted live whole (after an upgrade or a bulk import, before the rollup job).
MAX_DIRTY_PAIRS = 400
MAX_DIRTY_DAYS = 40


def _stored_usable(scope: Scope) -> bool:
    """``stats_daily`` is per institute: lab and instrument scopes are counted live
    (they are small)."""
    return scope.kind in ("all", "province", "institute")


def _group_has(group: ZoneGroup, institute_id: int) -> bool:
    if group.others is not None:
        return institute_id not in group.others
    return institute_id in group.institute_ids


def _stored_institute_filter(column: Any, group: ZoneGroup) -> ColumnElement[bool]:
    if group.others is not None:
        return column.not_in(group.others) if group.others else true()
    return cast(ColumnElement[bool], column.in_(group.institute_ids))


#: The markers read once per ``one_reading`` (a read of several figures), by window.
_MARKERS: ContextVar[dict[tuple[dt.date, dt.date], list[tuple[int, dt.date]]] | None] = ContextVar(
    "stats_markers", default=None
)


@contextmanager
def one_reading() -> Iterator[None]:
    """Within it, the markers of a window are read once, and every statement reads one
    snapshot: the figures of one ``statistics_for`` come from one look at
    ``stats_dirty`` and the stored rows as they were then. A stored national figure is
    the national rows less the dirty institutes' stored rows plus their bookings, read
    in several statements; a ``rollup`` committing between them (PostgreSQL's READ
    COMMITTED takes a snapshot per statement) counted a cleaned day twice. SQLite's
    read transaction is one snapshot already."""
    if _MARKERS.get() is not None:
        yield
        return
    token = _MARKERS.set({})
    try:
        with _one_snapshot():
            yield
    finally:
        _MARKERS.reset(token)


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """On PostgreSQL, the session is a REPEATABLE READ, read-only one on a connection
    of its own for the duration, unless the caller's session holds changes a separate
    connection would not see."""
    session = db.session
    current = session.registry()
    if is_sqlite() or current.new or current.dirty or current.deleted or _wrote(current):
        yield
        return
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        reader = Session(bind=conn, autoflush=False, expire_on_commit=False)
        session.registry.set(cast(Any, reader))
        try:
            yield
        finally:
            session.registry.set(current)
            reader.close()


def _wrote(session: Session) -> bool:
    """Whether the session's open transaction wrote anything (PostgreSQL gives a
    transaction an id at its first write, whatever wrote it)."""
    if not session.in_transaction():
        return False
    return session.scalar(text("SELECT pg_current_xact_id_if_assigned()")) is not None


def _dirty_local_days(group: ZoneGroup, first: dt.date, end: dt.date) -> set[tuple[int, dt.date]]:
    """The (institute, local day) pairs in [first, end) that must be counted live: a
    marker of the institute names the UTC day before, on or after the local day."""
    out: set[tuple[int, dt.date]] = set()
    one = dt.timedelta(days=1)
    memo = _MARKERS.get()
    markers = None if memo is None else memo.get((first, end))
    if markers is None:
        markers = [
            (int(iid), day)
            for iid, day in db.session.execute(
                select(StatsDirty.institute_id, StatsDirty.day)
                .where(StatsDirty.day >= first - one, StatsDirty.day <= end)
                .distinct()
            )
        ]
        if memo is not None:
            memo[(first, end)] = markers
    for iid, day in markers:
        if not _group_has(group, iid):
            continue
        for local in (day - one, day, day + one):
            if first <= local < end:
                out.add((iid, local))
    return out


def _aggregate_stored(
    group: ZoneGroup,
    scope: Scope,
    edges: list[dt.date],
    key: str | None,
    into: dict[Any, Counters],
    key_of: Any = None,
) -> None:
    """Adds to ``into`` the counters of the group's bookings in the local days
    [edges[0], edges[-1]), by bucket [edges[i], edges[i + 1]) (``key`` "bucket",
    labelled by ``key_of``), by institute or in one total (``key`` None).

    Each (institute, local day) comes from ``stats_daily`` unless a marker makes it
    dirty (``_dirty_local_days``); the dirty ones are counted live from the bookings,
    so the answer is the same whether the rollup job ever ran."""
    first, end = edges[0], edges[-1]
    dirty = _dirty_local_days(group, first, end)
    wide = _wide(group)

    def live_keycol() -> Any:
        if key == "institute":
            return Booking.institute_id
        if key == "bucket":
            return _buckets(group, edges)
        return None

    by_day: dict[dt.date, list[int]] = defaultdict(list)
    for iid, local in sorted(dirty):
        by_day[local].append(iid)
    if len(dirty) > MAX_DIRTY_PAIRS or len(by_day) > MAX_DIRTY_DAYS:
        _aggregate([(booking_window(group, scope), live_keycol(), wide)], into, key_of=key_of)
        return
    inner = edges[1:-1]
    # Grouped by day (the key's order: no sort) and put into buckets here.
    keycol: Any = {
        None: literal(0),
        "institute": StatsDaily.institute_id,
        "bucket": StatsDaily.day,
    }[key]
    sums = [
        type_coerce(func.sum(getattr(StatsDaily, name)), Numeric(14, 2))
        if name in _MONEY_FIELDS
        else func.sum(getattr(StatsDaily, name))
        for name in _STORED_FIELDS
    ]
    stmt = select(keycol.label("k"), *sums).where(
        StatsDaily.day >= first,
        StatsDaily.day < end,
        _stored_institute_filter(StatsDaily.institute_id, group),
    )
    if dirty:
        stmt = stmt.where(tuple_(StatsDaily.institute_id, StatsDaily.day).not_in(sorted(dirty)))
    if key is not None:
        stmt = stmt.group_by(keycol)
    for row in db.session.execute(stmt):
        if row[1] is None:
            continue  # no stored day: SUM over nothing
        k: Any = None
        if key == "institute":
            k = row[0]
        elif key == "bucket":
            k = bisect.bisect_right(inner, row[0])
            if key_of is not None:
                k = key_of(k)
        target = into.get(k)
        if target is None:
            target = into[k] = Counters()
        for name, value in zip(_STORED_FIELDS, row[1:], strict=True):
            target.values[name] += Decimal(value or 0) if name in _MONEY_FIELDS else int(value or 0)
    # The dirty local days, live: one window per day, its dirty institutes only.
    windows = [
        (
            and_(
                Booking.start_at >= _midnight(local, group.timezone),
                Booking.start_at < _midnight(local + dt.timedelta(days=1), group.timezone),
                Booking.institute_id.in_(iids),
                _resource_filter(Booking.resource_id, scope),
            ),
            live_keycol(),
            False,
        )
        for local, iids in sorted(by_day.items())
    ]
    _aggregate(windows, into, key_of=key_of)


def counters_by(period: Period, scope: Scope, key: str) -> dict[Any, Counters]:
    """Counters per ``key``: "resource", "institute", "day" or "month" (YYYY-MM),
    counted in the database at the time of asking."""
    out: dict[Any, Counters] = {}
    stored = _stored_usable(scope)
    for group in zone_groups(period, scope):
        window = booking_window(group, scope)
        wide = _wide(group)
        if stored and key == "institute":
            _aggregate_stored(group, scope, [period.start, period.end], "institute", out)
        elif stored and key == "month":
            months = period.months()
            _aggregate_stored(
                group,
                scope,
                [s for _m, s, _e in months] + [period.end],
                "bucket",
                out,
                key_of=[m for m, _s, _e in months].__getitem__,
            )
        elif key == "resource":
            _aggregate([(window, Booking.resource_id, wide)], out)
        elif key == "institute":
            _aggregate([(window, Booking.institute_id, wide)], out)
        elif key in ("day", "month"):
            if key == "day":
                labels: list[Any] = [
                    period.start + dt.timedelta(days=n) for n in range(period.days)
                ]
                edges = [*labels, period.end]
            else:
                months = period.months()
                labels = [m for m, _s, _e in months]
                edges = [s for _m, s, _e in months] + [period.end]
            _aggregate([(window, _buckets(group, edges), wide)], out, key_of=labels.__getitem__)
        else:
            raise ValueError(key)
    return out


def total_counters(period: Period, scope: Scope) -> Counters:
    """The scope's counters over the period, in one total."""
    out: dict[Any, Counters] = {}
    _total_into(period, scope, zone_groups(period, scope), out)
    return out.get(None, Counters())


def _total_into(
    period: Period, scope: Scope, groups: list[ZoneGroup], out: dict[Any, Counters]
) -> None:
    if _stored_usable(scope):
        for g in groups:
            _aggregate_stored(g, scope, [period.start, period.end], None, out)
        return
    _aggregate([(booking_window(g, scope), None, _wide(g)) for g in groups], out)


def direct_counters(period: Period, scope: Scope, key: str) -> dict[Any, Counters]:
    """The same counters as ``counters_by``, counted one booking at a time in Python
    (``flask stats check`` compares the two)."""
    out: dict[Any, Counters] = defaultdict(Counters)
    for group in zone_groups(period, scope):
        tz = zone(group.timezone)
        stmt = (
            select(
                Booking.start_at,
                Booking.resource_id,
                Booking.institute_id,
                Booking.status,
                Booking.fee,
                Booking.fee_waived,
                UsageRecord.checked_in_at,
                UsageRecord.checked_out_at,
                UsageRecord.service_type,
                UsageRecord.problem_solved,
                Booking.late_cancellation,
            )
            .outerjoin(UsageRecord, UsageRecord.booking_id == Booking.id)
            .where(booking_window(group, scope))
            .execution_options(yield_per=5000)
        )
        for row in db.session.execute(stmt):
            start, rid, iid, raw_status, fee, waived, cin, cout, service, solved, late = row
            local = start.astimezone(tz).date()
            k: Any = {
                "day": local,
                "month": local.strftime("%Y-%m"),
                "resource": rid,
                "institute": iid,
            }[key]
            minutes = usage_minutes_of(cin, cout) if cin is not None else None
            out[k].add_booking(
                counted_status(raw_status, late), fee, waived, minutes, service, solved
            )
    return dict(out)
