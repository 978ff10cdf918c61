"""What an institute's staff have to act on, and whether an order is late (by the
institute's calendar)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from labshare.extensions import db
from labshare.models import Institute, ServiceOrder
from labshare.orders.lifecycle import OPEN_WORK, S, local_today


@dataclass
class Queue:
    new: list[ServiceOrder]
    overdue: list[ServiceOrder]
    in_work: list[ServiceOrder]
    ready: list[ServiceOrder]


def staff_queue(institute: Institute) -> Queue:
    """What an institute's staff have to act on: new orders, open work past its
    promised date (by the institute's calendar), and finished items to hand back."""
    today = local_today(institute)
    rows = list(
        db.session.scalars(
            select(ServiceOrder)
            .where(
                ServiceOrder.institute_id == institute.id,
                ServiceOrder.status.in_((S.SUBMITTED, *OPEN_WORK, S.COMPLETED)),
            )
            .order_by(ServiceOrder.created_at, ServiceOrder.id)
        )
    )
    overdue = [
        o
        for o in rows
        if o.status in OPEN_WORK and o.promised_date is not None and o.promised_date < today
    ]
    return Queue(
        new=[o for o in rows if o.status == S.SUBMITTED],
        overdue=overdue,
        in_work=[o for o in rows if o.status in OPEN_WORK and o not in overdue],
        ready=[o for o in rows if o.status == S.COMPLETED],
    )


def is_overdue(order: ServiceOrder) -> bool:
    return (
        order.status in OPEN_WORK
        and order.promised_date is not None
        and order.promised_date < local_today(order.institute)
    )
