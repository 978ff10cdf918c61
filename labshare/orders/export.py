"""The "Orders" sheet of the monthly export (and its CSV): one row per item of the
orders created in the period (each institute's local days), streamed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from labshare.campaign.periods import Period, Scope, zone_groups
from labshare.extensions import db
from labshare.labels import label
from labshare.models import Company, Institute, ServiceOrder, ServiceOrderItem
from labshare.orders.labels import order_label
from labshare.sheets import INTEGER, MONEY, STAMP, Column, csv_chunks
from labshare.timeutil import to_local


def order_columns() -> list[Column]:
    return [
        Column(_("Order no."), 10, INTEGER),
        Column(_("Institute code"), 14),
        Column(_("Institute"), 28),
        Column(_("Company"), 28),
        Column(_("Unified Social Credit Code"), 22),
        Column(_("Status"), 12),
        Column(_("Created"), 17, STAMP),
        Column(_("Received"), 17, STAMP),
        Column(_("Completed"), 17, STAMP),
        Column(_("Promised by"), 12),
        Column(_("Item no."), 8, INTEGER),
        Column(_("Instrument or sample"), 24),
        Column(_("Model"), 14),
        Column(_("Serial / ID number"), 16),
        Column(_("Service"), 12),
        Column(_("Field"), 14),
        Column(_("Quantity"), 8, INTEGER),
        Column(_("Result"), 12),
        Column(_("Certificate or report number"), 20),
        Column(_("Fee"), 12, MONEY),
        Column(_("Fee waived"), 12, MONEY),
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
    return csv_chunks(order_columns(), order_rows(period, scope))
