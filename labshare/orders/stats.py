"""Service-order figures, counted from the orders and their items when asked (as the
booking statistics are, labshare/campaign/stats.py), kept apart from the booking
counters so that those keep their meaning.

- orders and items by status, service type and field: orders *created* in the window;
- finished orders (completed, returned, collected) whose work was *completed* in the
  window: each is one service person-time; each item completed in the window is one
  problem solved; their fees and waivers; the turnaround from receipt to completion
  (median and 90th percentile, per institute); the share completed on or before the
  promised date (the institute's local date). Fees charged are after the waiver, as
  the bookings' are.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, true

from labshare.campaign.periods import Period, Scope, zone_groups
from labshare.extensions import db
from labshare.models import ServiceOrder, ServiceOrderItem
from labshare.orders.lifecycle import FINISHED
from labshare.timeutil import to_local


@dataclass(frozen=True)
class Window:
    institutes: ColumnElement[bool]
    start: dt.datetime
    end: dt.datetime
    timezone: str


@dataclass
class Turnaround:
    count: int
    median_hours: float | None
    p90_hours: float | None


@dataclass
class OrderFigures:
    orders_total: int = 0
    orders_by_status: dict[str, int] = field(default_factory=dict)
    items_total: int = 0
    items_by_status: dict[str, int] = field(default_factory=dict)
    items_by_service: dict[str, int] = field(default_factory=dict)
    items_by_field: dict[str, int] = field(default_factory=dict)
    person_times: int = 0
    problems_solved: int = 0
    fees_charged: Decimal = Decimal("0")
    fees_waived: Decimal = Decimal("0")
    with_promise: int = 0
    on_time: int = 0
    turnaround: dict[int, Turnaround] = field(default_factory=dict)

    @property
    def on_time_share(self) -> float | None:
        return round(self.on_time / self.with_promise, 4) if self.with_promise else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders_total": self.orders_total,
            "orders_by_status": dict(sorted(self.orders_by_status.items())),
            "items_total": self.items_total,
            "items_by_status": dict(sorted(self.items_by_status.items())),
            "items_by_service": dict(sorted(self.items_by_service.items())),
            "items_by_field": dict(sorted(self.items_by_field.items())),
            "person_times": self.person_times,
            "problems_solved": self.problems_solved,
            "fees_charged": float(self.fees_charged),
            "fees_waived": float(self.fees_waived),
            "on_time_share": self.on_time_share,
            "turnaround": {
                str(k): {
                    "count": v.count,
                    "median_hours": v.median_hours,
                    "p90_hours": v.p90_hours,
                }
                for k, v in sorted(self.turnaround.items())
            },
        }


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100): a value that occurred."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _add(into: dict[str, int], key: Any, n: int) -> None:
    into[str(key)] = into.get(str(key), 0) + int(n)


def figures(windows: list[Window]) -> OrderFigures:
    out = OrderFigures()
    durations: dict[int, list[float]] = defaultdict(list)
    for w in windows:
        created = and_(
            w.institutes, ServiceOrder.created_at >= w.start, ServiceOrder.created_at < w.end
        )
        for status, n in db.session.execute(
            select(ServiceOrder.status, func.count(ServiceOrder.id))
            .where(created)
            .group_by(ServiceOrder.status)
        ):
            _add(out.orders_by_status, status.value, n)
            out.orders_total += int(n)
        for status, service, fld, n in db.session.execute(
            select(
                ServiceOrder.status,
                ServiceOrderItem.service_type,
                ServiceOrderItem.field,
                func.count(ServiceOrderItem.id),
            )
            .join(ServiceOrder, ServiceOrder.id == ServiceOrderItem.order_id)
            .where(created)
            .group_by(ServiceOrder.status, ServiceOrderItem.service_type, ServiceOrderItem.field)
        ):
            _add(out.items_by_status, status.value, n)
            _add(out.items_by_service, service.value, n)
            _add(out.items_by_field, fld.value, n)
            out.items_total += int(n)
        finished = and_(
            w.institutes,
            ServiceOrder.status.in_(FINISHED),
            ServiceOrder.completed_at >= w.start,
            ServiceOrder.completed_at < w.end,
        )
        for iid, received, completed, promised, fee, waived in db.session.execute(
            select(
                ServiceOrder.institute_id,
                ServiceOrder.received_at,
                ServiceOrder.completed_at,
                ServiceOrder.promised_date,
                ServiceOrder.fee,
                ServiceOrder.fee_waived,
            ).where(finished)
        ):
            out.person_times += 1
            out.fees_charged += Decimal(fee or 0) - Decimal(waived or 0)
            out.fees_waived += Decimal(waived or 0)
            if received is not None and completed is not None:
                durations[iid].append((completed - received).total_seconds() / 3600)
            if promised is not None and completed is not None:
                out.with_promise += 1
                if to_local(completed, w.timezone).date() <= promised:
                    out.on_time += 1
        out.problems_solved += int(
            db.session.scalar(
                select(func.count(ServiceOrderItem.id))
                .join(ServiceOrder, ServiceOrder.id == ServiceOrderItem.order_id)
                .where(
                    w.institutes,
                    ServiceOrder.status.in_(FINISHED),
                    ServiceOrderItem.completed_at >= w.start,
                    ServiceOrderItem.completed_at < w.end,
                )
            )
            or 0
        )
    for iid, values in durations.items():
        median = statistics.median(values)
        p90 = percentile(values, 90)
        out.turnaround[iid] = Turnaround(
            count=len(values),
            median_hours=round(median, 2),
            p90_hours=round(p90, 2) if p90 is not None else None,
        )
    return out


def order_figures(period: Period, scope: Scope) -> OrderFigures:
    """The figures of the orders of ``scope`` over ``period``, each institute's local
    days. A lab or instrument scope has no orders."""
    if scope.kind in ("lab", "instrument"):
        return OrderFigures()
    windows = [
        Window(ServiceOrder.institute_id.in_(g.institute_ids), g.start, g.end, g.timezone)
        for g in zone_groups(period, scope)
    ]
    return figures(windows)


def order_figures_between(
    start: dt.datetime, end: dt.datetime, *, institute_id: int | None, tz: str
) -> OrderFigures:
    """The same over the instants [start, end), for one institute or all."""
    where = ServiceOrder.institute_id == institute_id if institute_id is not None else true()
    return figures([Window(where, start, end, tz)])


__all__ = ["OrderFigures", "order_figures", "order_figures_between", "percentile"]
