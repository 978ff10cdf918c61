"""The median time to a decision from a stored distribution of waits
(``stats_wait``), so that no read sorts the period's waits.

A wait is ``decided_at - created_at`` in **whole minutes**: rounded to the
millisecond (what SQLite's clock arithmetic resolves), then truncated towards zero.
The median decision time is the median of those minutes (the mean of the two middle
ones for an even count, as ``statistics.median``), in hours rounded to 0.01 h: exact
at minute resolution, and the same on both databases.

``stats_wait`` counts the decided bookings per institute, local day (its zone) and
wait minute; ``institute_id`` ``ANY_INSTITUTE`` (0) holds the sum over every
institute of each one's own local day, so a national month is one range of those
rows (~2,000 distinct minutes a day at campaign scale) grouped by minute, and the
median is found by a cumulative sum. It is kept exactly like ``stats_daily``: a
(institute, local day) a ``stats_dirty`` marker makes dirty is counted live from the
bookings (and, for the national rows, its stored institute rows subtracted: the
national rows are always the sum of the institute rows, both written in one
transaction), the ``rollup`` job recomputes dirty days (``refresh``) and
``stats_store.rebuild`` recomputes ranges (``rebuild``).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import and_, delete, func, literal_column, select, text, tuple_

from labshare.campaign.local_days import (
    _day_param,
    _midnight,
    _offset_spans,
    _shifted_day,
    _zones,
    micro_sql,
)
from labshare.campaign.periods import (
    Period,
    Scope,
    ZoneGroup,
    _per_group,
    _resource_filter,
    booking_window,
    zone_groups,
)
from labshare.campaign.stored import MAX_DIRTY_DAYS, MAX_DIRTY_PAIRS, _dirty_local_days
from labshare.database import is_sqlite
from labshare.extensions import db
from labshare.models import ANY_INSTITUTE, Booking, StatsWait
from labshare.timeutil import zone

ONE_DAY = dt.timedelta(days=1)
#: ``stats_wait.institute_id`` of the national rows per whole hour of waiting
#: (``minutes`` holds the hour: ``minutes // 60``): a national read sums ~34 of them
#: a day, then reads the minutes of only the one or two hours holding the middle.
NATIONAL_HOURS = -1
#: The key of the transaction-level advisory lock that serialises writers of the
#: national (``ANY_INSTITUTE``) rows on PostgreSQL ("LabS" + 2).
NATIONAL_LOCK = 0x4C616253 + 2


def wait_minutes(created: dt.datetime, decided: dt.datetime) -> int:
    """Whole minutes of a wait: rounded to the millisecond (half away from zero), then
    truncated towards zero, as ``minutes_sql`` counts them."""
    micro = (decided - created) // dt.timedelta(microseconds=1)
    whole = ((abs(micro) + 500) // 1000) // 60000
    return whole if micro >= 0 else -whole


def minutes_sql(prefix: str = "b.") -> str:
    """``wait_minutes`` in SQL over ``{prefix}created_at`` and ``{prefix}decided_at``."""
    if is_sqlite():
        # julianday() rounds each stamp to the millisecond on its own, which moves a
        # wait within a millisecond of a whole minute into the other minute
        # (PostgreSQL and Python round the wait). Exact when both stamps are on the
        # millisecond (the stored text ends in "000"); otherwise the wait is taken in
        # whole microseconds from the text (4x slower, so only then).
        d, c = prefix + "decided_at", prefix + "created_at"
        fast = f"CAST(ROUND((julianday({d}) - julianday({c})) * 86400000) AS INTEGER) / 60000"
        micro = f"({micro_sql(d)} - {micro_sql(c)})"
        return (
            f"(CASE WHEN substr({d}, 24, 3) = '000' AND substr({c}, 24, 3) = '000' "
            f"THEN {fast} ELSE (CASE WHEN {micro} >= 0 THEN ({micro} + 500) / 1000 "
            f"ELSE -((500 - {micro}) / 1000) END) / 60000 END)"
        )
    return (
        f"(CAST(round(extract(epoch from ({prefix}decided_at - {prefix}created_at)) * 1000) "
        "AS bigint) / 60000)"
    )


def _hour_sql(column: str) -> str:
    """``column // 60`` (floor, as Python's) in SQL, whose integer division truncates."""
    return f"(CASE WHEN {column} >= 0 THEN {column} / 60 ELSE -((59 - {column}) / 60) END)"


def median_hours(counts: Counter[int]) -> float | None:
    """The median of a distribution {minutes: how many}, in hours (0.01 h)."""
    total = sum(counts.values())
    if total <= 0:
        return None
    low, high = (total - 1) // 2, total // 2
    found: list[int] = []
    seen = 0
    for minutes in sorted(counts):
        n = counts[minutes]
        if n <= 0:
            continue
        while len(found) < 2 and (low if not found else high) < seen + n:
            found.append(minutes)
        if len(found) == 2:
            break
        seen += n
    return round(statistics.median(found) / 60, 2)


def lock_national() -> None:
    """Serialise the writers of national rows (the ``rollup`` job, rebuilds) on
    PostgreSQL until commit; SQLite has one writer anyway."""
    if not is_sqlite():
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": NATIONAL_LOCK})


# -- reads ---------------------------------------------------------------------------


def _minutes_column() -> Any:
    return literal_column(minutes_sql("booking."))


def _live(groups: list[ZoneGroup], scope: Scope) -> Counter[int]:
    rows = _per_group(
        groups, scope, _minutes_column().label("m"), where=Booking.decided_at.is_not(None)
    ).subquery()
    out: Counter[int] = Counter()
    for m, n in db.session.execute(select(rows.c.m, func.count()).group_by(rows.c.m)):
        out[int(m)] += int(n)
    return out


def _stored(where: Any) -> Counter[int]:
    out: Counter[int] = Counter()
    for m, n in db.session.execute(
        select(StatsWait.minutes, func.sum(StatsWait.n)).where(where).group_by(StatsWait.minutes)
    ):
        out[int(m)] += int(n or 0)
    return out


def minute_counts(period: Period, scope: Scope, groups: list[ZoneGroup]) -> Counter[int]:
    """How many of the scope's bookings in the period were decided after each whole
    number of minutes: stored rows for clean (institute, local day) pairs, the bookings
    for dirty ones, or everything live past too many dirty pairs."""
    if not groups:
        return Counter()
    if scope.kind not in ("all", "province", "institute"):
        return _live(groups, scope)
    dirty: dict[str, set[tuple[int, dt.date]]] = {}
    for g in groups:
        dirty[g.timezone] = _dirty_local_days(g, period.start, period.end)
    pairs = sorted(set().union(*dirty.values()))
    if len(pairs) > MAX_DIRTY_PAIRS or len({d for _i, d in pairs}) > MAX_DIRTY_DAYS:
        return _live(groups, scope)
    days = and_(StatsWait.day >= period.start, StatsWait.day < period.end)
    if scope.kind == "all":
        out = Counter[int]()
        if pairs:
            out.subtract(_stored(tuple_(StatsWait.institute_id, StatsWait.day).in_(pairs)))
    else:
        ids = [i for g in groups for i in g.institute_ids]
        where = and_(StatsWait.institute_id.in_(ids), days)
        if pairs:
            where = and_(
                where,
                tuple_(StatsWait.institute_id, StatsWait.day).not_in(pairs),
            )
        out = _stored(where)
    # The dirty days, live: one window per zone and local day, its dirty institutes.
    for g in groups:
        by_day: dict[dt.date, list[int]] = defaultdict(list)
        for iid, local in sorted(dirty[g.timezone]):
            by_day[local].append(iid)
        for local, iids in sorted(by_day.items()):
            minutes = _minutes_column()
            for m, n in db.session.execute(
                select(minutes, func.count())
                .where(
                    Booking.start_at >= _midnight(local, g.timezone),
                    Booking.start_at < _midnight(local + ONE_DAY, g.timezone),
                    Booking.institute_id.in_(iids),
                    Booking.decided_at.is_not(None),
                    _resource_filter(Booking.resource_id, scope),
                )
                .group_by(minutes)
            ):
                out[int(m)] += int(n)
    if scope.kind == "all":
        return _national(period, out)
    return out


def _national(period: Period, change: Counter[int]) -> Counter[int]:
    """The national distribution, exact in the one or two hours holding the middle and
    summed per hour elsewhere (each hour's count put on its first minute), which gives
    ``median_hours`` the same answer: the hour rows, ``change`` (the dirty days' live
    less stored minutes) added, find the middle hours; their minutes are then read
    from the national minute rows of the period's days."""
    hours = _stored(
        and_(
            StatsWait.institute_id == NATIONAL_HOURS,
            StatsWait.day >= period.start,
            StatsWait.day < period.end,
        )
    )
    for m, n in change.items():
        hours[m // 60] += n
    total = sum(hours.values())
    if total <= 0:
        return Counter()
    wanted: set[int] = set()
    seen = 0
    for hour in sorted(hours):
        if seen <= (total - 1) // 2 < seen + hours[hour] or seen <= total // 2 < seen + hours[hour]:
            wanted.add(hour)
        seen += hours[hour]
    out: Counter[int] = Counter({h * 60: n for h, n in hours.items() if h not in wanted})
    days = [period.start + dt.timedelta(days=k) for k in range(period.days)]
    for hour in sorted(wanted):
        # One index range per day of the hour's minutes (institute, day, minutes).
        out += _stored(
            and_(
                StatsWait.institute_id == ANY_INSTITUTE,
                StatsWait.day.in_(days),
                StatsWait.minutes >= hour * 60,
                StatsWait.minutes < hour * 60 + 60,
            )
        )
        for m, n in change.items():
            if m // 60 == hour:
                out[m] += n
    return out


# -- upkeep --------------------------------------------------------------------------


def _rows_of(institute_id: int, days: list[dt.date]) -> Counter[tuple[dt.date, int]]:
    out: Counter[tuple[dt.date, int]] = Counter()
    for day, m, n in db.session.execute(
        select(StatsWait.day, StatsWait.minutes, StatsWait.n).where(
            StatsWait.institute_id == institute_id,
            StatsWait.day.in_(days),
        )
    ):
        out[(day if isinstance(day, dt.date) else dt.date.fromisoformat(day), int(m))] += int(n)
    return out


def _add_national(delta: Counter[tuple[dt.date, int]]) -> None:
    """Adds ``delta`` to the national rows, per minute and per hour (in key order),
    dropping rows that reach 0."""
    hours: Counter[tuple[dt.date, int]] = Counter()
    for (d, m), n in delta.items():
        hours[(d, m // 60)] += n
    _add_rows(ANY_INSTITUTE, delta)
    _add_rows(NATIONAL_HOURS, hours)


def _add_rows(institute_id: int, delta: Counter[tuple[dt.date, int]]) -> None:
    changes = [(d, m, n) for (d, m), n in sorted(delta.items()) if n]
    if not changes:
        return
    db.session.execute(
        text(
            "INSERT INTO stats_wait (institute_id, day, minutes, n) "
            "VALUES (:iid, :day, :m, :n) "
            "ON CONFLICT (institute_id, day, minutes) DO UPDATE SET n = stats_wait.n + excluded.n"
        ),
        [{"iid": institute_id, "day": _day_param(d), "m": m, "n": n} for d, m, n in changes],
    )
    db.session.execute(
        delete(StatsWait).where(
            StatsWait.institute_id == institute_id,
            StatsWait.n == 0,
            StatsWait.day.in_(sorted({d for d, _m, _n in changes})),
        )
    )


def refresh(institute_id: int, days: list[dt.date], tz: str | None) -> None:
    """Recompute the institute's rows of these local days from the bookings, and the
    national rows by the difference, in the caller's transaction."""
    lock_national()
    old = _rows_of(institute_id, days)
    db.session.execute(
        delete(StatsWait).where(StatsWait.institute_id == institute_id, StatsWait.day.in_(days))
    )
    if tz is not None:  # else the institute is gone, and its bookings with it
        m = minutes_sql()
        for day in days:
            # Only fixed fragments are joined; every value is a bound parameter.
            db.session.execute(
                text(
                    "INSERT INTO stats_wait (institute_id, day, minutes, n) "  # noqa: S608
                    f"SELECT :iid, {':day' if is_sqlite() else 'CAST(:day AS date)'}, {m}, "
                    "count(*) FROM booking b WHERE b.institute_id = :iid "
                    "AND b.start_at >= :lo AND b.start_at < :hi AND b.decided_at IS NOT NULL "
                    f"GROUP BY {m}"
                ),
                {
                    "iid": institute_id,
                    "day": _day_param(day),
                    "lo": _midnight(day, tz),
                    "hi": _midnight(day + ONE_DAY, tz),
                },
            )
    new = _rows_of(institute_id, days)
    new.subtract(old)
    _add_national(new)


def rebuild(first_day: dt.date, last_day: dt.date) -> None:
    """Recompute every row of the local days [first_day, last_day), in the caller's
    transaction (``stats_store.rebuild``)."""
    lock_national()
    span = {"dlo": _day_param(first_day), "dhi": _day_param(last_day)}
    db.session.execute(text("DELETE FROM stats_wait WHERE day >= :dlo AND day < :dhi"), span)
    m = minutes_sql()
    for tz, ids in _zones().items():
        lo, hi = _midnight(first_day, tz), _midnight(last_day, tz)
        for s, e, offset in _offset_spans(tz, lo, hi):
            day = _shifted_day(offset)
            # Only fixed fragments and integer ids are joined; the bounds are parameters.
            db.session.execute(
                text(
                    "INSERT INTO stats_wait (institute_id, day, minutes, n) "  # noqa: S608
                    f"SELECT b.institute_id, {day}, {m}, count(*) FROM booking b "
                    f"WHERE b.institute_id IN ({', '.join(str(int(i)) for i in ids)}) "
                    "AND b.start_at >= :lo AND b.start_at < :hi AND b.decided_at IS NOT NULL "
                    f"GROUP BY b.institute_id, {day}, {m} "
                    "ON CONFLICT (institute_id, day, minutes) "
                    "DO UPDATE SET n = stats_wait.n + excluded.n"
                ),
                {"lo": s, "hi": e},
            )
    db.session.execute(
        text(
            "INSERT INTO stats_wait (institute_id, day, minutes, n) "
            "SELECT :iid, day, minutes, sum(n) FROM stats_wait "
            "WHERE institute_id > :iid AND day >= :dlo AND day < :dhi GROUP BY day, minutes"
        ),
        {"iid": ANY_INSTITUTE, **span},
    )
    hour = _hour_sql("minutes")
    db.session.execute(
        text(
            "INSERT INTO stats_wait (institute_id, day, minutes, n) "  # noqa: S608
            f"SELECT :hours, day, {hour}, sum(n) FROM stats_wait "
            f"WHERE institute_id = :iid AND day >= :dlo AND day < :dhi GROUP BY day, {hour}"
        ),
        {"iid": ANY_INSTITUTE, "hours": NATIONAL_HOURS, **span},
    )


def differences(period: Period) -> list[str]:
    """Every stored row of the period that differs from the bookings (clean days), and
    every national row that is not the sum of the institute rows (``flask stats
    check``)."""
    expected: Counter[tuple[int, dt.date, int]] = Counter()
    dirty: set[tuple[int, dt.date]] = set()
    for g in zone_groups(period, Scope.everything()):
        dirty |= _dirty_local_days(g, period.start, period.end)
        z = zone(g.timezone)
        for iid, start, created, decided in db.session.execute(
            select(Booking.institute_id, Booking.start_at, Booking.created_at, Booking.decided_at)
            .where(booking_window(g, Scope.everything()), Booking.decided_at.is_not(None))
            .execution_options(yield_per=5000)
        ):
            expected[(iid, start.astimezone(z).date(), wait_minutes(created, decided))] += 1
    stored: Counter[tuple[int, dt.date, int]] = Counter()
    for iid, day, m, n in db.session.execute(
        select(StatsWait.institute_id, StatsWait.day, StatsWait.minutes, StatsWait.n).where(
            StatsWait.day >= period.start, StatsWait.day < period.end
        )
    ):
        day = day if isinstance(day, dt.date) else dt.date.fromisoformat(day)
        stored[(int(iid), day, int(m))] += int(n)
    out = []
    summed: Counter[tuple[int, dt.date, int]] = Counter()
    for (iid, day, m), n in stored.items():
        if iid > ANY_INSTITUTE:
            summed[(ANY_INSTITUTE, day, m)] += n
        elif iid == ANY_INSTITUTE:
            summed[(NATIONAL_HOURS, day, m // 60)] += n
    for key in sorted(set(expected) | {k for k in stored if k[0] > ANY_INSTITUTE}):
        if (key[0], key[1]) in dirty or expected.get(key, 0) == stored.get(key, 0):
            continue
        out.append(
            f"waits of institute {key[0]} on {key[1]}, {key[2]} min: "
            f"stored {stored.get(key, 0)}, bookings {expected.get(key, 0)}"
        )
    for key in sorted(set(summed) | {k for k in stored if k[0] <= ANY_INSTITUTE}):
        if summed.get(key, 0) != stored.get(key, 0):
            unit = "min" if key[0] == ANY_INSTITUTE else "h"
            out.append(
                f"national waits on {key[1]}, {key[2]} {unit}: stored {stored.get(key, 0)}, "
                f"summed {summed.get(key, 0)}"
            )
    return out
