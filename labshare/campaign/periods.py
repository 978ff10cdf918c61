"""Which bookings a figure counts: the period (local days), the scope (national,
province, institute, lab, instrument), and the scope's institutes grouped by time
zone, each group read between its own local midnights (``zone_groups``)."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    and_,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler

from labshare.extensions import db
from labshare.models import (
    Booking,
    Institute,
    Instrument,
    Lab,
)
from labshare.timeutil import to_local, utcnow, zone

SCOPE_KINDS = ("all", "province", "institute", "lab", "instrument")
#: Each institute's figures are read in its own zone; the API's national windows
#: given as plain dates are read in this one.
NATIONAL_ZONE = "Asia/Shanghai"


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


def _per_group(groups: list[ZoneGroup], scope: Scope, *columns: Any, where: Any) -> Any:
    """One SELECT of ``columns`` per zone group (each on its own best index), glued
    with UNION ALL: an OR of the groups' windows would make SQLite give up its index
    plans."""
    parts = [
        _hinted(select(*columns).where(booking_window(g, scope), where), _wide(g)) for g in groups
    ]
    return parts[0] if len(parts) == 1 else union_all(*parts)
