"""The additive campaign counters (``Counters``) and how they are counted in SQL over
the bookings and usage records of a window.

Late cancellations (a company's cancellation within the rules'
``late_cancel_hours`` before the start, ``booking.late_cancellation``) count as
no-shows everywhere (campaign totals, the statistics service, reports and
exports): in ``no_show``, not in ``cancelled``, so the totals still add up and the
field names stay those of API.md. Their time was freed, so they do not count in
booked hours (``BOOKED_STATUSES``); being ``no_show``, they count as approved in the
approval rate. ``counted_status`` is the one place that decides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Numeric,
    case,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
)

from labshare.campaign.local_days import whole_minutes_sql
from labshare.campaign.periods import ZoneGroup, _hinted, _midnight
from labshare.database import is_sqlite
from labshare.extensions import db
from labshare.models import (
    STATS_DAILY_COUNTS,
    Booking,
    BookingStatus,
    ServiceType,
    UsageRecord,
)

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


def _minutes_column() -> Any:
    """Whole minutes of a usage record, in SQL (interval arithmetic differs)."""
    if is_sqlite():
        return literal_column(
            whole_minutes_sql("usage_record.checked_out_at", "usage_record.checked_in_at")
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


def _total(parts: Iterable[Counters]) -> Counters:
    total = Counters()
    for c in parts:
        total.add(c)
    return total
