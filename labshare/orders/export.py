"""The "Orders" sheet of the monthly export (and its CSV): one row per item of the
orders created in the period (each institute's local days), streamed."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from labshare.campaign.periods import Period, Scope, zone_groups
from labshare.extensions import db
from labshare.labels import label
from labshare.models import Company, Institute, ServiceOrder, ServiceOrderItem
from labshare.orders.labels import order_label
from labshare.safety import spreadsheet_text
from labshare.timeutil import to_local

MONEY = "#,##0.00"
INTEGER = "0"
STAMP = "yyyy-mm-dd hh:mm"


@dataclass
class OrderColumn:
    title: str
    width: int
    number_format: str | None = None


def order_columns() -> list[OrderColumn]:
    return [
        OrderColumn(_("Order no."), 10, INTEGER),
        OrderColumn(_("Institute code"), 14),
        OrderColumn(_("Institute"), 28),
        OrderColumn(_("Company"), 28),
        OrderColumn(_("Unified Social Credit Code"), 22),
        OrderColumn(_("Status"), 12),
        OrderColumn(_("Created"), 17, STAMP),
        OrderColumn(_("Received"), 17, STAMP),
        OrderColumn(_("Completed"), 17, STAMP),
        OrderColumn(_("Promised by"), 12),
        OrderColumn(_("Item no."), 8, INTEGER),
        OrderColumn(_("Instrument or sample"), 24),
        OrderColumn(_("Model"), 14),
        OrderColumn(_("Serial / ID number"), 16),
        OrderColumn(_("Service"), 12),
        OrderColumn(_("Field"), 14),
        OrderColumn(_("Quantity"), 8, INTEGER),
        OrderColumn(_("Result"), 12),
        OrderColumn(_("Certificate or report number"), 20),
        OrderColumn(_("Fee"), 12, MONEY),
        OrderColumn(_("Fee waived"), 12, MONEY),
    ]


def order_rows(period: Period, scope: Scope) -> Iterator[list[Any]]:
    if scope.kind in ("lab", "instrument"):
        return
    for group in zone_groups(period, scope):
        tz = group.timezone

        def local(value: dt.datetime | None, tz: str = tz) -> dt.datetime | None:
            return to_local(value, tz).replace(tzinfo=None) if value is not None else None

        stmt = (
            select(ServiceOrder, ServiceOrderItem, Institute.code, Institute.name, Company)
            .join(ServiceOrderItem, ServiceOrderItem.order_id == ServiceOrder.id)
            .join(Institute, Institute.id == ServiceOrder.institute_id)
            .join(Company, Company.id == ServiceOrder.company_id)
            .where(
                ServiceOrder.institute_id.in_(group.institute_ids),
                ServiceOrder.created_at >= group.start,
                ServiceOrder.created_at < group.end,
            )
            .order_by(ServiceOrder.created_at, ServiceOrder.id, ServiceOrderItem.position)
            .execution_options(stream_results=True, yield_per=2000)
        )
        for order, item, code, name, company in db.session.execute(stmt):
            yield [
                order.id,
                code,
                name,
                company.name,
                company.credit_code,
                order_label(order.status),
                local(order.created_at),
                local(order.received_at),
                local(order.completed_at),
                order.promised_date.isoformat() if order.promised_date else "",
                item.position,
                item.name,
                item.model or "",
                item.serial_number or "",
                order_label(item.service_type),
                label(item.field),
                item.quantity,
                order_label(item.result) if item.result else "",
                item.certificate_number or "",
                item.fee,
                item.fee_waived,
            ]


def iter_orders_csv(period: Period, scope: Scope) -> Iterator[bytes]:
    """The Orders sheet as CSV chunks, the first with the UTF-8 BOM."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.title for c in order_columns()])
    first = True
    for n, values in enumerate(order_rows(period, scope), start=1):
        writer.writerow([_csv(v) for v in values])
        if n % 2000 == 0:
            chunk = buffer.getvalue().encode("utf-8")
            yield (b"\xef\xbb\xbf" + chunk) if first else chunk
            first = False
            buffer.seek(0)
            buffer.truncate()
    chunk = buffer.getvalue().encode("utf-8")
    yield (b"\xef\xbb\xbf" + chunk) if first else chunk


def _csv(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return value
    # A cell that a spreadsheet reads as a formula (a tab or CR start too): keep it text.
    text = str(value)
    guarded = spreadsheet_text(text)
    return guarded if guarded != text else value
