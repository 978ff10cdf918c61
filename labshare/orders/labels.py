"""Human labels of the order enumerations, translated lazily."""

from __future__ import annotations

import enum
from typing import Any

from flask_babel import lazy_gettext as _l

from labshare.labels import label as domain_label
from labshare.models import DeliveryMethod, ItemResult, OrderServiceType, OrderStatus

LABELS: dict[Any, Any] = {
    OrderStatus.SUBMITTED: _l("Submitted"),
    OrderStatus.ACCEPTED: _l("Accepted"),
    OrderStatus.REJECTED: _l("Rejected"),
    OrderStatus.CANCELLED: _l("Cancelled"),
    OrderStatus.RECEIVED: _l("Received"),
    OrderStatus.IN_PROGRESS: _l("In progress"),
    OrderStatus.COMPLETED: _l("Completed"),
    OrderStatus.RETURNED: _l("Returned"),
    OrderStatus.COLLECTED: _l("Collected"),
    OrderServiceType.VERIFICATION: _l("Verification"),
    OrderServiceType.CALIBRATION: _l("Calibration"),
    OrderServiceType.TESTING: _l("Testing"),
    DeliveryMethod.DROP_OFF: _l("Drop-off"),
    DeliveryMethod.COURIER: _l("Courier"),
    DeliveryMethod.ON_SITE: _l("On-site service"),
    ItemResult.CONFORMING: _l("Conforming"),
    ItemResult.NOT_CONFORMING: _l("Not conforming"),
    ItemResult.CALIBRATED: _l("Calibrated"),
}

ACTION_LABELS: dict[str, Any] = {
    "accept": _l("Accept with quote"),
    "reject": _l("Reject"),
    "cancel": _l("Cancel order"),
    "receive": _l("Items received"),
    "start": _l("Start work"),
    "return": _l("Sent back"),
    "collect": _l("Collected by the company"),
}


def order_label(value: enum.StrEnum | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and value in ACTION_LABELS:
        return str(ACTION_LABELS[value])
    found = LABELS.get(value)
    if found is not None:
        return str(found)
    return domain_label(value) if isinstance(value, enum.StrEnum) else str(value)
