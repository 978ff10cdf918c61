"""Who and what was served in each local month (``stats_used``), so that the distinct
SMEs served and the shared instruments of whole months are a count of stored rows
instead of one pass over the months' completed bookings.

A row (kind, institute, local month, key) says the institute had at least one
completed booking starting in that local month (its zone) of the company (kind
``COMPANY``) or on the instrument (kind ``INSTRUMENT``); ``n`` counts those bookings.
Institute ``ANY_INSTITUTE`` (0) rows say the same for any institute, ``n`` being how
many institutes have the row: the national distinct count of a month is the number
of its national rows, and one institute's row can be taken out of it exactly.

Kept exactly like ``stats_daily``: an (institute, local month) holding a local day a
``stats_dirty`` marker makes dirty is counted live from the bookings (its stored rows
taken out of the national ones), the ``rollup`` job recomputes the months of the days
it cleans (``refresh``), ``stats_store.rebuild`` the months of its range. Periods that
are not whole months, and lab or instrument scopes, are counted live.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, delete, func, select, text, tuple_

from labshare.campaign.local_days import _day_param, _midnight, _offset_spans, _zones
from labshare.campaign.periods import Period, Scope, ZoneGroup, booking_window, zone_groups
from labshare.campaign.stored import MAX_DIRTY_PAIRS, _dirty_local_days
from labshare.campaign.waits import lock_national
from labshare.database import is_sqlite
from labshare.extensions import db
from labshare.models import ANY_INSTITUTE, Booking, BookingStatus, ResourceKind, StatsUsed

COMPANY = 1
INSTRUMENT = 2
KINDS = (COMPANY, INSTRUMENT)
_CHUNK = 500


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return (month + dt.timedelta(days=32)).replace(day=1)


def whole_months(period: Period) -> list[dt.date] | None:
    """The months the period is made of, when it is whole months."""
    if period.start.day != 1 or period.end.day != 1:
        return None
    months, cursor = [], period.start
    while cursor < period.end:
        months.append(cursor)
        cursor = next_month(cursor)
    return months


def _key_sql(kind: int) -> str:
    if kind == COMPANY:
        return "b.company_id"
    return "b.resource_id"


def _kind_where(kind: int) -> str:
    if kind == COMPANY:
        return "b.status = 'completed'"
    return f"b.status = 'completed' AND b.resource_kind = '{ResourceKind.INSTRUMENT.value}'"


def _live_keys(kind: int, institute_id: int, month: dt.date, tz: str) -> set[int]:
    """The companies or instruments of the institute's completed bookings in its local
    month."""
    key = Booking.company_id if kind == COMPANY else Booking.resource_id
    cond = [
        Booking.institute_id == institute_id,
        Booking.start_at >= _midnight(month, tz),
        Booking.start_at < _midnight(next_month(month), tz),
        Booking.status == BookingStatus.COMPLETED,
    ]
    if kind == INSTRUMENT:
        cond.append(Booking.resource_kind == ResourceKind.INSTRUMENT)
    return {int(k) for k in db.session.scalars(select(key).where(*cond).distinct())}


# -- reads ---------------------------------------------------------------------------


def _dirty_months(groups: list[ZoneGroup], period: Period) -> dict[tuple[int, dt.date], str]:
    """The (institute, local month) pairs holding a dirty local day, with the zone."""
    out: dict[tuple[int, dt.date], str] = {}
    for g in groups:
        for iid, day in _dirty_local_days(g, period.start, period.end):
            out[(iid, month_of(day))] = g.timezone
    return out


def _counts(institute_ids: list[int], months: list[dt.date]) -> dict[int, int]:
    """Distinct ids per kind among the rows of these institutes and months, in one
    statement (a plain count of index entries for one institute and month)."""
    one = len(months) == 1 and len(institute_ids) == 1
    counted = func.count() if one else func.count(func.distinct(StatsUsed.item_id))
    out = dict.fromkeys(KINDS, 0)
    for kind, n in db.session.execute(
        select(StatsUsed.kind, counted)
        .where(
            StatsUsed.kind.in_(KINDS),
            StatsUsed.institute_id.in_(institute_ids),
            StatsUsed.month.in_(months),
        )
        .group_by(StatsUsed.kind)
    ):
        out[int(kind)] = int(n)
    return out


def _national(
    kind: int, months: list[dt.date], dirty: dict[tuple[int, dt.date], str], base: int
) -> int:
    if not dirty:
        return base
    # Each touched key's national rows, less the dirty institutes' stored rows, plus
    # what the bookings of those institute months say now.
    change: Counter[tuple[int, dt.date]] = Counter()
    for key, month in db.session.execute(
        select(StatsUsed.item_id, StatsUsed.month).where(
            StatsUsed.kind == kind, tuple_(StatsUsed.institute_id, StatsUsed.month).in_(dirty)
        )
    ):
        change[(int(key), month)] -= 1
    for (iid, month), tz in dirty.items():
        for key in _live_keys(kind, iid, month, tz):
            change[(key, month)] += 1
    touched = sorted({k for k, _m in change})
    stored: dict[tuple[int, dt.date], int] = {}
    for n in range(0, len(touched), _CHUNK):
        for key, month, count in db.session.execute(
            select(StatsUsed.item_id, StatsUsed.month, StatsUsed.n).where(
                StatsUsed.kind == kind,
                StatsUsed.institute_id == ANY_INSTITUTE,
                StatsUsed.month.in_(months),
                StatsUsed.item_id.in_(touched[n : n + _CHUNK]),
            )
        ):
            stored[(int(key), month)] = int(count)
    was = {k for (k, _m), count in stored.items() if count > 0}
    now = {
        k for k in touched if any(stored.get((k, m), 0) + change.get((k, m), 0) > 0 for m in months)
    }
    return base - len(was) + len(now)


def _among(kind: int, ids: list[int], months: list[dt.date], dirty: dict[Any, str]) -> int:
    where = and_(
        StatsUsed.kind == kind, StatsUsed.institute_id.in_(ids), StatsUsed.month.in_(months)
    )
    keys = set(
        db.session.scalars(
            select(StatsUsed.item_id)
            .where(where, tuple_(StatsUsed.institute_id, StatsUsed.month).not_in(dirty))
            .distinct()
        )
    )
    for (iid, month), tz in dirty.items():
        keys |= _live_keys(kind, iid, month, tz)
    return len(keys)


def served_and_shared(
    period: Period, scope: Scope, groups: list[ZoneGroup]
) -> tuple[int, int] | None:
    """Distinct companies served and distinct instruments used (completed bookings) in
    the period, from the stored months; None when the caller must count live (not
    whole months, a lab or instrument scope, too many dirty days)."""
    months = whole_months(period)
    if months is None or scope.kind not in ("all", "province", "institute") or not groups:
        return None
    dirty = _dirty_months(groups, period)
    if len(dirty) > MAX_DIRTY_PAIRS:
        return None
    if scope.kind == "all":
        base = _counts([ANY_INSTITUTE], months)
        return (
            _national(COMPANY, months, dirty, base[COMPANY]),
            _national(INSTRUMENT, months, dirty, base[INSTRUMENT]),
        )
    ids = [i for g in groups for i in g.institute_ids]
    if not dirty:
        base = _counts(ids, months)
        return base[COMPANY], base[INSTRUMENT]
    return _among(COMPANY, ids, months, dirty), _among(INSTRUMENT, ids, months, dirty)


# -- upkeep --------------------------------------------------------------------------


def _rows_of(institute_id: int, months: list[dt.date]) -> set[tuple[int, dt.date, int]]:
    return {
        (int(kind), month, int(key))
        for kind, month, key in db.session.execute(
            select(StatsUsed.kind, StatsUsed.month, StatsUsed.item_id).where(
                StatsUsed.institute_id == institute_id, StatsUsed.month.in_(months)
            )
        )
    }


def _add_national(delta: Iterable[tuple[tuple[int, dt.date, int], int]]) -> None:
    changes = sorted((k, n) for k, n in delta if n)
    if not changes:
        return
    db.session.execute(
        text(
            "INSERT INTO stats_used (kind, institute_id, month, item_id, n) "
            "VALUES (:kind, :iid, :month, :key, :n) "
            "ON CONFLICT (kind, institute_id, month, item_id) "
            "DO UPDATE SET n = stats_used.n + excluded.n"
        ),
        [
            {"kind": kind, "iid": ANY_INSTITUTE, "month": _day_param(month), "key": key, "n": n}
            for (kind, month, key), n in changes
        ],
    )
    db.session.execute(
        delete(StatsUsed).where(
            StatsUsed.institute_id == ANY_INSTITUTE,
            StatsUsed.n <= 0,
            StatsUsed.month.in_(sorted({m for (_k, m, _key), _n in changes})),
        )
    )


def _insert_sql(month_sql: str, where: str, *, month_varies: bool = True) -> list[str]:
    group = f"b.institute_id, {month_sql}" if month_varies else "b.institute_id"
    # Only fixed fragments of this module are joined; every value is a bound parameter.
    return [
        "INSERT INTO stats_used (kind, institute_id, month, item_id, n) "  # noqa: S608
        f"SELECT {kind}, b.institute_id, {month_sql}, {_key_sql(kind)}, count(*) "
        f"FROM booking b WHERE {_kind_where(kind)} AND {where} "
        f"GROUP BY {group}, {_key_sql(kind)} "
        "ON CONFLICT (kind, institute_id, month, item_id) "
        "DO UPDATE SET n = stats_used.n + excluded.n"
        for kind in KINDS
    ]


def refresh(institute_id: int, days: list[dt.date], tz: str | None) -> None:
    """Recompute the institute's local months holding these local days, and the
    national rows by the difference, in the caller's transaction."""
    lock_national()
    months = sorted({month_of(d) for d in days})
    old = _rows_of(institute_id, months)
    db.session.execute(
        delete(StatsUsed).where(StatsUsed.institute_id == institute_id, StatsUsed.month.in_(months))
    )
    if tz is not None:  # else the institute is gone, and its bookings with it
        month_sql = ":month" if is_sqlite() else "CAST(:month AS date)"
        for month in months:
            for sql in _insert_sql(
                month_sql,
                "b.institute_id = :iid AND b.start_at >= :lo AND b.start_at < :hi",
                month_varies=False,
            ):
                db.session.execute(
                    text(sql),
                    {
                        "iid": institute_id,
                        "month": _day_param(month),
                        "lo": _midnight(month, tz),
                        "hi": _midnight(next_month(month), tz),
                    },
                )
    new = _rows_of(institute_id, months)
    _add_national([(k, 1) for k in new - old] + [(k, -1) for k in old - new])


def _month_sql(minutes: int) -> str:
    if is_sqlite():
        return f"date(b.start_at, '{minutes:+d} minutes', 'start of month')"
    return (
        f"date_trunc('month', (b.start_at AT TIME ZONE 'UTC') + interval '{minutes} minutes')::date"
    )


def rebuild(first_day: dt.date, last_day: dt.date) -> None:
    """Recompute every row of the local months touching the days [first_day,
    last_day), whole, in the caller's transaction (``stats_store.rebuild``)."""
    lock_national()
    lo_month, hi_month = month_of(first_day), next_month(month_of(last_day - dt.timedelta(1)))
    span = {"mlo": _day_param(lo_month), "mhi": _day_param(hi_month)}
    db.session.execute(text("DELETE FROM stats_used WHERE month >= :mlo AND month < :mhi"), span)
    for tz, ids in _zones().items():
        lo, hi = _midnight(lo_month, tz), _midnight(hi_month, tz)
        where = (
            f"b.institute_id IN ({', '.join(str(int(i)) for i in ids)}) "
            "AND b.start_at >= :lo AND b.start_at < :hi"
        )
        for s, e, offset in _offset_spans(tz, lo, hi):
            for sql in _insert_sql(_month_sql(offset), where):
                db.session.execute(text(sql), {"lo": s, "hi": e})
    db.session.execute(
        text(
            "INSERT INTO stats_used (kind, institute_id, month, item_id, n) "
            "SELECT kind, :iid, month, item_id, count(*) FROM stats_used "
            "WHERE institute_id <> :iid AND month >= :mlo AND month < :mhi "
            "GROUP BY kind, month, item_id"
        ),
        {"iid": ANY_INSTITUTE, **span},
    )


def differences(period: Period) -> list[str]:
    """Every stored row of the period's months that differs from the bookings (months
    no marker makes dirty), and every national row that does not count the institute
    rows (``flask stats check``)."""
    months = whole_months(Period(month_of(period.start), next_month(month_of(period.start))))
    assert months is not None
    groups = zone_groups(Period(months[0], next_month(months[-1])), Scope.everything())
    dirty = _dirty_months(groups, Period(months[0], next_month(months[-1])))
    out = []
    stored: dict[tuple[int, int, dt.date], set[int]] = defaultdict(set)
    national: Counter[tuple[int, dt.date, int]] = Counter()
    for kind, iid, month, key, n in db.session.execute(
        select(
            StatsUsed.kind, StatsUsed.institute_id, StatsUsed.month, StatsUsed.item_id, StatsUsed.n
        ).where(StatsUsed.month.in_(months))
    ):
        if iid == ANY_INSTITUTE:
            national[(int(kind), month, int(key))] += int(n)
        else:
            stored[(int(kind), int(iid), month)].add(int(key))
    summed: Counter[tuple[int, dt.date, int]] = Counter()
    for (kind, _iid, month), keys in stored.items():
        for key in keys:
            summed[(kind, month, key)] += 1
    for g in groups:
        for month in months:
            live: dict[tuple[int, int, dt.date], set[int]] = defaultdict(set)
            for iid, company, resource, resource_kind in db.session.execute(
                select(
                    Booking.institute_id,
                    Booking.company_id,
                    Booking.resource_id,
                    Booking.resource_kind,
                ).where(
                    booking_window(g, Scope.everything(), start=_midnight(month, g.timezone)),
                    Booking.start_at < _midnight(next_month(month), g.timezone),
                    Booking.status == BookingStatus.COMPLETED,
                )
            ):
                live[(COMPANY, iid, month)].add(int(company))
                if resource_kind == ResourceKind.INSTRUMENT:
                    live[(INSTRUMENT, iid, month)].add(int(resource))
            for iid in g.institute_ids:
                if (iid, month) in dirty:
                    continue
                for kind in KINDS:
                    want = live.get((kind, iid, month), set())
                    have = stored.get((kind, iid, month), set())
                    if want != have:
                        out.append(
                            f"served in {month:%Y-%m} at institute {iid} (kind {kind}): "
                            f"stored {len(have)}, bookings {len(want)}"
                        )
    for key in sorted(set(summed) | set(national)):
        if summed.get(key, 0) != national.get(key, 0):
            out.append(
                f"national served in {key[1]:%Y-%m} (kind {key[0]}, {key[2]}): "
                f"stored {national.get(key, 0)}, institutes {summed.get(key, 0)}"
            )
    return out
