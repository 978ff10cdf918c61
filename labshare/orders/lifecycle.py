"""Service orders: creation, the life cycle (one transition table), quotes with the
SME fee waiver, per-item completion with its certificate, and the staff queue.

Same discipline as bookings: who may act is checked first (another tenant's order
is "not found", the wrong role "forbidden"), the order's row is locked and re-read,
the move is checked against ``TRANSITIONS`` (409 ``invalid_state`` with a reason),
audited and its notifications queued in the same transaction. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from labshare.accounts.companies import booking_refusal
from labshare.booking.permissions import can_view_tenant, is_member_of_company, is_staff_of
from labshare.database import begin_write
from labshare.errors import InvalidTransition, NotAllowed, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    DeliveryMethod,
    Institute,
    ItemResult,
    OrderServiceType,
    OrderStatus,
    Role,
    ServiceOffering,
    ServiceOrder,
    ServiceOrderItem,
    User,
)
from labshare.ops import audit
from labshare.orders import notices
from labshare.orders.storage import certificate_store
from labshare.timeutil import to_local, utcnow

#: An order carries at most this many item lines (a line may have a quantity).
MAX_ITEMS = 200
MAX_QUANTITY = 10_000
TEXT_MAX = 200
SHORT_MAX = 100
NOTES_MAX = 2000
REASON_MAX = 500
CENT = Decimal("0.01")
#: The money columns are NUMERIC(12, 2): larger would overflow on PostgreSQL.
MAX_MONEY = Decimal("9999999999.99")
#: Ids are 32-bit INTEGER columns; a larger one names no row (and SQLite cannot bind it).
MAX_ID = 2**31 - 1


class Actor(enum.StrEnum):
    COMPANY = "company"
    STAFF = "staff"


@dataclass(frozen=True)
class Move:
    sources: frozenset[OrderStatus]
    target: OrderStatus
    actor: Actor


S = OrderStatus
#: Every move an order can make: from which statuses, to which, by whom. An item is
#: completed while its order is in progress; the last one completes the order.
TRANSITIONS: dict[str, Move] = {
    "accept": Move(frozenset({S.SUBMITTED}), S.ACCEPTED, Actor.STAFF),
    "reject": Move(frozenset({S.SUBMITTED}), S.REJECTED, Actor.STAFF),
    "cancel": Move(frozenset({S.SUBMITTED, S.ACCEPTED}), S.CANCELLED, Actor.COMPANY),
    "receive": Move(frozenset({S.ACCEPTED}), S.RECEIVED, Actor.STAFF),
    "start": Move(frozenset({S.RECEIVED}), S.IN_PROGRESS, Actor.STAFF),
    "complete_item": Move(frozenset({S.IN_PROGRESS}), S.IN_PROGRESS, Actor.STAFF),
    "complete": Move(frozenset({S.IN_PROGRESS}), S.COMPLETED, Actor.STAFF),
    "return": Move(frozenset({S.COMPLETED}), S.RETURNED, Actor.STAFF),
    "collect": Move(frozenset({S.COMPLETED}), S.COLLECTED, Actor.STAFF),
}

#: Statuses in which the institute still owes the work (the promised date applies).
OPEN_WORK = (S.ACCEPTED, S.RECEIVED, S.IN_PROGRESS)
FINISHED = (S.COMPLETED, S.RETURNED, S.COLLECTED)


def allowed_actions(order: ServiceOrder, user: User) -> list[str]:
    """The moves ``user`` may make on ``order`` now (for pages and the API)."""
    actions = []
    for name, move in TRANSITIONS.items():
        if name == "complete" or order.status not in move.sources:
            continue
        if (move.actor is Actor.STAFF and is_staff_of(user, order.institute_id)) or (
            move.actor is Actor.COMPANY and is_member_of_company(user, order.company_id)
        ):
            actions.append(name)
    return actions


# -- input ----------------------------------------------------------------------------


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


def _text(value: str | None, field: str, limit: int, *, required: bool = False) -> str | None:
    text = (value or "").strip()
    check_no_control(text, field)
    if not text:
        if required:
            raise ValidationFailed(_l("This field is required."), field=field)
        return None
    if len(text) > limit:
        raise ValidationFailed(_l("At most %(n)d characters are allowed.", n=limit), field=field)
    return text


def check_no_control(text: str, field: str) -> None:
    """PostgreSQL refuses a NUL in text; no other control character belongs in an
    order either (line breaks and tabs in notes do)."""
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text):
        raise ValidationFailed(_l("Control characters are not allowed."), field=field)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _local_today(institute: Institute) -> dt.date:
    return to_local(utcnow(), institute.timezone).date()


def _add_months(day: dt.date, months: int) -> dt.date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


# -- authorization and locking ---------------------------------------------------------


def visible_to(order: ServiceOrder, user: User) -> bool:
    return can_view_tenant(user, institute_id=order.institute_id, company_id=order.company_id)


def _authorize(order: ServiceOrder, actor: User, move: Move) -> None:
    if not visible_to(order, actor):
        raise NotFound(_l("No such order."))
    if move.actor is Actor.STAFF and not is_staff_of(actor, order.institute_id):
        raise NotAllowed(_l("Only staff of the order's institute can do this."))
    if move.actor is Actor.COMPANY and not is_member_of_company(actor, order.company_id):
        raise NotAllowed(_l("Only the order's company can do this."))


def _lock(order: ServiceOrder) -> None:
    begin_write()
    db.session.execute(select(ServiceOrder.id).where(ServiceOrder.id == order.id).with_for_update())
    db.session.refresh(order)


def _move(
    order: ServiceOrder,
    actor: User,
    action: str,
    *,
    reason: str | None = None,
    data: dict[str, object] | None = None,
) -> OrderStatus:
    move = TRANSITIONS[action]
    current = OrderStatus(order.status)
    if current not in move.sources:
        raise InvalidTransition(
            _l(
                "This order is %(current)s; it cannot be %(action)s now.",
                current=str(current),
                action=action.replace("_", " "),
            )
        )
    order.status = move.target
    audit.record(
        f"service_order.{action}",
        order,
        actor=actor,
        from_state=current,
        to_state=move.target,
        reason=reason,
        data=data,
    )
    return current


def _begin(order: ServiceOrder, actor: User, action: str) -> None:
    _authorize(order, actor, TRANSITIONS[action])
    _lock(order)


# -- creation ---------------------------------------------------------------------------


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
    tracking = _text(tracking_number, "tracking_number", SHORT_MAX)
    note = _text(notes, "notes", NOTES_MAX)
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
                name=_text(item.name, f"{prefix}.name", TEXT_MAX, required=True),
                model=_text(item.model, f"{prefix}.model", SHORT_MAX),
                serial_number=_text(item.serial_number, f"{prefix}.serial_number", SHORT_MAX),
                measuring_range=_text(item.measuring_range, f"{prefix}.measuring_range", TEXT_MAX),
                accuracy_class=_text(item.accuracy_class, f"{prefix}.accuracy_class", SHORT_MAX),
                procedure=_text(item.procedure, f"{prefix}.procedure", SHORT_MAX)
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


# -- transitions ---------------------------------------------------------------------------


def accept_order(
    order: ServiceOrder,
    actor: User,
    *,
    promised_date: dt.date | None,
    fees: Mapping[int, Decimal | str] | None = None,
) -> ServiceOrder:
    """submitted -> accepted, with a quote: a fee per item (the catalogue's fee times
    the quantity unless staff give one), the offering's SME waiver applied, and the
    promised completion date."""
    _begin(order, actor, "accept")
    if not isinstance(promised_date, dt.date):
        raise ValidationFailed(_l("Give the promised completion date."), field="promised_date")
    if promised_date < _local_today(order.institute):
        raise ValidationFailed(
            _l("The promised date cannot be in the past."), field="promised_date"
        )
    given = dict(fees or {})
    item_ids = {item.id for item in order.items}
    for key in given:
        if key not in item_ids:
            raise ValidationFailed(_l("No such item in this order."), field=f"fees.{key}")
    total = waived = Decimal("0")
    for item in order.items:
        raw = given.get(item.id)
        if raw is None:
            fee = item.offering.fee * item.quantity
        else:
            try:
                fee = Decimal(str(raw))
            except InvalidOperation:
                raise ValidationFailed(_l("Not a number."), field=f"fees.{item.id}") from None
            if not fee.is_finite() or fee < 0 or fee > Decimal("1e9"):
                raise ValidationFailed(
                    _l("A fee is a number of at least 0."), field=f"fees.{item.id}"
                )
        item.fee = _money(fee)
        item.fee_waived = _money(item.fee * item.offering.fee_waiver_percent / 100)
        total += item.fee
        waived += item.fee_waived
        if item.fee > MAX_MONEY or total > MAX_MONEY:
            raise ValidationFailed(
                _l("The order's fees add up to more than %(n)s.", n=MAX_MONEY),
                field=f"fees.{item.id}",
            )
    _move(order, actor, "accept", data={"fee": str(total), "promised_date": str(promised_date)})
    order.fee, order.fee_waived = total, waived
    order.promised_date = promised_date
    order.decided_by_id, order.decided_at = actor.id, utcnow()
    db.session.flush()
    notices.order_event(order, "accepted")
    return order


def reject_order(order: ServiceOrder, actor: User, reason: str | None) -> ServiceOrder:
    _authorize(order, actor, TRANSITIONS["reject"])
    text = _text(reason, "reason", REASON_MAX, required=True)
    _lock(order)
    _move(order, actor, "reject", reason=text)
    order.decided_by_id, order.decided_at, order.decision_reason = actor.id, utcnow(), text
    db.session.flush()
    notices.order_event(order, "rejected")
    return order


def cancel_order(order: ServiceOrder, actor: User, reason: str | None = None) -> ServiceOrder:
    """The company withdraws its order, until the institute has received the items."""
    _authorize(order, actor, TRANSITIONS["cancel"])
    text = _text(reason, "reason", REASON_MAX)
    _lock(order)
    _move(order, actor, "cancel", reason=text)
    order.cancelled_by_id, order.cancelled_at = actor.id, utcnow()
    if text:
        order.decision_reason = text
    db.session.flush()
    notices.order_event(order, "cancelled")
    return order


def receive_order(
    order: ServiceOrder, actor: User, conditions: Mapping[int, str | None] | None = None
) -> ServiceOrder:
    """accepted -> received: the items are checked in, each item's condition noted."""
    _authorize(order, actor, TRANSITIONS["receive"])
    given = dict(conditions or {})
    items = {item.id: item for item in order.items}
    notes: dict[int, str | None] = {}
    for key, value in given.items():
        if key not in items:
            raise ValidationFailed(_l("No such item in this order."), field=f"conditions.{key}")
        notes[key] = _text(value, f"conditions.{key}", REASON_MAX)
    _lock(order)
    _move(order, actor, "receive", data={"conditions": {str(k): v for k, v in notes.items()}})
    for key, note in notes.items():
        items[key].condition_note = note
    order.received_at, order.received_by_id = utcnow(), actor.id
    db.session.flush()
    notices.order_event(order, "received")
    return order


def start_order(order: ServiceOrder, actor: User) -> ServiceOrder:
    _begin(order, actor, "start")
    _move(order, actor, "start")
    order.started_at = utcnow()
    db.session.flush()
    notices.order_event(order, "in_progress")
    return order


def _finish(order: ServiceOrder, actor: User, action: str) -> ServiceOrder:
    _begin(order, actor, action)
    _move(order, actor, action)
    order.closed_at = utcnow()
    db.session.flush()
    notices.order_event(order, TRANSITIONS[action].target.value)
    return order


def return_order(order: ServiceOrder, actor: User) -> ServiceOrder:
    """completed -> returned (sent back to the company)."""
    return _finish(order, actor, "return")


def collect_order(order: ServiceOrder, actor: User) -> ServiceOrder:
    """completed -> collected (fetched by the company)."""
    return _finish(order, actor, "collect")


def _new_verification_code() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off paper
    return "".join(secrets.choice(alphabet) for _ in range(10))


def complete_item(
    order: ServiceOrder,
    item_id: int,
    actor: User,
    *,
    result: str | None,
    certificate_number: str | None,
    pdf: bytes | None,
    interval_months: int | None = None,
) -> ServiceOrderItem:
    """One item's result with its certificate or report (a checked PDF). The last
    item completes the order. The file is stored only after every check passed."""
    from labshare.orders.certificates import check_pdf

    _authorize(order, actor, TRANSITIONS["complete_item"])
    item = next((i for i in order.items if i.id == item_id), None)
    if item is None:
        raise NotFound(_l("No such item in this order."))
    try:
        outcome = ItemResult(result or "")
    except ValueError:
        raise ValidationFailed(
            _l("Choose conforming, not conforming or calibrated."), field="result"
        ) from None
    number = _text(certificate_number, "certificate_number", SHORT_MAX, required=True)
    if interval_months is not None and not (1 <= interval_months <= 120):
        raise ValidationFailed(_l("The interval is from 1 to 120 months."), field="interval_months")
    if pdf is None:
        raise ValidationFailed(_l("Attach the certificate or report as a PDF."), field="file")
    check_pdf(pdf)
    _lock(order)
    db.session.refresh(item)
    if item.completed_at is not None:
        raise InvalidTransition(_l("This item is completed already."))
    _move(
        order,
        actor,
        "complete_item",
        data={"item": item.id, "result": outcome.value, "certificate": number},
    )
    taken = db.session.scalar(
        select(ServiceOrderItem.id).where(ServiceOrderItem.certificate_number == number)
    )
    if taken is not None:
        raise ValidationFailed(
            _l("This certificate number is in use already."), field="certificate_number"
        )
    now = utcnow()
    item.result = outcome
    item.certificate_number = number
    item.verification_code = _new_verification_code()
    item.completed_at, item.completed_by_id = now, actor.id
    # Another order's item may take the same number in a concurrent transaction: the
    # unique index decides, before any file is stored.
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        raise ValidationFailed(
            _l("This certificate number is in use already."), field="certificate_number"
        ) from None
    item.certificate_key, item.certificate_sha256 = certificate_store().save(pdf)
    months = interval_months if interval_months is not None else item.interval_months
    item.interval_months = months
    if (
        months
        and item.service_type in (OrderServiceType.CALIBRATION, OrderServiceType.VERIFICATION)
        and outcome in (ItemResult.CONFORMING, ItemResult.CALIBRATED)
    ):
        item.due_date = _add_months(_local_today(order.institute), months)
    db.session.flush()
    # Counted in the database under the order's lock: another session may have
    # completed the other items since this one loaded them.
    remaining = db.session.scalar(
        select(func.count(ServiceOrderItem.id)).where(
            ServiceOrderItem.order_id == order.id, ServiceOrderItem.completed_at.is_(None)
        )
    )
    if remaining == 0:
        _move(order, actor, "complete")
        order.completed_at = now
        db.session.flush()
        notices.order_event(order, "completed")
    return item


# -- the staff queue -----------------------------------------------------------------------


@dataclass
class Queue:
    new: list[ServiceOrder]
    overdue: list[ServiceOrder]
    in_work: list[ServiceOrder]
    ready: list[ServiceOrder]


def staff_queue(institute: Institute) -> Queue:
    """What an institute's staff have to act on: new orders, open work past its
    promised date (by the institute's calendar), and finished items to hand back."""
    today = _local_today(institute)
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
        and order.promised_date < _local_today(order.institute)
    )
