"""Demo data: offerings, and orders in every status with downloadable, verifiable
certificates; a second run adds none."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from sqlalchemy import func, select

from labshare.extensions import db
from labshare.models import OrderStatus, ServiceOffering, ServiceOrder, ServiceOrderItem
from labshare.orders.certificates import check_pdf, verify
from labshare.orders.storage import certificate_store
from labshare.timeutil import set_clock

NOW = dt.datetime(2026, 11, 27, 2, 30, tzinfo=dt.UTC)


def test_demo_orders_in_every_status(app: Flask) -> None:
    set_clock(lambda: NOW)
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    db.session.rollback()
    statuses = set(db.session.scalars(select(ServiceOrder.status)))
    assert statuses == set(OrderStatus)
    assert db.session.scalar(select(func.count(ServiceOffering.id)))
    item = db.session.scalars(
        select(ServiceOrderItem).where(ServiceOrderItem.certificate_key.is_not(None))
    ).first()
    assert item is not None and item.certificate_key is not None
    check_pdf(certificate_store().load(item.certificate_key))
    assert verify(item.certificate_number or "", item.verification_code or "").genuine
    counts = (
        db.session.scalar(select(func.count(ServiceOrder.id))),
        db.session.scalar(select(func.count(ServiceOffering.id))),
    )
    again = app.test_cli_runner().invoke(args=["seed-demo"])
    assert again.exit_code == 0, again.output
    db.session.rollback()
    assert (
        db.session.scalar(select(func.count(ServiceOrder.id))),
        db.session.scalar(select(func.count(ServiceOffering.id))),
    ) == counts
