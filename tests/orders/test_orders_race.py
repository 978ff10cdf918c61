"""Concurrent moves on one order serialise on its row: two staff completing the last
two items complete the order once; two accepting it at once, one wins, one gets 409."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select

from labshare.errors import InvalidTransition
from labshare.extensions import db
from labshare.models import AuditLog, OrderStatus, ServiceOrder, User
from labshare.orders import intake, lifecycle
from tests.factories import make_pdf
from tests.helpers import NOW
from tests.raceutil import race


def _order(env: SimpleNamespace) -> int:
    order = intake.create_order(
        env.institute.id,
        env.sme,
        [
            intake.ItemInput(offering_id=env.offering.id, name="a"),
            intake.ItemInput(offering_id=env.testing.id, name="b"),
        ],
        delivery="drop_off",
    )
    db.session.commit()
    return order.id


def test_two_staff_complete_the_last_items_the_order_completes_once(
    app: Any, env: SimpleNamespace
) -> None:
    oid = _order(env)
    order = db.session.get(ServiceOrder, oid)
    assert order is not None
    lifecycle.accept_order(order, env.staff, promised_date=NOW.date())
    lifecycle.receive_order(order, env.staff)
    lifecycle.start_order(order, env.staff)
    db.session.commit()
    item_ids = [i.id for i in order.items]
    staff_id = env.staff.id
    db.session.remove()

    def step(n: int) -> Any:
        def prepare() -> Any:
            o = db.session.get(ServiceOrder, oid)
            user = db.session.get(User, staff_id)
            return lambda: lifecycle.complete_item(
                o,  # type: ignore[arg-type]
                item_ids[n],
                user,  # type: ignore[arg-type]
                result="conforming",
                certificate_number=f"R-{n}",
                pdf=make_pdf(),
            )

        return prepare

    outcomes = race(app, [step(0), step(1)])
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    order = db.session.get(ServiceOrder, oid)
    assert order is not None and order.status == OrderStatus.COMPLETED
    completes = db.session.scalar(
        select(func.count(AuditLog.id)).where(
            AuditLog.object_id == oid, AuditLog.action == "service_order.complete"
        )
    )
    assert completes == 1


def test_two_accepts_one_wins(app: Any, env: SimpleNamespace) -> None:
    oid = _order(env)
    staff_id = env.staff.id
    db.session.remove()

    def prepare() -> Any:
        o = db.session.get(ServiceOrder, oid)
        user = db.session.get(User, staff_id)
        return lambda: lifecycle.accept_order(o, user, promised_date=NOW.date())  # type: ignore[arg-type]

    outcomes = race(app, [prepare, prepare])
    errors = [o.error for o in outcomes if not o.ok]
    assert len(errors) == 1 and isinstance(errors[0], InvalidTransition)
    accepts = db.session.scalar(
        select(func.count(AuditLog.id)).where(
            AuditLog.object_id == oid, AuditLog.action == "service_order.accept"
        )
    )
    assert accepts == 1


def test_two_orders_race_for_one_certificate_number(app: Any, env: SimpleNamespace) -> None:
    """Two staff give items of two orders the same number at once: one keeps it, the
    other is told so (not a 500), and only one file is stored."""
    from labshare.errors import ValidationFailed
    from labshare.models import ServiceOrderItem

    oids = [_order(env), _order(env)]
    for oid in oids:
        order = db.session.get(ServiceOrder, oid)
        assert order is not None
        lifecycle.accept_order(order, env.staff, promised_date=NOW.date())
        lifecycle.receive_order(order, env.staff)
        lifecycle.start_order(order, env.staff)
    db.session.commit()
    item_ids = [db.session.get(ServiceOrder, oid).items[0].id for oid in oids]  # type: ignore[union-attr]
    staff_id = env.staff.id
    db.session.remove()

    def step(n: int) -> Any:
        def prepare() -> Any:
            o = db.session.get(ServiceOrder, oids[n])
            user = db.session.get(User, staff_id)
            return lambda: lifecycle.complete_item(
                o,  # type: ignore[arg-type]
                item_ids[n],
                user,  # type: ignore[arg-type]
                result="conforming",
                certificate_number="DUP-1",
                pdf=make_pdf(),
            )

        return prepare

    root = Path(
        app.config.get("CERTIFICATE_DIR") or Path(app.config["INSTANCE_DIR"]) / "certificates"
    )
    before = set(root.rglob("*.pdf"))
    outcomes = race(app, [step(0), step(1)])
    errors = [o.error for o in outcomes if not o.ok]
    assert len(errors) == 1 and isinstance(errors[0], ValidationFailed), errors
    keys = db.session.scalars(
        select(ServiceOrderItem.certificate_key).where(
            ServiceOrderItem.certificate_key.is_not(None)
        )
    ).all()
    assert len(keys) == 1
    assert len(set(root.rglob("*.pdf")) - before) == 1
