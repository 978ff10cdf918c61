"""A new service order: its items checked against the institute's offerings and
the limits of labshare/orders/inputs.py, then stored as ``submitted``. Nothing
here commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.accounts.companies import booking_refusal
from labshare.errors import NotAllowed, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    DeliveryMethod,
    Institute,
    OrderStatus,
    Role,
    ServiceOffering,
    ServiceOrder,
    ServiceOrderItem,
    User,
)
from labshare.ops import audit
from labshare.orders import notices
from labshare.orders.inputs import (
    MAX_ID,
    MAX_ITEMS,
    MAX_QUANTITY,
    NOTES_MAX,
    SHORT_MAX,
    TEXT_MAX,
    clean_text,
)


@dataclass
class ItemInput:
    offering_id: int | None
    name: str | None
    quantity: int | None = 1
    model: str | None = None
    serial_number: str | None = None
    measuring_range: str | None = None
    accuracy_class: str | None = None
    procedure: str | None = None


def create_order(
    institute_id: int,
    user: User,
    items: Sequence[ItemInput],
    *,
    delivery: str | None,
    tracking_number: str | None = None,
    notes: str | None = None,
) -> ServiceOrder:
    """A new ``submitted`` order of ``user``'s company at one institute."""
    if not (user.active and user.role == Role.SME and user.company_id is not None):
        raise NotAllowed(_l("Only members of a company can send items."))
    # As for bookings: a company nobody has vouched for yet may read, not order.
    refusal = booking_refusal(user.company)
    if refusal is not None:
        raise refusal
    institute = db.session.get(Institute, institute_id) if 1 <= institute_id <= MAX_ID else None
    if institute is None or not institute.active:
        raise ValidationFailed(_l("No such institute."), field="institute_id")
    try:
        method = DeliveryMethod(delivery or "")
    except ValueError:
        raise ValidationFailed(
            _l("Choose drop-off, courier or on-site service."), field="delivery"
        ) from None
    tracking = clean_text(tracking_number, "tracking_number", SHORT_MAX)
    note = clean_text(notes, "notes", NOTES_MAX)
    if not items:
        raise ValidationFailed(_l("An order needs at least one item."), field="items")
    if len(items) > MAX_ITEMS:
        raise ValidationFailed(
            _l("An order may have at most %(n)d items; split it.", n=MAX_ITEMS), field="items"
        )
    offering_ids = {
        i.offering_id
        for i in items
        if isinstance(i.offering_id, int) and 1 <= i.offering_id <= MAX_ID
    }
    offerings = {
        o.id: o
        for o in db.session.scalars(
            select(ServiceOffering).where(ServiceOffering.id.in_(offering_ids))
        )
    }
    rows: list[ServiceOrderItem] = []
    for n, item in enumerate(items):
        prefix = f"items.{n}"
        offering = offerings.get(item.offering_id) if item.offering_id is not None else None
        if offering is None or offering.institute_id != institute.id or not offering.active:
            raise ValidationFailed(
                _l("This institute does not offer that service."), field=f"{prefix}.offering_id"
            )
        quantity = item.quantity if item.quantity is not None else 1
        if not isinstance(quantity, int) or quantity < 1 or quantity > MAX_QUANTITY:
            raise ValidationFailed(
                _l("The quantity must be a whole number from 1 to %(n)d.", n=MAX_QUANTITY),
                field=f"{prefix}.quantity",
            )
        rows.append(
            ServiceOrderItem(
                position=n + 1,
                offering_id=offering.id,
                service_type=offering.service_type,
                field=offering.field,
                name=clean_text(item.name, f"{prefix}.name", TEXT_MAX, required=True),
                model=clean_text(item.model, f"{prefix}.model", SHORT_MAX),
                serial_number=clean_text(item.serial_number, f"{prefix}.serial_number", SHORT_MAX),
                measuring_range=clean_text(
                    item.measuring_range, f"{prefix}.measuring_range", TEXT_MAX
                ),
                accuracy_class=clean_text(
                    item.accuracy_class, f"{prefix}.accuracy_class", SHORT_MAX
                ),
                procedure=clean_text(item.procedure, f"{prefix}.procedure", SHORT_MAX)
                or offering.procedure,
                quantity=quantity,
                interval_months=offering.interval_months,
            )
        )
    order = ServiceOrder(
        institute_id=institute.id,
        company_id=user.company_id,
        user_id=user.id,
        status=OrderStatus.SUBMITTED,
        delivery=method,
        tracking_number=tracking,
        notes=note,
        items=rows,
    )
    db.session.add(order)
    db.session.flush()
    audit.record(
        "service_order.create",
        order,
        actor=user,
        to_state=OrderStatus.SUBMITTED,
        data={"items": len(rows)},
    )
    notices.order_event(order, "submitted")
    return order
