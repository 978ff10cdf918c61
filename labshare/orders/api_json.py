"""The JSON shape of a service order (API and tests)."""

from __future__ import annotations

from typing import Any

from labshare.models import ServiceOrder, ServiceOrderItem, User
from labshare.orders.lifecycle import allowed_actions
from labshare.orders.queue import is_overdue
from labshare.timeutil import isoformat_local


def _money(value: Any) -> float:
    return float(value or 0)


def item_json(item: ServiceOrderItem, tz: str) -> dict[str, Any]:
    return {
        "id": item.id,
        "position": item.position,
        "offering_id": item.offering_id,
        "service_type": item.service_type.value,
        "field": item.field.value,
        "name": item.name,
        "model": item.model,
        "serial_number": item.serial_number,
        "measuring_range": item.measuring_range,
        "accuracy_class": item.accuracy_class,
        "quantity": item.quantity,
        "procedure": item.procedure,
        "fee": _money(item.fee),
        "fee_waived": _money(item.fee_waived),
        "condition_note": item.condition_note,
        "result": item.result.value if item.result else None,
        "certificate_number": item.certificate_number,
        "verification_code": item.verification_code,
        "has_certificate": item.certificate_key is not None,
        "completed_at": isoformat_local(item.completed_at, tz) if item.completed_at else None,
        "interval_months": item.interval_months,
        "due_date": item.due_date.isoformat() if item.due_date else None,
    }


def order_json(order: ServiceOrder, viewer: User | None = None) -> dict[str, Any]:
    tz = order.institute.timezone
    institute = order.institute

    def when(value: Any) -> str | None:
        return isoformat_local(value, tz) if value is not None else None

    return {
        "id": order.id,
        "institute": {"id": institute.id, "code": institute.code, "name": institute.name},
        "company_id": order.company_id,
        "user_id": order.user_id,
        "status": order.status.value,
        "delivery": order.delivery.value,
        "tracking_number": order.tracking_number,
        "notes": order.notes,
        "fee": _money(order.fee),
        "fee_waived": _money(order.fee_waived),
        "promised_date": order.promised_date.isoformat() if order.promised_date else None,
        "overdue": is_overdue(order),
        "decision_reason": order.decision_reason,
        "created_at": when(order.created_at),
        "decided_at": when(order.decided_at),
        "received_at": when(order.received_at),
        "completed_at": when(order.completed_at),
        "closed_at": when(order.closed_at),
        "items": [item_json(i, tz) for i in order.items],
        "actions": allowed_actions(order, viewer) if viewer is not None else [],
    }
