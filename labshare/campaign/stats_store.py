"""The campaign counters kept per institute and local day (``stats_daily``), and the
upkeep that keeps them usable.

``stats_daily`` is never trusted blindly: triggers on ``booking``, ``usage_record``
and ``institute`` (its time zone; migration 0011) add a ``stats_dirty`` row
(resource, UTC day, institute) in the same transaction as any change that could move
a figure. A stored local day is used only while no marker of its institute names the
UTC day before, on or after it (a local day lies within those three UTC days in any
zone); otherwise ``campaign/stored.py`` counts it live. So the figures are the same
whether ``clean`` ever ran or not; ``clean`` (the ``rollup`` job) only makes them
cheaper to read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, text

from labshare.campaign import first_use, used, waits
from labshare.campaign.local_days import (
    _day_literal,
    _day_param,
    _midnight,
    _offset_spans,
    _shifted_day,
    _zones,
    whole_minutes_sql,
)
from labshare.database import is_sqlite
from labshare.extensions import db
from labshare.models import STATS_DAILY_COUNTS, Booking

SERVICES = ("verification", "calibration", "testing", "training", "consultation")
_COLUMNS = ("day", "institute_id", *STATS_DAILY_COUNTS, "fees", "fees_waived", "decided")
#: Past this many dirty (institute, UTC day) pairs, ``clean`` rebuilds everything in
#: one statement per zone instead (after an upgrade or a bulk import).
REBUILD_OVER = 5000
ONE_DAY = dt.timedelta(days=1)


def _counts_sql() -> str:
    """stats_daily's counter columns over ``booking b LEFT JOIN usage_record u``,
    counted as ``campaign/counters.py`` counts."""
    if is_sqlite():
        minutes = whole_minutes_sql("u.checked_out_at", "u.checked_in_at")
    else:
        minutes = "floor(extract(epoch from (u.checked_out_at - u.checked_in_at)) / 60)"

    def n(cond: str) -> str:
        return f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END)"

    late = "b.status = 'cancelled' AND coalesce(b.late_cancellation, FALSE)"
    return ", ".join(
        [
            "count(*)",
            n("b.status = 'pending'"),
            n("b.status = 'approved'"),
            n("b.status = 'rejected'"),
            n(f"b.status = 'cancelled' AND NOT ({late})"),
            n("b.status = 'completed'"),
            n(f"b.status = 'no_show' OR ({late})"),
            f"coalesce(sum({minutes}), 0)",
            *[n(f"u.service_type = '{s}'") for s in SERVICES],
            n("u.problem_solved"),
            "coalesce(sum(CASE WHEN b.status = 'completed' THEN b.fee END), 0)",
            "coalesce(sum(CASE WHEN b.status = 'completed' THEN b.fee_waived END), 0)",
            n("b.decided_at IS NOT NULL"),
        ]
    )


def _insert(day_sql: str, where: str) -> str:
    """INSERT into stats_daily the bookings matching ``where`` by (``day_sql``,
    institute); a row already there is added to (a local day cut by a change of UTC
    offset is counted in two parts)."""
    adds = ", ".join(
        f"{c} = stats_daily.{c} + excluded.{c}"
        for c in _COLUMNS
        if c not in ("day", "institute_id")
    )
    # Only fixed fragments of this module are joined; every value is a bound parameter.
    sql = (
        f"INSERT INTO stats_daily ({', '.join(_COLUMNS)}) "  # noqa: S608
        f"SELECT {day_sql}, b.institute_id, {_counts_sql()} "
        "FROM booking b LEFT JOIN usage_record u ON u.booking_id = b.id "
        f"WHERE {where} GROUP BY {day_sql}, b.institute_id "
        f"ON CONFLICT (day, institute_id) DO UPDATE SET {adds}"
    )
    return sql


def dirty_pairs(limit: int | None = None) -> list[tuple[int, dt.date]]:
    """The (institute, UTC day) pairs some marker names, oldest day first."""
    sql = "SELECT DISTINCT institute_id, day FROM stats_dirty ORDER BY day, institute_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [
        (int(iid), day if isinstance(day, dt.date) else dt.date.fromisoformat(day))
        for iid, day in db.session.execute(text(sql))
    ]


def clean_pair(institute_id: int, day: dt.date) -> None:
    """Recompute the institute's local days around one UTC day and drop that day's
    markers, in the caller's transaction (commit right after: the resources stay
    locked until then).

    On PostgreSQL the resources the markers name are locked first, in id order (the
    booking writers' order, so no deadlock), and deleting a marker waits for any
    writer that bumped it; the counts below then see that writer's change. A marker
    inserted meanwhile by a writer not yet committed survives, so its days stay live;
    so do the neighbouring UTC days' markers, which keep their local days live."""
    params: dict[str, Any] = {"iid": institute_id, "day": _day_param(day)}
    # The national rows' lock first, before any resource, marker or stored row: a
    # rebuild holding it (from an earlier month of its transaction) may next delete
    # this day's marker, so waiting for the lock while holding the marker deadlocks.
    waits.lock_national()
    if not is_sqlite():
        db.session.execute(
            text(
                "SELECT id FROM resource WHERE id IN (SELECT resource_id FROM stats_dirty "
                "WHERE institute_id = :iid AND day = :day) ORDER BY id FOR NO KEY UPDATE"
            ),
            params,
        )
    db.session.execute(
        text("DELETE FROM stats_dirty WHERE institute_id = :iid AND day = :day"), params
    )
    tz = db.session.scalar(text("SELECT timezone FROM institute WHERE id = :iid"), params)
    for local in (day - ONE_DAY, day, day + ONE_DAY):
        p = {"iid": institute_id, "day": _day_param(local)}
        db.session.execute(
            text("DELETE FROM stats_daily WHERE institute_id = :iid AND day = :day"), p
        )
        if tz is None:
            continue  # the institute is gone, and its bookings with it
        db.session.execute(
            text(
                _insert(
                    _day_literal(),
                    "b.institute_id = :iid AND b.start_at >= :lo AND b.start_at < :hi",
                )
            ),
            {**p, "lo": _midnight(local, tz), "hi": _midnight(local + ONE_DAY, tz)},
        )
    # The distribution of decision waits of those days (the median).
    waits.refresh(institute_id, [day - ONE_DAY, day, day + ONE_DAY], tz)
    # The companies served and instruments used in the months of those days.
    used.refresh(institute_id, [day - ONE_DAY, day, day + ONE_DAY], tz)
    # The companies of this marker: their first day of use (new SMEs).
    first_use.refresh(institute_id, day, tz)


def clean(limit: int | None = None) -> int:
    """Recompute every dirty (institute, UTC day), one transaction each (or, past
    ``REBUILD_OVER`` of them, everything at once); how many were dirty."""
    pairs = dirty_pairs(limit)
    if len(pairs) > REBUILD_OVER:
        rebuild()
        db.session.commit()
        return len(pairs)
    for iid, day in pairs:
        clean_pair(iid, day)
        db.session.commit()
    return len(pairs)


def rebuild(
    start: dt.date | None = None, end: dt.date | None = None, *, first_days: bool = True
) -> int:
    """Recompute the local days [start, end) of every institute (all when None) from
    the bookings, and every company's first day of use (``first_use``), in the caller's
    transaction: after a bulk load that bypassed the triggers, or ``flask stats
    rebuild``. Markers whose three local days all lie in
    the range go. How many rows were written."""
    # Before any marker or stored row, as ``clean_pair`` (no lock cycle with it).
    waits.lock_national()
    bounds = db.session.execute(
        select(func.min(Booking.start_at), func.max(Booking.start_at))
    ).one()
    first_day = start or (bounds[0].date() - ONE_DAY if bounds[0] else dt.date(2000, 1, 1))
    last_day = end or (bounds[1].date() + 2 * ONE_DAY if bounds[1] else first_day + ONE_DAY)
    span = {"dlo": _day_param(first_day), "dhi": _day_param(last_day)}
    db.session.execute(text("DELETE FROM stats_daily WHERE day >= :dlo AND day < :dhi"), span)
    db.session.execute(
        text("DELETE FROM stats_dirty WHERE day >= :dlo AND day < :dhi"),
        {"dlo": _day_param(first_day + ONE_DAY), "dhi": _day_param(last_day - ONE_DAY)},
    )
    counted = 0
    for tz, ids in _zones().items():
        lo, hi = _midnight(first_day, tz), _midnight(last_day, tz)
        for s, e, minutes in _offset_spans(tz, lo, hi):
            result = db.session.execute(
                text(
                    _insert(
                        _shifted_day(minutes),
                        f"b.institute_id IN ({', '.join(str(i) for i in ids)}) "
                        "AND b.start_at >= :lo AND b.start_at < :hi",
                    )
                ),
                {"lo": s, "hi": e},
            )
            counted += int(getattr(result, "rowcount", 0) or 0)
    waits.rebuild(first_day, last_day)
    used.rebuild(first_day, last_day)
    # Whole, whatever the range: a first day of use depends on every earlier day, and
    # the markers of the range are gone. ``first_days`` False: the caller does it
    # before its commit.
    if first_days:
        first_use.rebuild()
    return counted
