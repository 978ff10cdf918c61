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
