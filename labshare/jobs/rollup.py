"""The nightly roll-up of usage into ``usage_daily``, per local day, resource and institute.

A booking counts on the local day (its institute's zone) on which it starts.
Recomputing a day deletes and rewrites that day's rows in one transaction, under a
lock, so any number of runs, concurrent or not, give the same numbers.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import selectinload

from labshare.database import begin_write, is_sqlite
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, Institute, ServiceType, UsageDaily
from labshare.services.stats import counted_status
from labshare.timeutil import to_local, utcnow

#: Days recomputed each night: statuses settle after the day (no-shows, late usage).
DEFAULT_DAYS_BACK = 7
ROLLUP_LOCK_KEY = 0x4C530002  # pg_advisory_xact_lock key of the roll-up


def _empty() -> dict[str, Any]:
    row: dict[str, Any] = {
        "bookings_total": 0,
        "usage_minutes": 0,
        "problems_solved": 0,
        "fees": Decimal("0"),
        "fees_waived": Decimal("0"),
        "_companies": set(),
    }
    for status in BookingStatus:
        row[str(status)] = 0
    for service in ServiceType:
        row[str(service)] = 0
    return row


def _add(row: dict[str, Any], booking: Booking) -> None:
    row["bookings_total"] += 1
    # booking policies: a late cancellation counts as a no-show (services/stats.py)
    row[counted_status(booking.status, booking.late_cancellation)] += 1
    usage = booking.usage
    if usage is not None:
        minutes = (usage.checked_out_at - usage.checked_in_at).total_seconds() // 60
        row["usage_minutes"] += int(minutes)
        row[str(usage.service_type)] += 1
        row["problems_solved"] += 1 if usage.problem_solved else 0
        row["_companies"].add(booking.company_id)
    if booking.status == BookingStatus.COMPLETED:
        row["fees"] += booking.fee or Decimal("0")
        row["fees_waived"] += booking.fee_waived or Decimal("0")


def _days_for(
    institute: Institute, days: Iterable[dt.date] | None, days_back: int
) -> list[dt.date]:
    if days is not None:
        return sorted(set(days))
    today = to_local(utcnow(), institute.timezone).date()
    return [today - dt.timedelta(days=n) for n in range(days_back, -1, -1)]


def rollup(
    days: Iterable[dt.date] | None = None, *, days_back: int = DEFAULT_DAYS_BACK
) -> dict[str, Any]:
    """Recompute ``usage_daily`` for ``days`` (default: the last ``days_back`` local
    days up to today, per institute)."""
    fixed_days = list(days) if days is not None else None
    if is_sqlite():
        begin_write()
    else:
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ROLLUP_LOCK_KEY})
    now = utcnow()
    institutes = list(db.session.scalars(select(Institute).order_by(Institute.id)))
    plan: dict[int, tuple[Institute, list[dt.date]]] = {
        i.id: (i, _days_for(i, fixed_days, days_back)) for i in institutes
    }
    # One query for the whole window (a day of slack each side for the zones).
    all_days = [d for _i, ds in plan.values() for d in ds]
    if not all_days:
        return {"rows": 0}
    window_start = dt.datetime.combine(min(all_days), dt.time(), dt.UTC) - dt.timedelta(days=1)
    window_end = dt.datetime.combine(max(all_days), dt.time(), dt.UTC) + dt.timedelta(days=2)
    bookings = db.session.scalars(
        select(Booking)
        .options(selectinload(Booking.usage))
        .where(Booking.start_at >= window_start, Booking.start_at < window_end)
        .execution_options(yield_per=2000)
    )
    per_resource: dict[tuple[int, dt.date, int], dict[str, Any]] = defaultdict(_empty)
    per_institute: dict[tuple[int, dt.date], dict[str, Any]] = defaultdict(_empty)
    day_sets = {iid: set(ds) for iid, (_i, ds) in plan.items()}
    for booking in bookings:
        entry = plan.get(booking.institute_id)
        if entry is None:
            continue
        day = to_local(booking.start_at, entry[0].timezone).date()
        if day not in day_sets[booking.institute_id]:
            continue
        _add(per_resource[(booking.institute_id, day, booking.resource_id)], booking)
        _add(per_institute[(booking.institute_id, day)], booking)

    for iid, (_inst, ds) in plan.items():
        db.session.execute(
            delete(UsageDaily)
            .where(UsageDaily.institute_id == iid, UsageDaily.day.in_(ds))
            .execution_options(synchronize_session=False)
        )
    rows: list[dict[str, Any]] = []
    for (iid, day, rid), values in per_resource.items():
        rows.append(_row(values, iid, day, rid, now))
    for (iid, day), values in per_institute.items():
        rows.append(_row(values, iid, day, None, now))
    if rows:
        db.session.execute(insert(UsageDaily), rows)
    return {"rows": len(rows), "days": len(set(all_days)), "institutes": len(plan)}


def _row(
    values: dict[str, Any], iid: int, day: dt.date, rid: int | None, now: dt.datetime
) -> dict[str, Any]:
    row = {k: v for k, v in values.items() if not k.startswith("_")}
    row.update(
        institute_id=iid,
        day=day,
        resource_id=rid,
        companies_served=len(values["_companies"]),
        computed_at=now,
    )
    return row
