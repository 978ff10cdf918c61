"""Quotas per period: at most N hours or N bookings per company per day,
week, month or year, for an instrument, a lab (the lab and all its instruments)
or a whole institute.

A booking counts in the period (in the institute's zone; weeks start on Monday)
in which it starts, with its full length. Pending and approved bookings count;
completed ones too where the quota says so. :class:`PeriodQuotas` (registered
at app start) runs ``check_period_quotas`` in ``check_slot`` under the resource's
lock, and the same judgement on the lean path's gathered reads; both lock the
quota rows that apply (PostgreSQL, in id order), so that two bookings of different
instruments under one lab or institute quota are counted one after the other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, and_, bindparam, or_, select

from labshare.booking.hooks import (
    NO_NUMBER,
    Arm,
    Gathered,
    Join,
    Param,
    Read,
    Slot,
    SlotPolicy,
    Stage,
    status_constants,
)
from labshare.booking.permissions import is_staff_of
from labshare.booking.rules import lab_id_of, local_instant, scope_ids
from labshare.catalogue.id_lists import among
from labshare.database import begin_write, is_sqlite
from labshare.errors import NotAllowed, NotFound, RuleViolation, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    Booking,
    BookingQuota,
    BookingStatus,
    Instrument,
    Lab,
    QuotaPeriod,
    Resource,
    User,
)
from labshare.ops import audit
from labshare.timeutil import zone

MAX_QUOTA_HOURS = Decimal("8784")  # a leap year
MAX_QUOTA_BOOKINGS = 100000

PERIOD_LABELS = {
    QuotaPeriod.DAY: _l("day"),
    QuotaPeriod.WEEK: _l("week"),
    QuotaPeriod.MONTH: _l("month"),
    QuotaPeriod.YEAR: _l("year"),
}


def period_bounds(period: str, instant: dt.datetime, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """The local calendar ``period`` (day, week from Monday, month, year) in ``tz``
    that contains ``instant``, as aware UTC [start, end)."""
    day = instant.astimezone(zone(tz)).date()
    if period == QuotaPeriod.DAY:
        first, after = day, day + dt.timedelta(days=1)
    elif period == QuotaPeriod.WEEK:
        first = day - dt.timedelta(days=day.weekday())
        after = first + dt.timedelta(days=7)
    elif period == QuotaPeriod.MONTH:
        first = day.replace(day=1)
        after = (first + dt.timedelta(days=32)).replace(day=1)
    elif period == QuotaPeriod.YEAR:
        first = day.replace(month=1, day=1)
        after = first.replace(year=first.year + 1)
    else:  # pragma: no cover - the table's check constraint
        raise ValueError(period)
    midnight = dt.time(0, 0)
    return local_instant(first, midnight, tz), local_instant(after, midnight, tz)


def scope_of(quota: BookingQuota) -> str:
    """``institute``, ``lab`` or ``instrument``."""
    if quota.resource_id is None:
        return "institute"
    return "lab" if isinstance(quota.resource, Lab) else "instrument"


def applicable(resource: Resource, *, lock: bool = False) -> list[BookingQuota]:
    """The quotas that apply to bookings of ``resource``: its own, its lab's and its
    institute's, in id order (``lock``: locked FOR UPDATE on PostgreSQL)."""
    stmt = (
        select(BookingQuota)
        .where(
            BookingQuota.institute_id == resource.institute_id,
            or_(
                BookingQuota.resource_id.is_(None),
                BookingQuota.resource_id.in_(scope_ids(resource)),
            ),
        )
        .order_by(BookingQuota.id)
    )
    if lock:
        stmt = stmt.with_for_update()
    return list(db.session.scalars(stmt))


def _booking_scope(quota: BookingQuota) -> ColumnElement[bool]:
    if quota.resource_id is None:
        return Booking.institute_id == quota.institute_id
    if isinstance(quota.resource, Lab):
        instruments = select(Instrument.id).where(Instrument.lab_id == quota.resource_id)
        return or_(Booking.resource_id == quota.resource_id, Booking.resource_id.in_(instruments))
    return Booking.resource_id == quota.resource_id


@dataclass(frozen=True)
class Usage:
    hours: Decimal
    bookings: int


def usage(
    quota: BookingQuota,
    company_id: int,
    start: dt.datetime,
    end: dt.datetime,
    *,
    exclude_id: int | None = None,
) -> Usage:
    """What ``company_id`` holds under ``quota`` among bookings starting in [start, end)."""
    statuses = [BookingStatus.PENDING, BookingStatus.APPROVED]
    if quota.count_completed:
        statuses.append(BookingStatus.COMPLETED)
    stmt = select(Booking.start_at, Booking.end_at).where(
        Booking.company_id == company_id,
        Booking.start_at >= start,
        Booking.start_at < end,
        Booking.status.in_(statuses),
        _booking_scope(quota),
    )
    if exclude_id is not None:
        stmt = stmt.where(Booking.id != exclude_id)
    seconds = 0
    count = 0
    for s, e in db.session.execute(stmt):
        seconds += int((e - s).total_seconds())
        count += 1
    return Usage(hours=Decimal(seconds) / Decimal(3600), bookings=count)


def _number(value: Decimal) -> str:
    """2.5 rather than 2.50; 3 rather than 3.00."""
    text = f"{value.quantize(Decimal('0.01')):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def check_period_quotas(
    resource: Resource,
    company_id: int,
    start: dt.datetime,
    end: dt.datetime,
    tz: str,
    *,
    exclude_id: int | None = None,
) -> None:
    """Refuse a booking of ``resource`` for [start, end) that would take the company
    past one of the quotas that apply (``exclude_id``: a request being approved,
    not counted twice). Called under the resource's lock."""
    quotas = applicable(resource, lock=True)
    if not quotas:
        return
    hours = Decimal(int((end - start).total_seconds())) / Decimal(3600)
    for quota in quotas:
        first, after = period_bounds(quota.period, start, tz)
        judge(
            quota, usage(quota, company_id, first, after, exclude_id=exclude_id), hours, start, tz
        )


def judge(quota: BookingQuota, used: Usage, hours: Decimal, start: dt.datetime, tz: str) -> None:
    """Refuse ``hours`` more (one booking starting at ``start``) where ``used``
    already fills ``quota`` (RuleViolation naming the quota and what is left)."""
    first, _after = period_bounds(quota.period, start, tz)
    period = PERIOD_LABELS[QuotaPeriod(quota.period)]
    details: dict[str, Any] = {
        "quota_id": quota.id,
        "period": str(quota.period),
        "period_start": first.astimezone(zone(tz)).date().isoformat(),
    }
    if quota.max_bookings is not None and used.bookings + 1 > quota.max_bookings:
        left = max(quota.max_bookings - used.bookings, 0)
        raise RuleViolation(
            _l(
                "Your company may make at most %(max)d bookings per %(period)s here; "
                "%(left)d left in that %(period)s.",
                max=quota.max_bookings,
                period=period,
                left=left,
            ),
            rule="quota_bookings",
            field="start",
            details={**details, "remaining_bookings": left},
        )
    if quota.max_hours is not None and used.hours + hours > quota.max_hours:
        left_hours = max(Decimal(quota.max_hours) - used.hours, Decimal(0))
        raise RuleViolation(
            _l(
                "Your company may book at most %(max)s hours per %(period)s here; "
                "%(left)s hours left in that %(period)s.",
                max=_number(Decimal(quota.max_hours)),
                period=period,
                left=_number(left_hours),
            ),
            rule="quota_hours",
            field="end",
            details={**details, "remaining_hours": float(round(left_hours, 2))},
        )


def _usage_read(scope: str, count_completed: bool) -> Callable[[Param], Read]:
    """The arm counting a company's bookings under one quota of this shape."""

    def build(param: Param) -> Read:
        statuses = [BookingStatus.PENDING, BookingStatus.APPROVED]
        if count_completed:
            statuses.append(BookingStatus.COMPLETED)
        where: ColumnElement[bool]
        if scope == "institute":
            where = Booking.institute_id == param("scope_id")
        elif scope == "lab":
            where = or_(
                Booking.resource_id == param("scope_id"),
                Booking.resource_id.in_(
                    select(Instrument.id).where(Instrument.lab_id == param("scope_id"))
                ),
            )
        else:
            where = Booking.resource_id == param("scope_id")
        return (
            Booking.start_at,
            Booking.end_at,
            NO_NUMBER,
            [
                Booking.company_id == param("company_id"),
                Booking.start_at >= param("first"),
                Booking.start_at < param("after"),
                Booking.status.in_(status_constants(statuses)),
                where,
            ],
        )

    return build


class PeriodQuotas(SlotPolicy):
    """The quotas per period, as the engine asks: after its own company quota,
    before the conflict check."""

    name = "quotas"
    stage = Stage.LIMITS

    def check(self, slot: Slot) -> None:
        check_period_quotas(
            slot.resource,
            slot.company_id,
            slot.start,
            slot.end,
            slot.tz,
            exclude_id=slot.exclude_id,
        )

    def joins(self) -> list[Join]:
        row = Resource.__table__.c
        return [
            (
                BookingQuota,
                and_(
                    BookingQuota.institute_id == row.institute_id,
                    or_(
                        BookingQuota.resource_id.is_(None),
                        BookingQuota.resource_id.in_(
                            [bindparam("resource_id"), bindparam("lab_id")]
                        ),
                    ),
                ),
            )
        ]

    def loaded(self, found: list[list[Any]]) -> list[BookingQuota]:
        """The quotas that apply, in id order; locked on PostgreSQL."""
        applicable: list[BookingQuota] = found[0]
        if applicable and not is_sqlite():
            applicable = list(
                db.session.scalars(
                    select(BookingQuota)
                    .where(among(BookingQuota.id, "quota_ids", "postgresql"))
                    .order_by(BookingQuota.id)
                    .with_for_update()
                    .execution_options(populate_existing=True),
                    {"quota_ids": [q.id for q in applicable]},
                )
            )
        return applicable

    def reads(self, slot: Slot, loaded: Any) -> list[Arm]:
        """Per quota: the company's bookings it counts in the slot's period."""
        out: list[Arm] = []
        lab_id = lab_id_of(slot.resource)
        for quota in loaded:
            first, after = period_bounds(quota.period, slot.start, slot.tz)
            if quota.resource_id is None:
                scope = "institute"
            elif quota.resource_id == lab_id:  # a lab's quota: the lab and its instruments
                scope = "lab"
            else:
                scope = "resource"
            values = {
                "company_id": slot.company_id,
                "first": first,
                "after": after,
                "scope_id": quota.institute_id if quota.resource_id is None else quota.resource_id,
            }
            shape = (scope, bool(quota.count_completed))
            out.append(Arm(shape, _usage_read(scope, bool(quota.count_completed)), values))
        return out

    def judge(self, slot: Slot, gathered: Gathered) -> None:
        hours = Decimal(int((slot.end - slot.start).total_seconds())) / Decimal(3600)
        for quota, rows in zip(gathered.loaded, gathered.rows, strict=True):
            seconds = sum(int((e - s).total_seconds()) for s, e, _n in rows)
            used = Usage(hours=Decimal(seconds) / Decimal(3600), bookings=len(rows))
            judge(quota, used, hours, slot.start, slot.tz)


# -- managing quotas ------------------------------------------------------------------


def quota_json(quota: BookingQuota) -> dict[str, Any]:
    return {
        "id": quota.id,
        "scope": scope_of(quota),
        "resource_id": quota.resource_id,
        "institute_id": quota.institute_id,
        "period": str(quota.period),
        "max_hours": float(quota.max_hours) if quota.max_hours is not None else None,
        "max_bookings": quota.max_bookings,
        "count_completed": quota.count_completed,
    }


def institute_quotas(institute_id: int) -> list[BookingQuota]:
    return list(
        db.session.scalars(
            select(BookingQuota)
            .where(BookingQuota.institute_id == institute_id)
            .order_by(BookingQuota.resource_id.is_not(None), BookingQuota.id)
        )
    )


def _hours(value: Any) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValidationFailed(_l("Enter a number of hours."), field="max_hours")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationFailed(_l("Enter a number of hours."), field="max_hours") from None
    if not number.is_finite() or number <= 0 or number > MAX_QUOTA_HOURS:
        raise ValidationFailed(
            _l("Enter a number of hours above 0 and at most %(n)d.", n=int(MAX_QUOTA_HOURS)),
            field="max_hours",
        )
    if number != number.quantize(Decimal("0.01")):
        raise ValidationFailed(_l("At most two decimals."), field="max_hours")
    return number


def _bookings(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValidationFailed(_l("Enter a whole number."), field="max_bookings")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValidationFailed(_l("Enter a whole number."), field="max_bookings") from None
    if number < 1 or number > MAX_QUOTA_BOOKINGS:
        raise ValidationFailed(
            _l("Enter a whole number from 1 to %(n)d.", n=MAX_QUOTA_BOOKINGS),
            field="max_bookings",
        )
    return number


def create_quota(
    actor: User | None,
    institute_id: int,
    resource_id: int | None,
    *,
    period: str,
    max_hours: Any = None,
    max_bookings: Any = None,
    count_completed: bool = False,
) -> BookingQuota:
    """A new quota of the institute (``resource_id`` None) or of one of its
    resources; by the institute's staff (``actor`` None: the operator)."""
    if actor is not None and not is_staff_of(actor, institute_id):
        raise NotAllowed(_l("Only staff of the institute can change its quotas."))
    begin_write()  # SQLite: the write lock before the reads the insert depends on
    if resource_id is not None:
        resource = db.session.get(Resource, resource_id)
        if resource is None or resource.institute_id != institute_id:
            raise ValidationFailed(
                _l("Choose one of the institute's labs or instruments."), field="resource_id"
            )
    try:
        period_value = QuotaPeriod(str(period or "").strip())
    except ValueError:
        raise ValidationFailed(_l("Choose day, week, month or year."), field="period") from None
    hours = _hours(max_hours)
    count = _bookings(max_bookings)
    if hours is None and count is None:
        raise ValidationFailed(
            _l("Set a number of hours, a number of bookings, or both."), field="max_hours"
        )
    if not isinstance(count_completed, bool):
        raise ValidationFailed(_l("Answer yes or no."), field="count_completed")
    quota = BookingQuota(
        institute_id=institute_id,
        resource_id=resource_id,
        period=str(period_value),
        max_hours=hours,
        max_bookings=count,
        count_completed=count_completed,
    )
    db.session.add(quota)
    db.session.flush()
    audit.record(
        "quota.create",
        quota,
        actor=actor,
        data={
            "resource_id": resource_id,
            "period": str(period_value),
            "max_hours": str(hours) if hours is not None else None,
            "max_bookings": count,
            "count_completed": count_completed,
        },
    )
    return quota


def delete_quota(actor: User | None, quota_id: int, institute_id: int) -> None:
    """Remove one of the institute's quotas; NotFound for another institute's."""
    begin_write()  # SQLite: the write lock before the reads the delete depends on
    quota = db.session.get(BookingQuota, quota_id)
    if quota is None or quota.institute_id != institute_id:
        raise NotFound(_l("No such quota."))
    if actor is not None and not is_staff_of(actor, quota.institute_id):
        raise NotAllowed(_l("Only staff of the institute can change its quotas."))
    audit.record("quota.delete", quota, actor=actor, data=quota_json(quota))
    db.session.delete(quota)
    db.session.flush()
