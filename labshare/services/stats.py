"""Campaign statistics, first version: totals computed directly from bookings.

Counts the bookings that start in [start, end). ``approved`` counts bookings that
are approved now (not yet completed, cancelled or marked no-show).

Late cancellations (issue 8: a company's cancellation within the rules'
``late_cancel_hours`` before the start, ``booking.late_cancellation``) count as
no-shows everywhere here (campaign totals, the statistics service and its roll-up,
reports and exports): in ``no_show``, not in ``cancelled``, so the totals still
add up and the field names stay those of API.md. Their time was freed, so they do
not count in booked hours (``BOOKED_STATUSES``); being ``no_show``, they count as
approved in the approval rate. ``counted_status`` is the one place that decides.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from array import array
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, literal, select, true

from labshare.extensions import db
from labshare.models import (
    Booking,
    BookingStatus,
    Closure,
    Institute,
    Instrument,
    Lab,
    OpeningPeriod,
    Resource,
    ResourceKind,
    ResourceStatus,
    ServiceType,
    UsageDaily,
    UsageRecord,
)
from labshare.services.rules import closes_next_day, period_minutes
from labshare.timeutil import to_local, utcnow, zone


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


def campaign_totals(
    start: dt.datetime, end: dt.datetime, *, institute_id: int | None = None
) -> CampaignTotals:
    """Totals over the bookings starting in [start, end); one institute's, or all."""
    scope: ColumnElement[bool] = (
        Booking.institute_id == institute_id if institute_id is not None else true()
    )
    window = and_(scope, Booking.start_at >= start, Booking.start_at < end)

    by_status: dict[BookingStatus, int] = defaultdict(int)
    for status, late, n in db.session.execute(
        select(Booking.status, Booking.late_cancellation, func.count(Booking.id))
        .where(window)
        .group_by(Booking.status, Booking.late_cancellation)
    ):
        by_status[BookingStatus(counted_status(status, late))] += int(n)
    completed = Booking.status == BookingStatus.COMPLETED
    fees = db.session.execute(
        select(
            func.coalesce(func.sum(Booking.fee), 0),
            func.coalesce(func.sum(Booking.fee_waived), 0),
            func.count(func.distinct(Booking.company_id)),
        ).where(window, completed)
    ).one()
    shared = db.session.scalar(
        select(func.count(func.distinct(Booking.resource_id))).where(
            window,
            Booking.resource_kind == ResourceKind.INSTRUMENT,
            Booking.status.in_(
                (BookingStatus.APPROVED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW)
            ),
        )
    )
    # Durations are summed here rather than in SQL: interval arithmetic differs
    # between SQLite and PostgreSQL, and one row per completed booking is small.
    usage_seconds = sum(
        (out - inn).total_seconds()
        for inn, out in db.session.execute(
            select(UsageRecord.checked_in_at, UsageRecord.checked_out_at)
            .join(Booking, Booking.id == UsageRecord.booking_id)
            .where(window)
        )
    )
    lab_scope: ColumnElement[bool] = (
        Lab.institute_id == institute_id if institute_id is not None else true()
    )
    open_labs = db.session.scalar(
        select(func.count(Lab.id)).where(lab_scope, Lab.status == ResourceStatus.AVAILABLE)
    )
    charged_gross = Decimal(fees[0])
    waived = Decimal(fees[1])
    return CampaignTotals(
        requested=sum(by_status.values()),
        pending=by_status.get(BookingStatus.PENDING, 0),
        approved=by_status.get(BookingStatus.APPROVED, 0),
        rejected=by_status.get(BookingStatus.REJECTED, 0),
        cancelled=by_status.get(BookingStatus.CANCELLED, 0),
        completed=by_status.get(BookingStatus.COMPLETED, 0),
        no_show=by_status.get(BookingStatus.NO_SHOW, 0),
        usage_hours=round(usage_seconds / 3600, 2),
        distinct_smes=int(fees[2]),
        fees_charged=charged_gross - waived,
        fees_waived=waived,
        shared_instruments=int(shared or 0),
        open_labs=int(open_labs or 0),
    )


# -- the statistics service: any period, any scope -------------------------------------
#
# A booking counts on the local day (its institute's zone) on which it starts, as in
# the nightly roll-up (``usage_daily``). Additive counters come from the roll-up for
# the days before today (in each institute's zone) and from the bookings themselves
# for today and later; figures that do not add up across days (distinct and new SMEs,
# the median time to a decision, booked hours, open hours) are computed from the
# bookings and the opening hours directly.

#: The additive counters, named as the columns of ``usage_daily``.
STATUS_FIELDS: tuple[str, ...] = tuple(str(s) for s in BookingStatus)
SERVICE_FIELDS: tuple[str, ...] = tuple(str(s) for s in ServiceType)
COUNTER_FIELDS: tuple[str, ...] = (
    "bookings_total",
    *STATUS_FIELDS,
    "usage_minutes",
    *SERVICE_FIELDS,
    "problems_solved",
    "fees",
    "fees_waived",
)
_MONEY_FIELDS = frozenset({"fees", "fees_waived"})
#: Statuses whose time was taken from the resource (booked hours, the heat map).
BOOKED_STATUSES = (BookingStatus.APPROVED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW)
SCOPE_KINDS = ("all", "province", "institute", "lab", "instrument")


@dataclass
class Counters:
    """Additive figures; ``fees`` is the gross fee of completed bookings."""

    values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in COUNTER_FIELDS:
            self.values.setdefault(name, Decimal("0") if name in _MONEY_FIELDS else 0)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def add(self, other: Counters) -> None:
        for name in COUNTER_FIELDS:
            self.values[name] += other.values[name]

    def add_booking(
        self,
        status: str,
        fee: Decimal | None,
        waived: Decimal | None,
        usage_minutes: int | None,
        service: str | None,
        solved: bool | None,
    ) -> None:
        """One booking, counted exactly as ``labshare.jobs.rollup`` counts it."""
        v = self.values
        v["bookings_total"] += 1
        v[str(status)] += 1
        if usage_minutes is not None:
            v["usage_minutes"] += usage_minutes
            v[str(service)] += 1
            v["problems_solved"] += 1 if solved else 0
        if status == BookingStatus.COMPLETED:
            v["fees"] += fee or Decimal("0")
            v["fees_waived"] += waived or Decimal("0")

    @property
    def usage_hours(self) -> float:
        return round(int(self.values["usage_minutes"]) / 60, 2)

    @property
    def fees_charged(self) -> Decimal:
        """What SMEs paid: the fees of completed bookings after waivers."""
        return Decimal(self.values["fees"]) - Decimal(self.values["fees_waived"])

    @property
    def person_times(self) -> int:
        return sum(int(self.values[s]) for s in SERVICE_FIELDS)

    @property
    def approval_rate(self) -> float | None:
        """Approved (whatever happened next) over decided requests."""
        v = self.values
        yes = v["approved"] + v["completed"] + v["no_show"]
        decided = yes + v["rejected"]
        return round(yes / decided, 4) if decided else None


def counted_status(status: str, late_cancellation: bool | None) -> str:
    """The status a booking counts under in statistics: a late cancellation
    counts as a no-show (booking policies, issue 8)."""
    if late_cancellation and status == BookingStatus.CANCELLED:
        return str(BookingStatus.NO_SHOW)
    return str(status)


def usage_minutes_of(checked_in: dt.datetime, checked_out: dt.datetime) -> int:
    """Whole minutes of one usage record (as the roll-up counts them)."""
    return int((checked_out - checked_in).total_seconds() // 60)


@dataclass(frozen=True)
class Period:
    """Local calendar days [start, end) in each institute's own zone."""

    start: dt.date
    end: dt.date

    @classmethod
    def month(cls, text: str) -> Period:
        """``YYYY-MM``; ValueError when it is not one."""
        if not re.fullmatch(r"\d{4}-\d{2}", text or ""):
            raise ValueError(text)
        first = dt.date(int(text[:4]), int(text[5:]), 1)
        return cls(first, (first + dt.timedelta(days=32)).replace(day=1))

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def label(self) -> str:
        last = self.end - dt.timedelta(days=1)
        return f"{self.start.isoformat()} – {last.isoformat()}"


@dataclass(frozen=True)
class Scope:
    """Everything, a province (by code), an institute, a lab (with its instruments)
    or an instrument."""

    kind: str = "all"
    province_code: str | None = None
    institute_id: int | None = None
    resource_id: int | None = None

    @classmethod
    def everything(cls) -> Scope:
        return cls()

    @classmethod
    def province(cls, code: str) -> Scope:
        return cls("province", province_code=code)

    @classmethod
    def institute(cls, institute_id: int) -> Scope:
        return cls("institute", institute_id=institute_id)

    @classmethod
    def lab(cls, lab: Lab) -> Scope:
        return cls("lab", institute_id=lab.institute_id, resource_id=lab.id)

    @classmethod
    def instrument(cls, instrument: Instrument) -> Scope:
        return cls("instrument", institute_id=instrument.institute_id, resource_id=instrument.id)


@dataclass(frozen=True)
class ZoneGroup:
    """Institutes of the scope that share a time zone, and the period's UTC bounds there."""

    timezone: str
    institute_ids: tuple[int, ...]
    start: dt.datetime
    end: dt.datetime
    today: dt.date


def _midnight(day: dt.date, tz: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), zone(tz)).astimezone(dt.UTC)


def zone_groups(period: Period, scope: Scope) -> list[ZoneGroup]:
    stmt = select(Institute.id, Institute.timezone).order_by(Institute.id)
    if scope.kind == "province":
        stmt = stmt.where(Institute.province_code == scope.province_code)
    elif scope.kind != "all":
        stmt = stmt.where(Institute.id == scope.institute_id)
    zones: dict[str, list[int]] = defaultdict(list)
    for iid, tz in db.session.execute(stmt):
        zones[tz].append(iid)
    now = utcnow()
    return [
        ZoneGroup(
            tz,
            tuple(ids),
            _midnight(period.start, tz),
            _midnight(period.end, tz),
            to_local(now, tz).date(),
        )
        for tz, ids in sorted(zones.items())
    ]


def _lab_resource_ids(lab_id: int) -> Any:
    return select(Instrument.id).where(Instrument.lab_id == lab_id).union(select(literal(lab_id)))


def _resource_filter(column: Any, scope: Scope) -> ColumnElement[bool]:
    if scope.kind == "instrument":
        return cast(ColumnElement[bool], column == scope.resource_id)
    if scope.kind == "lab" and scope.resource_id is not None:
        return cast(ColumnElement[bool], column.in_(_lab_resource_ids(scope.resource_id)))
    return true()


def booking_window(group: ZoneGroup, scope: Scope, start: dt.datetime | None = None) -> Any:
    return and_(
        Booking.institute_id.in_(group.institute_ids),
        _resource_filter(Booking.resource_id, scope),
        Booking.start_at >= (start or group.start),
        Booking.start_at < group.end,
    )


def _key_of(key: str, day_col: Any, resource_col: Any, institute_col: Any) -> Any:
    return {"day": day_col, "resource": resource_col, "institute": institute_col}[key]


def _rollup_counters(
    groups: list[ZoneGroup], period: Period, scope: Scope, key: str
) -> dict[Any, Counters]:
    out: dict[Any, Counters] = defaultdict(Counters)
    columns = [func.coalesce(func.sum(getattr(UsageDaily, f)), 0) for f in COUNTER_FIELDS]
    for group in groups:
        last = min(period.end, group.today)
        if last <= period.start:
            continue
        key_col = _key_of(key, UsageDaily.day, UsageDaily.resource_id, UsageDaily.institute_id)
        stmt = (
            select(key_col, *columns)
            .where(
                UsageDaily.resource_id.is_not(None),
                UsageDaily.institute_id.in_(group.institute_ids),
                UsageDaily.day >= period.start,
                UsageDaily.day < last,
                _resource_filter(UsageDaily.resource_id, scope),
            )
            .group_by(key_col)
        )
        for row in db.session.execute(stmt):
            c = Counters(
                {
                    f: (Decimal(v) if f in _MONEY_FIELDS else int(v))
                    for f, v in zip(COUNTER_FIELDS, row[1:], strict=True)
                }
            )
            out[row[0]].add(c)
    return out


def _live_rows(group: ZoneGroup, scope: Scope, since: dt.datetime | None) -> Any:
    stmt = (
        select(
            Booking.start_at,
            Booking.resource_id,
            Booking.institute_id,
            Booking.status,
            Booking.fee,
            Booking.fee_waived,
            UsageRecord.checked_in_at,
            UsageRecord.checked_out_at,
            UsageRecord.service_type,
            UsageRecord.problem_solved,
            Booking.late_cancellation,  # booking policies: counted as a no-show
        )
        .outerjoin(UsageRecord, UsageRecord.booking_id == Booking.id)
        .where(booking_window(group, scope, since))
        .execution_options(yield_per=5000)
    )
    return db.session.execute(stmt)


def _live_counters(
    groups: list[ZoneGroup], period: Period, scope: Scope, key: str, *, everything: bool = False
) -> dict[Any, Counters]:
    """Counters computed from the bookings: today and later (``everything``: the whole
    period, the direct computation)."""
    out: dict[Any, Counters] = defaultdict(Counters)
    for group in groups:
        since = group.start
        if not everything:
            first_live = max(period.start, group.today)
            if first_live >= period.end:
                continue
            since = _midnight(first_live, group.timezone)
        tz = zone(group.timezone)
        for row in _live_rows(group, scope, since):
            start, rid, iid, raw_status, fee, waived, cin, cout, service, solved, late = row
            status = counted_status(raw_status, late)
            if key == "day":
                k: Any = start.astimezone(tz).date()
            else:
                k = rid if key == "resource" else iid
            minutes = usage_minutes_of(cin, cout) if cin is not None else None
            out[k].add_booking(status, fee, waived, minutes, service, solved)
    return out


def counters_by(
    period: Period, scope: Scope, key: str, *, direct: bool = False
) -> dict[Any, Counters]:
    """Counters per ``key`` ("day", "resource" or "institute"): the roll-up for past
    days plus today's live data (``direct``: everything from the bookings)."""
    groups = zone_groups(period, scope)
    if direct:
        return dict(_live_counters(groups, period, scope, key, everything=True))
    merged = _rollup_counters(groups, period, scope, key)
    for k, c in _live_counters(groups, period, scope, key).items():
        merged[k].add(c)
    return dict(merged)


def _total(parts: Iterable[Counters]) -> Counters:
    total = Counters()
    for c in parts:
        total.add(c)
    return total


def _company_ids(groups: list[ZoneGroup], scope: Scope, *, before: bool = False) -> set[int]:
    ids: set[int] = set()
    for group in groups:
        window = (
            and_(
                Booking.institute_id.in_(group.institute_ids),
                _resource_filter(Booking.resource_id, scope),
                Booking.start_at < group.start,
            )
            if before
            else booking_window(group, scope)
        )
        ids.update(
            db.session.scalars(
                select(Booking.company_id)
                .where(window, Booking.status == BookingStatus.COMPLETED)
                .distinct()
            )
        )
    return ids


def _median_decision_hours(groups: list[ZoneGroup], scope: Scope) -> float | None:
    waits = array("d")  # 8 bytes a booking; the rows themselves are streamed
    for group in groups:
        for created, decided in db.session.execute(
            select(Booking.created_at, Booking.decided_at)
            .where(booking_window(group, scope), Booking.decided_at.is_not(None))
            .execution_options(yield_per=5000)
        ):
            waits.append((decided - created).total_seconds() / 3600)
    return round(statistics.median(waits), 2) if waits else None


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


def resources_in(scope: Scope) -> dict[int, ResourceInfo]:
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
            total -= _closed_minutes(period, hours[lab_id], tz_of[lab_id], spans) / 60
        out[r.id] = round(max(total, 0.0), 4)
    return out


def _closed_minutes(
    period: Period,
    week: dict[int, list[tuple[dt.time, dt.time]]],
    tz: str,
    spans: list[tuple[dt.datetime, dt.datetime]],
) -> float:
    z = zone(tz)
    closed = 0.0
    first = max(period.start, to_local(spans[0][0], tz).date())
    last = min(period.end - dt.timedelta(days=1), to_local(spans[-1][1], tz).date())
    day = first
    while day <= last:
        for opens, closes in week.get(day.weekday(), []):
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


def statistics_for(period: Period, scope: Scope, *, direct: bool = False) -> Statistics:
    """The campaign's figures for a period and scope (see the section comment)."""
    groups = zone_groups(period, scope)
    resources = resources_in(scope)
    by_resource = counters_by(period, scope, "resource", direct=direct)
    served = _company_ids(groups, scope)
    earlier = _company_ids(groups, scope, before=True) if served else set()
    hours = open_hours(period, {k: v for k, v in resources.items() if v.kind == ResourceKind.LAB})
    return Statistics(
        period=period,
        scope=scope,
        counters=_total(by_resource.values()),
        open_labs=len(open_lab_ids(resources, hours)),
        shared_instruments=len(shared_instrument_ids(by_resource, resources)),
        distinct_smes=len(served),
        new_smes=len(served - earlier),
        median_decision_hours=_median_decision_hours(groups, scope),
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


def monthly_trend(end_month: str, scope: Scope, months: int = 12) -> list[tuple[str, Counters]]:
    """Counters per month for ``months`` months up to ``end_month`` (YYYY-MM)."""
    last = Period.month(end_month)
    first = last.start
    for _n in range(months - 1):
        first = (first - dt.timedelta(days=1)).replace(day=1)
    by_day = counters_by(Period(first, last.end), scope, "day")
    out: dict[str, Counters] = {}
    cursor = first
    while cursor < last.end:
        out[cursor.strftime("%Y-%m")] = Counters()
        cursor = (cursor + dt.timedelta(days=32)).replace(day=1)
    for day, c in by_day.items():
        out[day.strftime("%Y-%m")].add(c)
    return list(out.items())
