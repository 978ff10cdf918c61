"""The campaign counters kept per institute and UTC day (``stats_daily``), and the
upkeep that keeps them usable.

``stats_daily`` is never trusted blindly: triggers on ``booking`` and ``usage_record``
(migration 0011) add a ``stats_dirty`` row (resource, UTC day, institute) in the same
transaction as any change that could move a figure, and ``services/stats.py`` counts
a day live while a marker names its institute. So the figures are the same whether
``clean`` ever ran or not; ``clean`` (the ``rollup`` job) only makes them cheaper.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text

from labshare.database import is_sqlite
from labshare.extensions import db
from labshare.models import STATS_DAILY_COUNTS

SERVICES = ("verification", "calibration", "testing", "training", "consultation")


def daily_select(where: str = "TRUE") -> str:
    """SELECT of ``stats_daily``'s columns from the bookings matching ``where`` (alias
    ``b``), counted as ``services/stats.py`` counts; the same text as migration 0011."""
    if is_sqlite():
        day = "date(b.start_at)"
        minutes = (
            "CAST(ROUND((julianday(u.checked_out_at) - julianday(u.checked_in_at)) "
            "* 86400000) AS INTEGER) / 60000"
        )
    else:
        day = "(b.start_at AT TIME ZONE 'UTC')::date"
        minutes = "floor(extract(epoch from (u.checked_out_at - u.checked_in_at)) / 60)"

    def n(cond: str) -> str:
        return f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END)"

    late = "b.status = 'cancelled' AND coalesce(b.late_cancellation, FALSE)"
    counts = [
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
    ]
    return (
        f"SELECT {day}, b.institute_id, count(*), " + ", ".join(counts) + " "
        "FROM booking b LEFT JOIN usage_record u ON u.booking_id = b.id "
        f"WHERE {where} GROUP BY {day}, b.institute_id"
    )


def _insert(where: str) -> str:
    columns = ", ".join(["day", "institute_id", *STATS_DAILY_COUNTS, "fees", "fees_waived"])
    return f"INSERT INTO stats_daily ({columns}) {daily_select(where)}"


def _bounds(day: dt.date) -> dict[str, Any]:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return {"lo": start, "hi": start + dt.timedelta(days=1)}


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
    """Recompute one institute's UTC day and drop its markers, in the caller's
    transaction (commit right after: the resources stay locked until then).

    On PostgreSQL the resources the markers name are locked first, in id order (the
    booking writers' order, so no deadlock), and deleting a marker waits for any
    writer that bumped it; the count below then sees that writer's change. A marker
    inserted meanwhile by a writer not yet committed survives, so the day stays live."""
    params = {"iid": institute_id, "day": day}
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
    db.session.execute(
        text("DELETE FROM stats_daily WHERE institute_id = :iid AND day = :day"), params
    )
    db.session.execute(
        text(_insert("b.institute_id = :iid AND b.start_at >= :lo AND b.start_at < :hi")),
        {"iid": institute_id, **_bounds(day)},
    )


def clean(limit: int | None = None) -> int:
    """Recompute every dirty (institute, UTC day), one transaction each; how many."""
    done = 0
    for iid, day in dirty_pairs(limit):
        clean_pair(iid, day)
        db.session.commit()
        done += 1
    return done


def rebuild(start: dt.date | None = None, end: dt.date | None = None) -> int:
    """Recompute the UTC days [start, end) (all when None) from the bookings in one
    statement, in the caller's transaction: for a bulk load that bypassed the
    triggers, or ``flask stats rebuild``. How many rows were written."""
    conds = ["TRUE"]
    day_conds = ["TRUE"]
    params: dict[str, Any] = {}
    if start is not None:
        conds.append("b.start_at >= :lo")
        day_conds.append("day >= :dlo")
        params["lo"] = dt.datetime.combine(start, dt.time(), dt.UTC)
        params["dlo"] = start
    if end is not None:
        conds.append("b.start_at < :hi")
        day_conds.append("day < :dhi")
        params["hi"] = dt.datetime.combine(end, dt.time(), dt.UTC)
        params["dhi"] = end
    day_where = " AND ".join(day_conds)
    # Only fixed fragments are joined; every value is a bound parameter.
    db.session.execute(text(f"DELETE FROM stats_dirty WHERE {day_where}"), params)  # noqa: S608
    db.session.execute(text(f"DELETE FROM stats_daily WHERE {day_where}"), params)  # noqa: S608
    result = db.session.execute(text(_insert(" AND ".join(conds))), params)
    return int(getattr(result, "rowcount", 0) or 0)
