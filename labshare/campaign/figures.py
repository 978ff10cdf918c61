"""The campaign's figures for a period and scope (``statistics_for``) and the API's
totals (``campaign_totals``): the additive counters, and those that cannot be summed
(distinct and new SMEs, shared instruments, open labs, the median decision time)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    and_,
    case,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import aliased

from labshare.campaign import first_use, used, waits
from labshare.campaign.counters import Counters, _aggregate
from labshare.campaign.periods import (
    Period,
    Scope,
    ZoneGroup,
    _per_group,
    _resource_filter,
    booking_window,
    zone_groups,
)
from labshare.campaign.stored import _total_into, one_reading
from labshare.campaign.utilisation import open_lab_count
from labshare.extensions import db
from labshare.models import (
    Booking,
    BookingStatus,
    Institute,
    ResourceKind,
)
from labshare.timeutil import to_local


@dataclass(frozen=True)
class CampaignTotals:
    requested: int
    pending: int
    approved: int
    rejected: int
    cancelled: int
    completed: int
    no_show: int
    usage_hours: float
    distinct_smes: int
    fees_charged: Decimal
    fees_waived: Decimal
    shared_instruments: int
    open_labs: int
    problems_solved: int = 0


def campaign_totals(
    start: dt.datetime, end: dt.datetime, *, institute_id: int | None = None, tz: str = "UTC"
) -> CampaignTotals:
    """Totals over the bookings starting in [start, end); one institute's, or all.

    Counted as the statistics service counts (``Counters``); open labs are the labs
    open on some local day (``tz``) of the window. A window of whole local days of
    ``tz``, when every institute of the scope keeps that zone, is a ``Period``: then
    the totals are those of ``statistics_for``, the figures the pages and exports
    show (and read from the stored days)."""
    scope = Scope.institute(institute_id) if institute_id is not None else Scope.everything()
    days = _whole_days(start, end, tz)
    if days is not None and _one_zone(institute_id, tz):
        f = statistics_for(days, scope)
        return CampaignTotals(
            requested=int(f.counters["bookings_total"]),
            pending=int(f.counters["pending"]),
            approved=int(f.counters["approved"]),
            rejected=int(f.counters["rejected"]),
            cancelled=int(f.counters["cancelled"]),
            completed=int(f.counters["completed"]),
            no_show=int(f.counters["no_show"]),
            usage_hours=f.counters.usage_hours,
            distinct_smes=f.distinct_smes,
            fees_charged=f.counters.fees_charged,
            fees_waived=Decimal(f.counters["fees_waived"]),
            shared_instruments=f.shared_instruments,
            open_labs=f.open_labs,
            problems_solved=int(f.counters["problems_solved"]),
        )
    window = and_(
        Booking.institute_id == institute_id if institute_id is not None else true(),
        Booking.start_at >= start,
        Booking.start_at < end,
    )
    out: dict[Any, Counters] = {}
    _aggregate([(window, None, institute_id is None)], out)
    c = out.get(None, Counters())
    completed = Booking.status == BookingStatus.COMPLETED
    served, shared = db.session.execute(
        select(
            func.count(func.distinct(Booking.company_id)),
            func.count(
                func.distinct(
                    case((Booking.resource_kind == ResourceKind.INSTRUMENT, Booking.resource_id))
                )
            ),
        ).where(window, completed)
    ).one()
    first = to_local(start, tz).date()
    last = to_local(end - dt.timedelta(microseconds=1), tz).date()
    period = Period(first, last + dt.timedelta(days=1))
    return CampaignTotals(
        requested=int(c["bookings_total"]),
        pending=int(c["pending"]),
        approved=int(c["approved"]),
        rejected=int(c["rejected"]),
        cancelled=int(c["cancelled"]),
        completed=int(c["completed"]),
        no_show=int(c["no_show"]),
        usage_hours=c.usage_hours,
        distinct_smes=int(served or 0),
        fees_charged=c.fees_charged,
        fees_waived=Decimal(c["fees_waived"]),
        shared_instruments=int(shared or 0),
        open_labs=open_lab_count(period, scope),
        problems_solved=int(c["problems_solved"]),
    )


def _whole_days(start: dt.datetime, end: dt.datetime, tz: str) -> Period | None:
    """The local days of ``tz`` [start, end) covers exactly, when both are midnights."""
    first, last = to_local(start, tz), to_local(end, tz)
    midnight = dt.time()
    if (
        first.timetz().replace(tzinfo=None) != midnight
        or last.timetz().replace(tzinfo=None) != midnight
    ):
        return None
    if first.date() >= last.date():
        return None
    return Period(first.date(), last.date())


def _one_zone(institute_id: int | None, tz: str) -> bool:
    """Whether every institute of the scope keeps ``tz``."""
    stmt = select(func.count()).where(Institute.timezone != tz)
    if institute_id is not None:
        stmt = stmt.where(Institute.id == institute_id)
    return not db.session.scalar(stmt)


@dataclass
class Statistics:
    period: Period
    scope: Scope
    counters: Counters
    open_labs: int
    shared_instruments: int
    distinct_smes: int
    new_smes: int
    median_decision_hours: float | None

    @property
    def approval_rate(self) -> float | None:
        return self.counters.approval_rate


def _new_smes(groups: list[ZoneGroup], scope: Scope, period: Period | None) -> int:
    """From each company's first day of use (``first_use``) where it is trusted, the
    companies a marker names counted live; everything live past too many markers."""
    if not groups:
        return 0
    if period is not None and scope.kind in ("all", "province", "institute"):
        ids = [i for g in groups for i in g.institute_ids]
        stored = first_use.stored_new(period.start, period.end, scope.kind, ids)
        if stored is not None:
            new, untrusted = stored
            for chunk in first_use.chunks(untrusted):
                new += _live_sme_counts(groups, scope, chunk)[1]
            return new
    return _live_sme_counts(groups, scope)[1]


def _served_and_shared(groups: list[ZoneGroup], scope: Scope) -> tuple[int, int]:
    """Distinct companies and distinct instruments with a completed booking in the
    period, in one pass over the period's completed bookings."""
    if not groups:
        return 0, 0
    used = _per_group(
        groups,
        scope,
        Booking.company_id.label("company_id"),
        case((Booking.resource_kind == ResourceKind.INSTRUMENT, Booking.resource_id)).label(
            "instrument_id"
        ),
        where=Booking.status == BookingStatus.COMPLETED,
    ).subquery()
    served, shared = db.session.execute(
        select(
            func.count(func.distinct(used.c.company_id)),
            func.count(func.distinct(used.c.instrument_id)),
        )
    ).one()
    return int(served or 0), int(shared or 0)


def _live_sme_counts(
    groups: list[ZoneGroup], scope: Scope, companies: list[int] | None = None
) -> tuple[int, int]:
    """Distinct SMEs served and new ones, from the bookings alone (of ``companies``
    only, when given): for each company served, an index probe for an earlier
    completed booking."""
    completed = Booking.status == BookingStatus.COMPLETED
    if companies is not None:
        completed = and_(completed, Booking.company_id.in_(companies))
    served = (
        _per_group(groups, scope, Booking.company_id.label("company_id"), where=completed)
        .subquery()
        .select()
        .distinct()
        .subquery()
    )
    earlier = aliased(Booking)
    before = or_(
        *[
            and_(earlier.institute_id.in_(g.institute_ids), earlier.start_at < g.start)
            for g in groups
        ]
    )
    seen = (
        select(earlier.id)
        .where(
            earlier.company_id == served.c.company_id,
            earlier.status == BookingStatus.COMPLETED,
            before,
            _resource_filter(earlier.resource_id, scope),
        )
        .exists()
    )
    total, old = db.session.execute(
        select(func.count(), func.coalesce(func.sum(case((seen, 1), else_=0)), 0)).select_from(
            served
        )
    ).one()
    return int(total or 0), int(total or 0) - int(old or 0)


def _median_decision_hours(period: Period, groups: list[ZoneGroup], scope: Scope) -> float | None:
    """The median of the decision waits in whole minutes, in hours: from the stored
    distribution of waits (``waits``), dirty days counted live."""
    return waits.median_hours(waits.minute_counts(period, scope, groups))


def statistics_for(period: Period, scope: Scope) -> Statistics:
    """The campaign's figures for a period and scope (see the section comment)."""
    with one_reading():
        groups = zone_groups(period, scope)
        stored = used.served_and_shared(period, scope, groups)
        served, shared = stored if stored is not None else _served_and_shared(groups, scope)
        new = _new_smes(groups, scope, period)
        counters: dict[Any, Counters] = {}
        _total_into(period, scope, groups, counters)
        return Statistics(
            period=period,
            scope=scope,
            counters=counters.get(None, Counters()),
            open_labs=open_lab_count(period, scope),
            shared_instruments=shared,
            distinct_smes=served,
            new_smes=new,
            median_decision_hours=_median_decision_hours(period, groups, scope),
        )


def distinct_smes_by_institute(period: Period, scope: Scope) -> dict[int, int]:
    out: dict[int, int] = {}
    for group in zone_groups(period, scope):
        for iid, n in db.session.execute(
            select(Booking.institute_id, func.count(func.distinct(Booking.company_id)))
            .where(booking_window(group, scope), Booking.status == BookingStatus.COMPLETED)
            .group_by(Booking.institute_id)
        ):
            out[iid] = int(n)
    return out
