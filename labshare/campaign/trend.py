"""The monthly trend: counters per calendar month, months without bookings included."""

from __future__ import annotations

import datetime as dt

from labshare.campaign.counters import Counters
from labshare.campaign.periods import Period, Scope
from labshare.campaign.stored import counters_by


def trend_period(end_month: str, months: int = 12) -> Period:
    """The ``months`` calendar months up to and including ``end_month`` (YYYY-MM)."""
    last = Period.month(end_month)
    first = last.start
    for _n in range(months - 1):
        first = (first - dt.timedelta(days=1)).replace(day=1)
    return Period(first, last.end)


def monthly_trend(end_month: str, scope: Scope, months: int = 12) -> list[tuple[str, Counters]]:
    """Counters per month for ``months`` months up to ``end_month`` (YYYY-MM); a month
    without bookings is there with zero counters."""
    period = trend_period(end_month, months)
    by_month = counters_by(period, scope, "month")
    return [(m, by_month.get(m, Counters())) for m, _s, _e in period.months()]
