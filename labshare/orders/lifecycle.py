"""Service orders' life cycle (one transition table): quotes with the SME fee waiver,
per-item completion with its certificate. Creation is labshare/orders/intake.py,
the staff queue labshare/orders/queue.py.

Same discipline as bookings: who may act is checked first (another tenant's order
is "not found", the wrong role "forbidden"), the order's row is locked and re-read,
the move is checked against ``TRANSITIONS`` (409 ``invalid_state`` with a reason),
audited and its notifications queued in the same transaction. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from labshare.booking.permissions import can_view_tenant, is_member_of_company, is_staff_of
from labshare.database import begin_write
from labshare.errors import InvalidTransition, NotAllowed, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    Institute,
    ItemResult,
    OrderServiceType,
    OrderStatus,
    ServiceOrder,
    ServiceOrderItem,
    User,
)
from labshare.ops import audit
from labshare.orders import notices
from labshare.orders.inputs import MAX_MONEY, REASON_MAX, SHORT_MAX, clean_text, money
from labshare.orders.storage import certificate_store
from labshare.timeutil import to_local, utcnow


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


def local_today(institute: Institute) -> dt.date:
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
    if promised_date < local_today(order.institute):
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
        item.fee = money(fee)
        item.fee_waived = money(item.fee * item.offering.fee_waiver_percent / 100)
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
    text = clean_text(reason, "reason", REASON_MAX, required=True)
    _lock(order)
    _move(order, actor, "reject", reason=text)
    order.decided_by_id, order.decided_at, order.decision_reason = actor.id, utcnow(), text
    db.session.flush()
    notices.order_event(order, "rejected")
    return order


def cancel_order(order: ServiceOrder, actor: User, reason: str | None = None) -> ServiceOrder:
    """The company withdraws its order, until the institute has received the items."""
    _authorize(order, actor, TRANSITIONS["cancel"])
    text = clean_text(reason, "reason", REASON_MAX)
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
        notes[key] = clean_text(value, f"conditions.{key}", REASON_MAX)
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
    number = clean_text(certificate_number, "certificate_number", SHORT_MAX, required=True)
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
        item.due_date = _add_months(local_today(order.institute), months)
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
