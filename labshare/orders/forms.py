"""Reading the order pages' forms into the services' inputs (shape only: the
rules are checked in labshare/orders/intake.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from labshare.errors import ValidationFailed
from labshare.models import ServiceOrder
from labshare.orders.inputs import MAX_ITEMS
from labshare.orders.intake import ItemInput

ITEM_FIELDS = (
    "offering_id",
    "name",
    "model",
    "serial_number",
    "measuring_range",
    "accuracy_class",
    "quantity",
    "procedure",
)
DEFAULT_ROWS = 3


def _int(raw: str | None, field: str) -> int | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValidationFailed(_l("A whole number is required."), field=field) from None


def items_from_form(form: MultiDict[str, str]) -> list[ItemInput]:
    """Rows ``items-N-<field>``; a row left wholly empty is skipped."""
    rows: list[ItemInput] = []
    for n in range(MAX_ITEMS + 1):
        values = {f: (form.get(f"items-{n}-{f}") or "").strip() for f in ITEM_FIELDS}
        if f"items-{n}-name" not in form:
            break
        if not values["name"] and not values["offering_id"]:
            continue
        at = len(rows)
        rows.append(
            ItemInput(
                offering_id=_int(values["offering_id"], f"items.{at}.offering_id"),
                name=values["name"],
                quantity=_int(values["quantity"], f"items.{at}.quantity") or 1
                if not values["quantity"]
                else _int(values["quantity"], f"items.{at}.quantity"),
                model=values["model"],
                serial_number=values["serial_number"],
                measuring_range=values["measuring_range"],
                accuracy_class=values["accuracy_class"],
                procedure=values["procedure"],
            )
        )
    return rows


def items_of(order: ServiceOrder) -> list[ItemInput]:
    """The same items again (for "order again")."""
    return [
        ItemInput(
            offering_id=i.offering_id,
            name=i.name,
            quantity=i.quantity,
            model=i.model,
            serial_number=i.serial_number,
            measuring_range=i.measuring_range,
            accuracy_class=i.accuracy_class,
            procedure=i.procedure,
        )
        for i in order.items
    ]


def date_from_form(raw: str | None, field: str) -> dt.date | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(_l("A date like 2030-01-31 is required."), field=field) from None


def fees_from_form(form: MultiDict[str, str], order: ServiceOrder) -> dict[int, Decimal | str]:
    fees: dict[int, Decimal | str] = {}
    for item in order.items:
        raw = (form.get(f"fee-{item.id}") or "").strip()
        if raw:
            fees[item.id] = raw
    return fees
