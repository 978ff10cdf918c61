"""Campaign statistics, always equal to a count over the bookings and usage records.

Counts the bookings that start in [start, end). ``approved`` counts bookings that
are approved now (not yet completed, cancelled or marked no-show).

Late cancellations (a company's cancellation within the rules'
``late_cancel_hours`` before the start, ``booking.late_cancellation``) count as
no-shows everywhere here (campaign totals, the statistics service, reports and
exports): in ``no_show``, not in ``cancelled``, so the totals still
add up and the field names stay those of API.md. Their time was freed, so they do
not count in booked hours (``BOOKED_STATUSES``); being ``no_show``, they count as
approved in the approval rate. ``counted_status`` is the one place that decides.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Numeric,
    Table,
    and_,
    case,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.orm import aliased

from labshare.booking import workdays
from labshare.booking.rules import closes_next_day, period_minutes
from labshare.database import is_sqlite
from labshare.extensions import db
from labshare.models import (
    STATS_DAILY_COUNTS,
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
    StatsDaily,
    StatsDirty,
    UsageRecord,
)
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
    problems_solved: int = 0


def campaign_totals(
    start: dt.datetime, end: dt.datetime, *, institute_id: int | None = None, tz: str = "UTC"
) -> CampaignTotals:
    """Totals over the bookings starting in [start, end); one institute's, or all.

    Counted as the statistics service counts (``Counters``); open labs are the labs
    open on some local day (``tz``) of the window."""
    scope = Scope.institute(institute_id) if institute_id is not None else Scope.everything()
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


# -- the statistics service: any period, any scope -------------------------------------
#
# Every figure equals a count over the bookings and usage records at the time of asking.
# The additive counters of institute scopes come from ``stats_daily`` (per institute and
# local day) for the days no trigger marked dirty, and from a GROUP BY over the bookings
# for the dirty ones; everything else is counted from the bookings over covering
# indexes. So an edit years later, an import, a restore or a scheduler that never ran
# is counted at the next read (``services/stats_store.py``). A booking counts on the local
# day (its institute's zone) on which it starts: the institutes of a scope are grouped
# by zone and each group is read between its own local midnights.

#: The additive counters.
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
#: The counters ``stats_daily`` keeps, by the names the service uses.
_STORED_FIELDS: tuple[str, ...] = (*STATS_DAILY_COUNTS, "fees", "fees_waived")
#: Statuses whose time was taken from the resource (booked hours, the heat map).
BOOKED_STATUSES = (BookingStatus.APPROVED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW)
SCOPE_KINDS = ("all", "province", "institute", "lab", "instrument")
#: Each institute's figures are read in its own zone; the API's national windows
#: given as plain dates are read in this one.
NATIONAL_ZONE = "Asia/Shanghai"


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
        """One booking (``status`` as ``counted_status`` gives it)."""
        self.add_group(status, 1, fee, waived, usage_minutes, service, 1 if solved else 0)

    def add_group(
        self,
        status: str,
        n: int,
        fee: Decimal | None,
        waived: Decimal | None,
        usage_minutes: int | None,
        service: str | None,
        solved: int,
    ) -> None:
        """``n`` bookings of one status and service type (None: no usage record)."""
        v = self.values
        v["bookings_total"] += n
        v[str(status)] += n
        if service is not None:
            v["usage_minutes"] += int(usage_minutes or 0)
            v[str(service)] += n
            v["problems_solved"] += int(solved)
        if status == BookingStatus.COMPLETED:
            v["fees"] += fee or Decimal("0")
            v["fees_waived"] += waived or Decimal("0")

    def add_usage(self, service: str, n: int, usage_minutes: int, solved: int) -> None:
        """``n`` usage records of one service type (their bookings counted apart)."""
        v = self.values
        v["usage_minutes"] += int(usage_minutes)
        v[str(service)] += n
        v["problems_solved"] += int(solved)

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
    counts as a no-show (booking policies)."""
    if late_cancellation and status == BookingStatus.CANCELLED:
        return str(BookingStatus.NO_SHOW)
    return str(status)


def usage_minutes_of(checked_in: dt.datetime, checked_out: dt.datetime) -> int:
    """Whole minutes of one usage record."""
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

    def months(self) -> list[tuple[str, dt.date, dt.date]]:
        """The calendar months the period touches, each cut to the period."""
        out = []
        cursor = self.start
        while cursor < self.end:
            nxt = min(self.end, (cursor.replace(day=1) + dt.timedelta(days=32)).replace(day=1))
            out.append((cursor.strftime("%Y-%m"), cursor, nxt))
            cursor = nxt
        return out


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
    """Institutes of the scope that share a time zone, and the period's UTC bounds
    there. ``others`` lists every other institute when that list is the shorter way
    to say which bookings belong (a national scope with few zones), else None."""

    timezone: str
    institute_ids: tuple[int, ...]
    start: dt.datetime
    end: dt.datetime
    today: dt.date
    others: tuple[int, ...] | None = None


def _midnight(day: dt.date, tz: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), zone(tz)).astimezone(dt.UTC)


def zone_groups(period: Period, scope: Scope) -> list[ZoneGroup]:
    stmt = select(Institute.id, Institute.timezone, Institute.province_code).order_by(Institute.id)
    zones: dict[str, list[int]] = defaultdict(list)
    everyone: list[int] = []
    for iid, tz, province in db.session.execute(stmt):
        everyone.append(iid)
        if scope.kind == "province" and province != scope.province_code:
            continue
        if scope.kind not in ("all", "province") and iid != scope.institute_id:
            continue
        zones[tz].append(iid)
    now = utcnow()
    out = []
    for tz, ids in sorted(zones.items()):
        others: tuple[int, ...] | None = None
        if scope.kind == "all" and len(ids) > len(everyone) - len(ids):
            mine = set(ids)
            others = tuple(i for i in everyone if i not in mine)
        out.append(
            ZoneGroup(
                tz,
                tuple(ids),
                _midnight(period.start, tz),
                _midnight(period.end, tz),
                to_local(now, tz).date(),
                others,
            )
        )
    return out


def _lab_resource_ids(lab_id: int) -> Any:
    return select(Instrument.id).where(Instrument.lab_id == lab_id).union(select(literal(lab_id)))


def _resource_filter(column: Any, scope: Scope) -> ColumnElement[bool]:
    if scope.kind == "instrument":
        return cast(ColumnElement[bool], column == scope.resource_id)
    if scope.kind == "lab" and scope.resource_id is not None:
        return cast(ColumnElement[bool], column.in_(_lab_resource_ids(scope.resource_id)))
    return true()


def _institute_filter(group: ZoneGroup) -> ColumnElement[bool]:
    if group.others is not None:
        if not group.others:
            return true()
        return Booking.institute_id.not_in(group.others)
    return Booking.institute_id.in_(group.institute_ids)


def booking_window(group: ZoneGroup, scope: Scope, start: dt.datetime | None = None) -> Any:
    return and_(
        Booking.start_at >= (start or group.start),
        Booking.start_at < group.end,
        _institute_filter(group),
        _resource_filter(Booking.resource_id, scope),
    )


def _minutes_column() -> Any:
    """Whole minutes of a usage record, in SQL (interval arithmetic differs)."""
    if is_sqlite():
        return literal_column(
            "CAST(ROUND((julianday(usage_record.checked_out_at) - "
            "julianday(usage_record.checked_in_at)) * 86400000) AS INTEGER) / 60000"
        )
    return literal_column(
        "floor(extract(epoch from (usage_record.checked_out_at - usage_record.checked_in_at)) / 60)"
    )


def _buckets(group: ZoneGroup, edges: list[dt.date]) -> Any:
    """The index of the local-day range [edges[i], edges[i + 1]) a booking starts in."""
    whens = [
        (Booking.start_at < _midnight(edge, group.timezone), n)
        for n, edge in enumerate(edges[1:-1])
    ]
    if not whens:
        return literal(0)
    return case(*whens, else_=len(edges) - 2)


def _wide(group: ZoneGroup | None) -> bool:
    """Whether the window spans (nearly) every institute: then reading the period's
    slice of ``ix_booking_stats`` beats one index range per institute."""
    return group is None or group.others is not None


# SQLAlchemy renders no table hints for SQLite; SQLite's hint is ``INDEXED BY`` after
# the table name, which is what ``with_hint(..., "sqlite")`` here passes.
SQLiteCompiler.get_from_hint_text = lambda self, table, text: text  # type: ignore[method-assign]


def _hinted(stmt: Any, wide: bool) -> Any:
    # SQLite's planner, left alone, prefers a skip-scan of (status, start_at) and then
    # reads each table row; the covering index answers from the index alone.
    if wide:
        return stmt.with_hint(Booking, "INDEXED BY ix_booking_stats", "sqlite")
    return stmt


def _aggregate(
    windows: Iterable[tuple[Any, Any, bool]], into: dict[Any, Counters], *, key_of: Any = None
) -> None:
    """Adds to ``into`` the counters of each window (a condition on bookings, the key
    column the figures are grouped by or None for one total, and whether the window
    spans nearly every institute)."""
    completed = Booking.status == BookingStatus.COMPLETED
    zero = literal(0)
    for window, key, wide in windows:
        if key is None:
            _aggregate_total(window, wide, into.setdefault(None, Counters()))
            continue
        keys = [key]
        stmt = (
            select(
                *keys,
                Booking.status,
                Booking.late_cancellation,
                UsageRecord.service_type,
                func.count(),
                type_coerce(func.sum(case((completed, Booking.fee), else_=zero)), Numeric(14, 2)),
                type_coerce(
                    func.sum(case((completed, Booking.fee_waived), else_=zero)), Numeric(14, 2)
                ),
                func.sum(_minutes_column()),
                func.sum(case((UsageRecord.problem_solved.is_(True), 1), else_=0)),
            )
            .select_from(Booking)
            .outerjoin(UsageRecord, UsageRecord.booking_id == Booking.id)
            .where(window)
            .group_by(*keys, Booking.status, Booking.late_cancellation, UsageRecord.service_type)
        )
        for row in db.session.execute(_hinted(stmt, wide)):
            k: Any = key_of(row[0]) if key_of is not None else row[0]
            status, late, service, n, fee, waived, minutes, solved = row[len(keys) :]
            target = into.get(k)
            if target is None:
                target = into[k] = Counters()
            target.add_group(
                counted_status(status, late),
                int(n),
                Decimal(fee or 0),
                Decimal(waived or 0),
                int(minutes or 0),
                None if service is None else str(service),
                int(solved or 0),
            )


def _aggregate_total(window: Any, wide: bool, into: Counters) -> None:
    """One total: the bookings by status, and apart from them their usage records by
    service type (a semi-join: no join row per booking, half the work of the join)."""
    completed = Booking.status == BookingStatus.COMPLETED
    zero = literal(0)
    by_status = select(
        Booking.status,
        Booking.late_cancellation,
        func.count(),
        type_coerce(func.sum(case((completed, Booking.fee), else_=zero)), Numeric(14, 2)),
        type_coerce(func.sum(case((completed, Booking.fee_waived), else_=zero)), Numeric(14, 2)),
    ).where(window)
    for status, late, n, fee, waived in db.session.execute(
        _hinted(by_status.group_by(Booking.status, Booking.late_cancellation), wide)
    ):
        into.add_group(
            counted_status(status, late),
            int(n),
            Decimal(fee or 0),
            Decimal(waived or 0),
            0,
            None,
            0,
        )
    usage = (
        select(
            UsageRecord.service_type,
            func.count(),
            func.sum(_minutes_column()),
            func.sum(case((UsageRecord.problem_solved.is_(True), 1), else_=0)),
        )
        .where(UsageRecord.booking_id.in_(_hinted(select(Booking.id).where(window), wide)))
        .group_by(UsageRecord.service_type)
    )
    for service, n, minutes, solved in db.session.execute(usage):
        into.add_usage(str(service), int(n), int(minutes or 0), int(solved or 0))


#: Past this many dirty (institute, local day) pairs in a window, the window is
#: counted live whole (after an upgrade or a bulk import, before the rollup job).
MAX_DIRTY_PAIRS = 400
MAX_DIRTY_DAYS = 40


def _stored_usable(scope: Scope) -> bool:
    """``stats_daily`` is per institute: lab and instrument scopes are counted live
    (they are small)."""
    return scope.kind in ("all", "province", "institute")


def _group_has(group: ZoneGroup, institute_id: int) -> bool:
    if group.others is not None:
        return institute_id not in group.others
    return institute_id in group.institute_ids


def _stored_institute_filter(column: Any, group: ZoneGroup) -> ColumnElement[bool]:
    if group.others is not None:
        return column.not_in(group.others) if group.others else true()
    return cast(ColumnElement[bool], column.in_(group.institute_ids))


def _dirty_local_days(group: ZoneGroup, first: dt.date, end: dt.date) -> set[tuple[int, dt.date]]:
    """The (institute, local day) pairs in [first, end) that must be counted live: a
    marker of the institute names the UTC day before, on or after the local day."""
    out: set[tuple[int, dt.date]] = set()
    one = dt.timedelta(days=1)
    for iid, day in db.session.execute(
        select(StatsDirty.institute_id, StatsDirty.day)
        .where(StatsDirty.day >= first - one, StatsDirty.day <= end)
        .distinct()
    ):
        if not _group_has(group, iid):
            continue
        for local in (day - one, day, day + one):
            if first <= local < end:
                out.add((iid, local))
    return out


def _aggregate_stored(
    group: ZoneGroup,
    scope: Scope,
    edges: list[dt.date],
    key: str | None,
    into: dict[Any, Counters],
    key_of: Any = None,
) -> None:
    """Adds to ``into`` the counters of the group's bookings in the local days
    [edges[0], edges[-1]), by bucket [edges[i], edges[i + 1]) (``key`` "bucket",
    labelled by ``key_of``), by institute or in one total (``key`` None).

    Each (institute, local day) comes from ``stats_daily`` unless a marker makes it
    dirty (``_dirty_local_days``); the dirty ones are counted live from the bookings,
    so the answer is the same whether the rollup job ever ran."""
    first, end = edges[0], edges[-1]
    dirty = _dirty_local_days(group, first, end)
    wide = _wide(group)

    def live_keycol() -> Any:
        if key == "institute":
            return Booking.institute_id
        if key == "bucket":
            return _buckets(group, edges)
        return None

    by_day: dict[dt.date, list[int]] = defaultdict(list)
    for iid, local in sorted(dirty):
        by_day[local].append(iid)
    if len(dirty) > MAX_DIRTY_PAIRS or len(by_day) > MAX_DIRTY_DAYS:
        _aggregate([(booking_window(group, scope), live_keycol(), wide)], into, key_of=key_of)
        return
    inner = edges[1:-1]
    # Grouped by day (the key's order: no sort) and put into buckets here.
    keycol: Any = {
        None: literal(0),
        "institute": StatsDaily.institute_id,
        "bucket": StatsDaily.day,
    }[key]
    sums = [
        type_coerce(func.sum(getattr(StatsDaily, name)), Numeric(14, 2))
        if name in _MONEY_FIELDS
        else func.sum(getattr(StatsDaily, name))
        for name in _STORED_FIELDS
    ]
    stmt = select(keycol.label("k"), *sums).where(
        StatsDaily.day >= first,
        StatsDaily.day < end,
        _stored_institute_filter(StatsDaily.institute_id, group),
    )
    if dirty:
        stmt = stmt.where(tuple_(StatsDaily.institute_id, StatsDaily.day).not_in(sorted(dirty)))
    if key is not None:
        stmt = stmt.group_by(keycol)
    for row in db.session.execute(stmt):
        if row[1] is None:
            continue  # no stored day: SUM over nothing
        k: Any = None
        if key == "institute":
            k = row[0]
        elif key == "bucket":
            k = bisect.bisect_right(inner, row[0])
            if key_of is not None:
                k = key_of(k)
        target = into.get(k)
        if target is None:
            target = into[k] = Counters()
        for name, value in zip(_STORED_FIELDS, row[1:], strict=True):
            target.values[name] += Decimal(value or 0) if name in _MONEY_FIELDS else int(value or 0)
    # The dirty local days, live: one window per day, its dirty institutes only.
    windows = [
        (
            and_(
                Booking.start_at >= _midnight(local, group.timezone),
                Booking.start_at < _midnight(local + dt.timedelta(days=1), group.timezone),
                Booking.institute_id.in_(iids),
                _resource_filter(Booking.resource_id, scope),
            ),
            live_keycol(),
            False,
        )
        for local, iids in sorted(by_day.items())
    ]
    _aggregate(windows, into, key_of=key_of)


def _decided_count(period: Period, scope: Scope, groups: list[ZoneGroup]) -> int | None:
    """How many of the scope's bookings in the period have a decision: the stored
    days' counts and, for the dirty ones, a live count (None when too many are dirty:
    then the median counts them itself)."""
    n = 0
    for group in groups:
        dirty = _dirty_local_days(group, period.start, period.end)
        if len(dirty) > MAX_DIRTY_DAYS:
            return None
        stmt = select(func.sum(StatsDaily.decided)).where(
            StatsDaily.day >= period.start,
            StatsDaily.day < period.end,
            _stored_institute_filter(StatsDaily.institute_id, group),
        )
        if dirty:
            stmt = stmt.where(tuple_(StatsDaily.institute_id, StatsDaily.day).not_in(sorted(dirty)))
        n += int(db.session.scalar(stmt) or 0)
        for iid, local in sorted(dirty):
            n += int(
                db.session.scalar(
                    select(func.count()).where(
                        Booking.institute_id == iid,
                        Booking.start_at >= _midnight(local, group.timezone),
                        Booking.start_at < _midnight(local + dt.timedelta(days=1), group.timezone),
                        Booking.decided_at.is_not(None),
                    )
                )
                or 0
            )
    return n


def counters_by(period: Period, scope: Scope, key: str) -> dict[Any, Counters]:
    """Counters per ``key``: "resource", "institute", "day" or "month" (YYYY-MM),
    counted in the database at the time of asking."""
    out: dict[Any, Counters] = {}
    stored = _stored_usable(scope)
    for group in zone_groups(period, scope):
        window = booking_window(group, scope)
        wide = _wide(group)
        if stored and key == "institute":
            _aggregate_stored(group, scope, [period.start, period.end], "institute", out)
        elif stored and key == "month":
            months = period.months()
            _aggregate_stored(
                group,
                scope,
                [s for _m, s, _e in months] + [period.end],
                "bucket",
                out,
                key_of=[m for m, _s, _e in months].__getitem__,
            )
        elif key == "resource":
            _aggregate([(window, Booking.resource_id, wide)], out)
        elif key == "institute":
            _aggregate([(window, Booking.institute_id, wide)], out)
        elif key in ("day", "month"):
            if key == "day":
                labels: list[Any] = [
                    period.start + dt.timedelta(days=n) for n in range(period.days)
                ]
                edges = [*labels, period.end]
            else:
                months = period.months()
                labels = [m for m, _s, _e in months]
                edges = [s for _m, s, _e in months] + [period.end]
            _aggregate([(window, _buckets(group, edges), wide)], out, key_of=labels.__getitem__)
        else:
            raise ValueError(key)
    return out


def total_counters(period: Period, scope: Scope) -> Counters:
    """The scope's counters over the period, in one total."""
    out: dict[Any, Counters] = {}
    _total_into(period, scope, zone_groups(period, scope), out)
    return out.get(None, Counters())


def _total_into(
    period: Period, scope: Scope, groups: list[ZoneGroup], out: dict[Any, Counters]
) -> None:
    if _stored_usable(scope):
        for g in groups:
            _aggregate_stored(g, scope, [period.start, period.end], None, out)
        return
    _aggregate([(booking_window(g, scope), None, _wide(g)) for g in groups], out)


def direct_counters(period: Period, scope: Scope, key: str) -> dict[Any, Counters]:
    """The same counters as ``counters_by``, counted one booking at a time in Python
    (``flask stats check`` compares the two)."""
    out: dict[Any, Counters] = defaultdict(Counters)
    for group in zone_groups(period, scope):
        tz = zone(group.timezone)
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
                Booking.late_cancellation,
            )
            .outerjoin(UsageRecord, UsageRecord.booking_id == Booking.id)
            .where(booking_window(group, scope))
            .execution_options(yield_per=5000)
        )
        for row in db.session.execute(stmt):
            start, rid, iid, raw_status, fee, waived, cin, cout, service, solved, late = row
            local = start.astimezone(tz).date()
            k: Any = {
                "day": local,
                "month": local.strftime("%Y-%m"),
                "resource": rid,
                "institute": iid,
            }[key]
            minutes = usage_minutes_of(cin, cout) if cin is not None else None
            out[k].add_booking(
                counted_status(raw_status, late), fee, waived, minutes, service, solved
            )
    return dict(out)


def _total(parts: Iterable[Counters]) -> Counters:
    total = Counters()
    for c in parts:
        total.add(c)
    return total


def _per_group(groups: list[ZoneGroup], scope: Scope, *columns: Any, where: Any) -> Any:
    """One SELECT of ``columns`` per zone group (each on its own best index), glued
    with UNION ALL: an OR of the groups' windows would make SQLite give up its index
    plans."""
    parts = [
        _hinted(select(*columns).where(booking_window(g, scope), where), _wide(g)) for g in groups
    ]
    return parts[0] if len(parts) == 1 else union_all(*parts)


def _sme_counts(groups: list[ZoneGroup], scope: Scope) -> tuple[int, int]:
    """Distinct SMEs served (a completed booking in the period) and, of those, the new
    ones (no completed booking in the scope before the period)."""
    if not groups:
        return 0, 0
    completed = Booking.status == BookingStatus.COMPLETED
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


def _median_decision_hours(
    groups: list[ZoneGroup], scope: Scope, n: int | None = None
) -> float | None:
    """The median of (decided - created) in hours, as ``statistics.median`` gives it:
    the database sorts, Python reads the one or two middle rows. ``n``: how many
    rows there are, when known (saves a counting pass)."""
    if not groups:
        return None
    if is_sqlite():
        wait: Any = func.julianday(Booking.decided_at) - func.julianday(Booking.created_at)
    else:
        wait = Booking.decided_at - Booking.created_at
    rows = _per_group(
        groups,
        scope,
        Booking.created_at.label("created_at"),
        Booking.decided_at.label("decided_at"),
        wait.label("wait"),
        where=Booking.decided_at.is_not(None),
    ).subquery()
    if n is None:
        n = int(db.session.scalar(select(func.count()).select_from(rows)) or 0)
    if n == 0:
        return None
    middle = [
        (decided - created).total_seconds() / 3600
        for created, decided in db.session.execute(
            select(rows.c.created_at, rows.c.decided_at)
            .order_by(rows.c.wait)
            .offset((n - 1) // 2)
            .limit(1 if n % 2 else 2)
        )
    ]
    return round(statistics.median(middle), 2)


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


def _shared_instruments(groups: list[ZoneGroup], scope: Scope) -> int:
    if not groups:
        return 0
    used = _per_group(
        groups,
        scope,
        Booking.resource_id.label("resource_id"),
        where=and_(
            Booking.status == BookingStatus.COMPLETED,
            Booking.resource_kind == ResourceKind.INSTRUMENT,
        ),
    ).subquery()
    return int(db.session.scalar(select(func.count(func.distinct(used.c.resource_id)))) or 0)


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
        .exists(),
    )
    count = int(db.session.scalar(select(func.count()).select_from(candidates.subquery())) or 0)
    if not count:
        return 0
    pad = dt.timedelta(days=2)
    lo = dt.datetime.combine(period.start, dt.time(), dt.UTC) - pad
    hi = dt.datetime.combine(period.end, dt.time(), dt.UTC) + pad
    closed = set(
        db.session.scalars(
            select(Closure.resource_id)
            .where(Closure.end_at > lo, Closure.start_at < hi, Closure.resource_id.in_(candidates))
            .distinct()
        )
    )
    if not closed:
        return count
    infos = {
        k: v
        for k, v in resources_in(Scope.everything(), ids=closed).items()
        if v.kind == ResourceKind.LAB
    }
    still_open = open_lab_ids(infos, open_hours(period, infos))
    return count - len(closed) + len(still_open)


def statistics_for(period: Period, scope: Scope) -> Statistics:
    """The campaign's figures for a period and scope (see the section comment)."""
    groups = zone_groups(period, scope)
    served, new = _sme_counts(groups, scope)
    counters: dict[Any, Counters] = {}
    _total_into(period, scope, groups, counters)
    return Statistics(
        period=period,
        scope=scope,
        counters=counters.get(None, Counters()),
        open_labs=open_lab_count(period, scope),
        shared_instruments=_shared_instruments(groups, scope),
        distinct_smes=served,
        new_smes=new,
        median_decision_hours=_median_decision_hours(
            groups,
            scope,
            _decided_count(period, scope, groups) if _stored_usable(scope) and groups else None,
        ),
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


# -- ``flask stats check`` and ``flask stats rebuild`` ---------------------------------


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
    return out
