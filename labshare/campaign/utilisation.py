"""Resources of a scope, their open and booked hours, the weekday x hour heat map, and
the open labs of a period."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Table,
    false,
    func,
    select,
    true,
)

from labshare.booking import workdays
from labshare.booking.rules import closes_next_day, period_minutes
from labshare.campaign.counters import BOOKED_STATUSES, Counters
from labshare.campaign.periods import Period, Scope, _resource_filter, booking_window, zone_groups
from labshare.extensions import db
from labshare.models import (
    Booking,
    Closure,
    Institute,
    Instrument,
    OpeningPeriod,
    Resource,
    ResourceKind,
    ResourceStatus,
)
from labshare.timeutil import to_local, zone


@dataclass
class ResourceInfo:
    id: int
    kind: str
    name: str
    field: str
    institute_id: int
    institute_code: str
    institute_name: str
    province_code: str
    province: str
    lab_id: int | None
    status: str


@dataclass
class Utilisation:
    booked_hours: dict[int, float]
    open_hours: dict[int, float]
    heat: list[list[float]]  # [weekday][hour] booked hours, local time

    def ratio(self, resource_id: int) -> float | None:
        opened = self.open_hours.get(resource_id, 0.0)
        if opened <= 0:
            return None
        return round(self.booked_hours.get(resource_id, 0.0) / opened, 4)


_INSTRUMENT = cast(Table, Instrument.__table__)


def resources_in(
    scope: Scope, *, ids: Iterable[int] | None = None, labs_only: bool = False
) -> dict[int, ResourceInfo]:
    stmt = (
        select(
            Resource.id,
            Resource.kind,
            Resource.name,
            Resource.field,
            Resource.institute_id,
            Institute.code,
            Institute.name,
            Institute.province_code,
            Institute.province,
            _INSTRUMENT.c.lab_id,
            Resource.status,
        )
        .join(Institute, Institute.id == Resource.institute_id)
        .outerjoin(_INSTRUMENT, _INSTRUMENT.c.id == Resource.id)
        .order_by(Resource.id)
    )
    if scope.kind == "province":
        stmt = stmt.where(Institute.province_code == scope.province_code)
    elif scope.kind == "institute":
        stmt = stmt.where(Resource.institute_id == scope.institute_id)
    elif scope.kind in ("lab", "instrument"):
        stmt = stmt.where(_resource_filter(Resource.id, scope))
    if ids is not None:
        stmt = stmt.where(Resource.id.in_(list(ids)))
    if labs_only:
        stmt = stmt.where(Resource.kind == ResourceKind.LAB)
    return {
        row[0]: ResourceInfo(
            id=row[0],
            kind=str(row[1]),
            name=row[2],
            field=str(row[3]),
            institute_id=row[4],
            institute_code=row[5],
            institute_name=row[6],
            province_code=row[7],
            province=row[8],
            lab_id=row[9],
            status=str(row[10]),
        )
        for row in db.session.execute(stmt)
    }


def _merge(spans: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def open_hours(period: Period, resources: dict[int, ResourceInfo]) -> dict[int, float]:
    """Hours each lab and instrument was open in the period: its lab's weekly opening
    hours on each local day, less the closures of the lab and of the resource."""
    lab_ids = {r.id if r.kind == ResourceKind.LAB else r.lab_id for r in resources.values()}
    lab_ids.discard(None)
    if not lab_ids:
        return {}
    tz_of: dict[int, str] = {}
    for rid, tz in db.session.execute(
        select(Resource.id, Institute.timezone)
        .join(Institute, Institute.id == Resource.institute_id)
        .where(Resource.id.in_(lab_ids))
    ):
        tz_of[rid] = tz
    hours: dict[int, dict[int, list[tuple[dt.time, dt.time]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for lab_id, weekday, opens, closes in db.session.execute(
        select(
            OpeningPeriod.lab_id, OpeningPeriod.weekday, OpeningPeriod.opens, OpeningPeriod.closes
        ).where(OpeningPeriod.lab_id.in_(lab_ids))
    ):
        hours[lab_id][weekday].append((opens, closes))
    weekday_count = [0] * 7
    for n in range(period.days):
        weekday_count[(period.start + dt.timedelta(days=n)).weekday()] += 1

    base: dict[int, float] = {
        lab_id: sum(
            weekday_count[wd] * sum(period_minutes(o, c) for o, c in spans)
            for wd, spans in week.items()
        )
        / 60
        for lab_id, week in hours.items()
    }
    # Public holidays and make-up workdays of the labs that follow them.
    lab_days = workdays.days_of_labs(hours)
    for lab_id, days in lab_days.items():
        base[lab_id] += workdays.minutes_changed(period.start, period.end, hours[lab_id], days) / 60
    # Closures: rare, subtracted exactly.
    pad = dt.timedelta(days=2)
    lo = dt.datetime.combine(period.start, dt.time(), dt.UTC) - pad
    hi = dt.datetime.combine(period.end, dt.time(), dt.UTC) + pad
    ids = set(resources) | lab_ids
    closures: dict[int, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for rid, s, e in db.session.execute(
        select(Closure.resource_id, Closure.start_at, Closure.end_at).where(
            Closure.resource_id.in_(ids), Closure.end_at > lo, Closure.start_at < hi
        )
    ):
        closures[rid].append((s, e))
    out: dict[int, float] = {}
    for r in resources.values():
        lab_id = r.id if r.kind == ResourceKind.LAB else r.lab_id
        if lab_id is None:
            continue
        total = base.get(lab_id, 0.0)
        spans = _merge(
            closures.get(lab_id, []) + (closures.get(r.id, []) if r.id != lab_id else [])
        )
        if spans and total:
            total -= (
                _closed_minutes(period, hours[lab_id], tz_of[lab_id], spans, lab_days.get(lab_id))
                / 60
            )
        out[r.id] = round(max(total, 0.0), 4)
    return out


def _closed_minutes(
    period: Period,
    week: dict[int, list[tuple[dt.time, dt.time]]],
    tz: str,
    spans: list[tuple[dt.datetime, dt.datetime]],
    days: workdays.Days | None = None,
) -> float:
    z = zone(tz)
    weekday_of = (
        workdays.weekday_rule(
            days, [(wd, o, c) for wd, periods in week.items() for o, c in periods]
        )
        if days is not None
        else dt.date.weekday
    )
    closed = 0.0
    first = max(period.start, to_local(spans[0][0], tz).date())
    last = min(period.end - dt.timedelta(days=1), to_local(spans[-1][1], tz).date())
    day = first
    while day <= last:
        weekday = weekday_of(day)
        for opens, closes in week.get(weekday, []) if weekday is not None else []:
            o = dt.datetime.combine(day, opens, z).astimezone(dt.UTC)
            closing_day = day + dt.timedelta(days=1) if closes_next_day(opens, closes) else day
            c = dt.datetime.combine(closing_day, closes, z).astimezone(dt.UTC)
            for s, e in spans:
                overlap = (min(c, e) - max(o, s)).total_seconds()
                if overlap > 0:
                    closed += overlap / 60
        day += dt.timedelta(days=1)
    return closed


def utilisation(
    period: Period,
    scope: Scope,
    resources: dict[int, ResourceInfo] | None = None,
    *,
    heat_map: bool = True,
) -> Utilisation:
    """Booked hours (approved, completed, no-show) per resource, the weekday × hour
    heat map of booked hours (local time), and open hours per resource."""
    resources = resources if resources is not None else resources_in(scope)
    booked: dict[int, float] = defaultdict(float)
    heat = [[0.0] * 24 for _ in range(7)]
    for group in zone_groups(period, scope):
        z = zone(group.timezone)
        for rid, start, end in db.session.execute(
            select(Booking.resource_id, Booking.start_at, Booking.end_at)
            .where(booking_window(group, scope), Booking.status.in_(BOOKED_STATUSES))
            .execution_options(yield_per=5000)
        ):
            booked[rid] += (end - start).total_seconds() / 3600
            if not heat_map:
                continue
            cursor = start.astimezone(z)
            stop = end.astimezone(z)
            while cursor < stop:
                nxt = min(
                    stop, cursor.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
                )
                heat[cursor.weekday()][cursor.hour] += (nxt - cursor).total_seconds() / 3600
                cursor = nxt
    return Utilisation(
        {k: round(v, 4) for k, v in booked.items()},
        open_hours(period, resources),
        [[round(h, 2) for h in row] for row in heat],
    )


def shared_instrument_ids(
    by_resource: dict[int, Counters], resources: dict[int, ResourceInfo]
) -> set[int]:
    return {
        rid
        for rid, c in by_resource.items()
        if c["completed"] > 0
        and rid in resources
        and resources[rid].kind == ResourceKind.INSTRUMENT
    }


def open_lab_ids(resources: dict[int, ResourceInfo], hours: dict[int, float]) -> set[int]:
    """Available labs with at least one bookable period (open hours) in the period."""
    return {
        r.id
        for r in resources.values()
        if r.kind == ResourceKind.LAB
        and r.status == ResourceStatus.AVAILABLE
        and hours.get(r.id, 0) > 0
    }


def _lab_scope(scope: Scope) -> ColumnElement[bool]:
    if scope.kind == "province":
        return Resource.institute_id.in_(
            select(Institute.id).where(Institute.province_code == scope.province_code)
        )
    if scope.kind == "institute":
        return Resource.institute_id == scope.institute_id
    if scope.kind == "lab":
        return Resource.id == scope.resource_id
    if scope.kind == "instrument":
        return false()
    return true()


def open_lab_count(period: Period, scope: Scope) -> int:
    """``len(open_lab_ids(...))`` without the hour arithmetic for every lab: an available
    lab with opening hours on a weekday the period has is open, unless a closure
    overlaps the period; only those few are measured exactly."""
    weekdays = sorted({(period.start + dt.timedelta(days=n)).weekday() for n in range(7)})
    if period.days < 7:
        weekdays = sorted(
            {(period.start + dt.timedelta(days=n)).weekday() for n in range(period.days)}
        )
    if not weekdays:
        return 0
    # Kept in the database: a national scope has thousands of labs, too many to bind.
    candidates = select(Resource.id).where(
        Resource.kind == ResourceKind.LAB,
        Resource.status == ResourceStatus.AVAILABLE,
        _lab_scope(scope),
        select(OpeningPeriod.id)
        .where(
            OpeningPeriod.lab_id == Resource.id,
            # any period has hours: closes <= opens runs past midnight (00:00 is 24:00)
            OpeningPeriod.weekday.in_(weekdays),
        )
        # OFFSET 0 keeps PostgreSQL from turning this into a join that reads every
        # opening period (~10 a lab) and sorts them: one index probe per lab instead.
        .offset(0)
        .exists(),
    )
    count = int(db.session.scalar(select(func.count()).select_from(candidates.subquery())) or 0)
    if not count:
        return 0
    pad = dt.timedelta(days=2)
    lo = dt.datetime.combine(period.start, dt.time(), dt.UTC) - pad
    hi = dt.datetime.combine(period.end, dt.time(), dt.UTC) + pad
    # The period's closures first (few, usually none), then which of them are
    # candidates: no second pass over every lab when nothing closed.
    closed = set(
        db.session.scalars(
            select(Closure.resource_id).where(Closure.end_at > lo, Closure.start_at < hi).distinct()
        )
    )
    if closed:
        ids = sorted(closed)
        closed = {
            rid
            for n in range(0, len(ids), 500)
            for rid in db.session.scalars(candidates.where(Resource.id.in_(ids[n : n + 500])))
        }
    if not closed:
        return count
    infos = {
        k: v
        for k, v in resources_in(Scope.everything(), ids=closed).items()
        if v.kind == ResourceKind.LAB
    }
    still_open = open_lab_ids(infos, open_hours(period, infos))
    return count - len(closed) + len(still_open)
