"""Each company's first day of use (``stats_first_use``), so that the new SMEs of a
period are a range count instead of one index probe per company served.

A company is new in a period when its first completed booking in the scope starts on
a local day inside the period: the least ``day`` over the scope's institutes (for all
institutes, the ``ANY_INSTITUTE`` row) lies in [start, end). Local days are each
institute's own, as everywhere in the statistics.

Never trusted blindly, like ``stats_daily``: a company is *affected* while a
``stats_dirty`` marker (institute, UTC day) names a booking of it at that institute
on that UTC day, or names the UTC day of its stored first day (or the day either side:
a local day lies within them), which covers a first booking since deleted or moved.
Reads count the affected companies live from the bookings and take the others from
the table; the ``rollup`` job (``refresh``) recomputes the affected companies of the
marker it removes, ``rebuild`` recomputes everything.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, delete, func, insert, literal_column, or_, select, text
from sqlalchemy.orm import aliased

from labshare.extensions import db
from labshare.models import (
    ANY_INSTITUTE,
    Booking,
    BookingStatus,
    Institute,
    StatsDirty,
    StatsFirstUse,
)
from labshare.timeutil import to_local, zone

ONE_DAY = dt.timedelta(days=1)
#: Past this many (institute, UTC day) markers, reads count the new SMEs live whole.
MAX_MARKERS = 400
_CHUNK = 500
_ANY: Any = literal_column(str(ANY_INSTITUTE))


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def chunks(values: Iterable[int]) -> Iterable[list[int]]:
    items = sorted(values)
    for n in range(0, len(items), _CHUNK):
        yield items[n : n + _CHUNK]


def _booked_on(pairs: list[tuple[int, dt.date]]) -> set[int]:
    """Companies with a booking (any status) at the institute on the UTC day."""
    out: set[int] = set()
    for n in range(0, len(pairs), 50):
        cond = or_(
            *[
                and_(
                    Booking.institute_id == iid,
                    Booking.start_at >= _utc_midnight(day),
                    Booking.start_at < _utc_midnight(day + ONE_DAY),
                )
                for iid, day in pairs[n : n + 50]
            ]
        )
        out.update(db.session.scalars(select(Booking.company_id).where(cond).distinct()))
    return out


def _stored_near(pairs: list[tuple[int, dt.date]]) -> set[int]:
    """Companies whose stored first day at the institute is the UTC day or either
    neighbour."""
    out: set[int] = set()
    for n in range(0, len(pairs), 50):
        cond = or_(
            *[
                and_(
                    StatsFirstUse.institute_id == iid,
                    StatsFirstUse.day >= day - ONE_DAY,
                    StatsFirstUse.day <= day + ONE_DAY,
                )
                for iid, day in pairs[n : n + 50]
            ]
        )
        out.update(db.session.scalars(select(StatsFirstUse.company_id).where(cond)))
    return out


def affected(pairs: list[tuple[int, dt.date]]) -> set[int]:
    """The companies whose stored rows the markers ``pairs`` make untrusted."""
    if not pairs:
        return set()
    return _booked_on(pairs) | _stored_near(pairs)


def _store_any(companies: list[int]) -> None:
    """The ``ANY_INSTITUTE`` rows of ``companies`` from their per-institute rows."""
    db.session.execute(
        delete(StatsFirstUse).where(
            StatsFirstUse.institute_id == ANY_INSTITUTE, StatsFirstUse.company_id.in_(companies)
        )
    )
    db.session.execute(
        insert(StatsFirstUse).from_select(
            ["company_id", "institute_id", "day"],
            select(
                StatsFirstUse.company_id,
                literal_column(str(ANY_INSTITUTE)),
                func.min(StatsFirstUse.day),
            )
            .where(
                StatsFirstUse.institute_id != ANY_INSTITUTE,
                StatsFirstUse.company_id.in_(companies),
            )
            .group_by(StatsFirstUse.company_id),
        )
    )


def refresh(institute_id: int, day: dt.date, tz: str | None) -> None:
    """Recompute the rows of the companies the marker (institute, UTC day) names, in
    the caller's transaction (``stats_store.clean_pair``, which removes the marker)."""
    companies = affected([(institute_id, day)])
    for chunk in chunks(companies):
        db.session.execute(
            delete(StatsFirstUse).where(
                StatsFirstUse.institute_id == institute_id, StatsFirstUse.company_id.in_(chunk)
            )
        )
        rows = []
        if tz is not None:  # else the institute is gone, and its bookings with it
            for company_id, first in db.session.execute(
                select(Booking.company_id, func.min(Booking.start_at))
                .where(
                    Booking.company_id.in_(chunk),
                    Booking.status == BookingStatus.COMPLETED,
                    Booking.institute_id == institute_id,
                )
                .group_by(Booking.company_id)
            ):
                rows.append(
                    {
                        "company_id": company_id,
                        "institute_id": institute_id,
                        "day": to_local(first, tz).date(),
                    }
                )
        if rows:
            db.session.execute(insert(StatsFirstUse), rows)
        _store_any(chunk)


def rebuild() -> None:
    """Recompute the whole table from the bookings, in the caller's transaction."""
    from labshare.campaign.local_days import _midnight, _offset_spans, _shifted_day, _zones

    db.session.execute(delete(StatsFirstUse))
    completed = Booking.status == BookingStatus.COMPLETED
    first, last = db.session.execute(
        select(func.min(Booking.start_at), func.max(Booking.start_at)).where(completed)
    ).one()
    if first is None:
        return
    keep_least = (
        "CASE WHEN excluded.day < stats_first_use.day THEN excluded.day "
        "ELSE stats_first_use.day END"
    )
    for tz, ids in _zones().items():
        lo = _midnight(first.date() - ONE_DAY, tz)
        hi = _midnight(last.date() + 2 * ONE_DAY, tz)
        for s, e, minutes in _offset_spans(tz, lo, hi):
            day = _shifted_day(minutes)
            # Only fixed fragments and integer ids are joined; the bounds are parameters.
            db.session.execute(
                text(
                    "INSERT INTO stats_first_use (company_id, institute_id, day) "  # noqa: S608
                    f"SELECT b.company_id, b.institute_id, min({day}) FROM booking b "
                    f"WHERE b.status = 'completed' AND b.institute_id IN "
                    f"({', '.join(str(int(i)) for i in ids)}) "
                    "AND b.start_at >= :lo AND b.start_at < :hi "
                    "GROUP BY b.company_id, b.institute_id "
                    "ON CONFLICT (company_id, institute_id) DO UPDATE SET day = "
                    f"{keep_least}"
                ),
                {"lo": s, "hi": e},
            )
    db.session.execute(
        insert(StatsFirstUse).from_select(
            ["company_id", "institute_id", "day"],
            select(
                StatsFirstUse.company_id,
                literal_column(str(ANY_INSTITUTE)),
                func.min(StatsFirstUse.day),
            )
            .where(StatsFirstUse.institute_id != ANY_INSTITUTE)
            .group_by(StatsFirstUse.company_id),
        )
    )


def markers(institute_ids: Iterable[int] | None = None) -> list[tuple[int, dt.date]]:
    """Every (institute, UTC day) a marker names (of these institutes; None: all)."""
    stmt = select(StatsDirty.institute_id, StatsDirty.day).distinct()
    if institute_ids is not None:
        stmt = stmt.where(StatsDirty.institute_id.in_(list(institute_ids)))
    return [(int(i), d) for i, d in db.session.execute(stmt.order_by(StatsDirty.day))]


def stored_new(
    start: dt.date, end: dt.date, kind: str, institute_ids: list[int]
) -> tuple[int, set[int]] | None:
    """The new SMEs of the local days [start, end) the table can answer for, and the
    affected companies the caller must count live; None when too many markers make
    counting everything live the better way. ``kind``: "all", "province" or
    "institute" (then ``institute_ids`` are the scope's)."""
    pairs = markers(None if kind == "all" else institute_ids)
    if len(pairs) > MAX_MARKERS:
        return None
    untrusted = affected(pairs)
    if kind == "province":
        # First in the period at one of the institutes and at none of them before: the
        # period's slice of (institute, day) and a probe per company found, not a
        # GROUP BY over the institutes' whole history.
        earlier = aliased(StatsFirstUse)
        stmt: Any = (
            select(StatsFirstUse.company_id)
            .where(
                StatsFirstUse.institute_id.in_(institute_ids),
                StatsFirstUse.day >= start,
                StatsFirstUse.day < end,
                ~select(earlier.company_id)
                .where(
                    earlier.company_id == StatsFirstUse.company_id,
                    earlier.institute_id.in_(institute_ids),
                    earlier.day < start,
                )
                .exists(),
            )
            .distinct()
        )
    else:
        iid = ANY_INSTITUTE if kind == "all" else institute_ids[0]
        stmt = select(StatsFirstUse.company_id).where(
            StatsFirstUse.institute_id == iid, StatsFirstUse.day >= start, StatsFirstUse.day < end
        )
    if not untrusted:
        n = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return int(n or 0), untrusted
    return sum(1 for c in db.session.scalars(stmt) if c not in untrusted), untrusted


def differences() -> list[str]:
    """Every stored row that differs from a count over the bookings, for the companies
    no marker makes untrusted (``flask stats check``)."""
    untrusted = affected(markers())
    tz_of: dict[int, str] = {
        int(i): str(z) for i, z in db.session.execute(select(Institute.id, Institute.timezone))
    }
    expected: dict[tuple[int, int], dt.date] = {}
    for company_id, iid, first in db.session.execute(
        select(Booking.company_id, Booking.institute_id, func.min(Booking.start_at))
        .where(Booking.status == BookingStatus.COMPLETED)
        .group_by(Booking.company_id, Booking.institute_id)
    ):
        local = first.astimezone(zone(tz_of[iid])).date()
        expected[(company_id, iid)] = local
        key = (company_id, ANY_INSTITUTE)
        expected[key] = min(expected.get(key, local), local)
    stored = {
        (c, i): d
        for c, i, d in db.session.execute(
            select(StatsFirstUse.company_id, StatsFirstUse.institute_id, StatsFirstUse.day)
        )
    }
    out = []
    by_company: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for key in set(expected) | set(stored):
        by_company[key[0]].append(key)
    for company_id in sorted(by_company):
        if company_id in untrusted:
            continue
        for key in sorted(by_company[company_id]):
            if expected.get(key) != stored.get(key):
                where = "any institute" if key[1] == ANY_INSTITUTE else f"institute {key[1]}"
                out.append(
                    f"first use of company {company_id} at {where}: "
                    f"stored {stored.get(key)}, bookings {expected.get(key)}"
                )
    return out
