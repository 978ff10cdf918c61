"""What ``flask stats check`` compares: the figures as the service counts them against
a count of the same bookings one at a time."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    func,
    select,
)

from labshare.campaign import used, waits
from labshare.campaign.counters import COUNTER_FIELDS, Counters
from labshare.campaign.periods import Period, Scope
from labshare.campaign.stored import counters_by, direct_counters
from labshare.extensions import db
from labshare.models import (
    Booking,
)


def booking_days() -> tuple[dt.date, dt.date] | None:
    """The first and the day after the last UTC day any booking starts on, widened by a
    day each side for the zones; None without bookings."""
    first, last = db.session.execute(
        select(func.min(Booking.start_at), func.max(Booking.start_at))
    ).one()
    if first is None:
        return None
    return first.date() - dt.timedelta(days=1), last.date() + dt.timedelta(days=2)


def month_pieces(start: dt.date, end: dt.date) -> list[Period]:
    """[start, end) cut at month boundaries."""
    return [Period(s, e) for _m, s, e in Period(start, end).months()]


def differences(period: Period) -> list[str]:
    """Every difference between the figures as the service counts them (per resource
    live in SQL; per institute from the stored days and the live ones) and a count of
    the same bookings one at a time; empty when they agree."""
    scope = Scope.everything()
    out = []
    for key in ("resource", "institute"):
        counted = counters_by(period, scope, key)
        direct = direct_counters(period, scope, key)
        for k in sorted(set(counted) | set(direct)):
            a = counted.get(k, Counters()).values
            b = direct.get(k, Counters()).values
            for name in COUNTER_FIELDS:
                if a[name] != b[name]:
                    out.append(
                        f"{period.label()} {key} {k} {name}: figures {a[name]}, bookings {b[name]}"
                    )
    # The stored distribution of decision waits (the median).
    out += [f"{period.label()} {line}" for line in waits.differences(period)]
    # Who and what was served per month (distinct SMEs, shared instruments).
    out += [f"{period.label()} {line}" for line in used.differences(period)]
    return out
