"""Local days in SQL and in Python, shared by the stored figures (``stats_store``)
and each company's first day of use (``first_use``)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import text

from labshare.database import is_sqlite
from labshare.extensions import db
from labshare.timeutil import zone


def _day_param(day: dt.date) -> Any:
    # SQLite keeps dates as ISO text; PostgreSQL takes the date.
    return day.isoformat() if is_sqlite() else day


def _day_literal() -> str:
    return ":day" if is_sqlite() else "CAST(:day AS date)"


def _shifted_day(minutes: int) -> str:
    """The local day of ``b.start_at`` at a fixed UTC offset."""
    if is_sqlite():
        return f"date(b.start_at, '{minutes:+d} minutes')"
    return f"((b.start_at AT TIME ZONE 'UTC') + interval '{minutes} minutes')::date"


def _midnight(day: dt.date, tz: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), zone(tz)).astimezone(dt.UTC)


def _offset_spans(
    tz: str, lo: dt.datetime, hi: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime, int]]:
    """[lo, hi) cut where ``tz``'s UTC offset changes: (start, end, offset minutes)."""
    z = zone(tz)
    step = dt.timedelta(minutes=15)

    def offset(at: dt.datetime) -> int:
        delta = at.astimezone(z).utcoffset()
        return int(delta.total_seconds() // 60) if delta is not None else 0

    spans = []
    start, current = lo, offset(lo)
    cursor = lo + step
    while cursor < hi:
        now = offset(cursor)
        if now != current:
            # the change lies in (cursor - step, cursor]: find the minute
            t = cursor - step
            while offset(t) == current:
                t += dt.timedelta(minutes=1)
            spans.append((start, t, current))
            start, current = t, now
        cursor += step
    spans.append((start, hi, current))
    return spans


def _zones() -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for iid, tz in db.session.execute(text("SELECT id, timezone FROM institute ORDER BY id")):
        out[str(tz)].append(int(iid))
    return out


def micro_sql(column: str) -> str:
    """Microseconds since the epoch of a SQLite timestamp stored as text
    (``YYYY-MM-DD HH:MM:SS[.ffffff]``), in integer arithmetic: julianday() would round
    each stamp to the millisecond on its own."""
    fraction = (
        f"(CASE WHEN substr({column}, 20, 1) = '.' "
        f"THEN CAST(substr(substr({column}, 21, 6) || '000000', 1, 6) AS INTEGER) ELSE 0 END)"
    )
    return f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000 + {fraction})"


def whole_minutes_sql(later: str, earlier: str) -> str:
    """floor((later - earlier) / 1 minute), exact to the microsecond as Python's and
    PostgreSQL's, in SQLite SQL: julianday() where both stamps are on the millisecond
    (exact there, and 4x faster), the stamps' text otherwise."""
    fast = f"CAST(ROUND((julianday({later}) - julianday({earlier})) * 86400000) AS INTEGER)"
    micro = f"({micro_sql(later)} - {micro_sql(earlier)})"
    return (
        f"(CASE WHEN substr({later}, 24, 3) = '000' AND substr({earlier}, 24, 3) = '000' "
        f"THEN (CASE WHEN {fast} >= 0 THEN {fast} / 60000 ELSE -((59999 - {fast}) / 60000) END) "
        f"ELSE (CASE WHEN {micro} >= 0 THEN {micro} / 60000000 "
        f"ELSE -((59999999 - {micro}) / 60000000) END) END)"
    )
