"""Campaign statistics at campaign scale: the national figures of one month, one
institute's month, and the national 12-month trend (``campaign/figures.py``: the stored
days of ``stats_daily`` plus a live count of the dirty ones and of the figures that
cannot be summed), with the SQL they send and its plans.

Targets (1M bookings, PostgreSQL and SQLite): national month p50 <= 150 ms, one
institute <= 30 ms, 12-month trend <= 300 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections.abc import Callable
from typing import Any

TARGETS_MS = {
    "stats national month": 150.0,
    "stats one institute month": 30.0,
    "stats national 12-month trend": 300.0,
}


def _last_month() -> str:
    from labshare.campaign.periods import NATIONAL_ZONE
    from labshare.timeutil import to_local, utcnow

    today = to_local(utcnow(), NATIONAL_ZONE).date()
    return (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def bench_stats(
    app: Any, samples: int
) -> tuple[dict[str, Any], list[tuple[str, Callable[[], Any]]]]:
    """p50 (and min, max) of each measurement, and the calls for ``explain_calls``."""
    from sqlalchemy import func, select

    from labshare.campaign.figures import statistics_for
    from labshare.campaign.periods import Period, Scope, zone_groups
    from labshare.campaign.trend import monthly_trend
    from labshare.extensions import db
    from labshare.models import Booking

    month = _last_month()
    period = Period.month(month)
    with app.app_context():
        first = zone_groups(period, Scope.everything())[0]
        # The busiest institute of the month: the slowest single institute.
        busiest = db.session.scalar(
            select(Booking.institute_id)
            .where(Booking.start_at >= first.start, Booking.start_at < first.end)
            .group_by(Booking.institute_id)
            .order_by(func.count().desc())
            .limit(1)
        )
        db.session.rollback()
    assert busiest is not None, "no bookings last month"
    calls: list[tuple[str, Callable[[], Any]]] = [
        (
            "stats national month",
            lambda: statistics_for(period, Scope.everything()),
        ),
        (
            "stats one institute month",
            lambda: statistics_for(period, Scope.institute(busiest)),
        ),
        (
            "stats national 12-month trend",
            lambda: monthly_trend(month, Scope.everything(), months=12),
        ),
    ]
    out: dict[str, Any] = {"stats month": month, "stats institute id": busiest}
    for label, fn in calls:
        times = []
        with app.app_context():
            fn()  # warm: connection, caches
            db.session.rollback()
            for _ in range(samples):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
                db.session.rollback()
        out[f"{label} p50 ms"] = statistics.median(times) * 1000
        ordered = sorted(times)
        # nearest rank
        out[f"{label} p90 ms"] = ordered[max(0, -(-9 * len(ordered) // 10) - 1)] * 1000
        out[f"{label} min ms"] = min(times) * 1000
        out[f"{label} max ms"] = max(times) * 1000
    return out, calls


def report_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"  month {summary['stats month']}, institute id {summary['stats institute id']}"]
    for label, target in TARGETS_MS.items():
        p50 = summary[f"{label} p50 ms"]
        lines.append(
            f"  {label:<32} p50 {p50:8.1f} ms  p90 {summary[f'{label} p90 ms']:8.1f} ms  "
            f"(min {summary[f'{label} min ms']:.1f}, "
            f"max {summary[f'{label} max ms']:.1f})  target <= {target:.0f} ms: "
            f"{'MET' if p50 <= target else 'MISSED'}"
        )
    return lines


def run_stats_only(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from bench import generate
    from bench.run import bench_app, booking_count, ensure_data, explain_calls, log

    log(f"\n=== {label}: {generate.safe_url(url)}")
    ensure_data(url, args)
    app = bench_app(url)
    log(f"  {booking_count(url):,} bookings")
    summary, calls = bench_stats(app, args.stats_samples)
    for line in report_lines(summary):
        log(line)
    log("\n  -- EXPLAIN of the SQL the statistics send (slowest statements first)")
    for pp in explain_calls(app, calls):
        log(
            f"  [{pp.path}] {pp.seconds * 1000:.1f} ms, "
            f"{sum(s.sent for s in pp.statements)} SELECTs"
        )
        for st in sorted(pp.statements, key=lambda x: -x.seconds * x.sent)[: args.plan_statements]:
            flat = " ".join(st.sql.split())
            log(f"    {st.seconds * 1000:7.2f} ms x {st.sent:<4}")
            log(f"      SQL: {flat[:300]}{'…' if len(flat) > 300 else ''}")
            for line in st.plan.splitlines()[: args.plan_lines]:
                log(f"        {line}")
    with app.app_context():
        from labshare.extensions import db

        db.engine.dispose()
    return summary
