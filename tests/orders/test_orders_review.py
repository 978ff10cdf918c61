"""Input that once gave a 500 on one database or the other: a NUL or another control
character in an order's text, ids beyond the 32-bit columns, fees that overflow the
money columns. Each is a clear error naming the field, nothing written."""

from __future__ import annotations

import io
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.extensions import db
from labshare.models import CompanyStatus, ServiceOffering, ServiceOrder
from tests.factories import make_pdf
from tests.helpers import NOW, bearer, error_of, signed_in
from tests.orders.helpers import BASE, complete, create, item, post

BIG = 2**70


def _orders() -> int:
    return int(db.session.scalar(select(func.count(ServiceOrder.id))) or 0)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"notes": "a\x00b"}, "notes"),
        ({"tracking_number": "SF\x00"}, "tracking_number"),
        ({"_item": {"name": "压力表\x00"}}, "items.0.name"),
        ({"_item": {"serial_number": "P\x07-1"}}, "items.0.serial_number"),
    ],
)
def test_control_characters_in_an_order_are_refused(
    client: Any, env: SimpleNamespace, overrides: dict[str, Any], field: str
) -> None:
    given = dict(overrides)  # the parameters are shared by both databases' runs
    extra = given.pop("_item", {})
    r = create(client, env, items=[item(env.offering) | extra], **given)
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
    assert error_of(r)["field"] == field
    assert _orders() == 0


def test_line_breaks_in_notes_are_kept(client: Any, env: SimpleNamespace) -> None:
    r = create(client, env, notes="第一行\n第二行\t完")
    assert r.status_code == 201
    assert db.session.get(ServiceOrder, r.get_json()["id"]).notes == "第一行\n第二行\t完"


def test_control_characters_on_the_order_page(app: Any, env: SimpleNamespace) -> None:
    sme = signed_in(app, env.sme)
    r = sme.post(
        "/orders/new",
        data={
            "institute_id": env.institute.id,
            "delivery": "drop_off",
            "items-0-offering_id": env.offering.id,
            "items-0-name": "x\x00y",
            "items-0-quantity": "1",
        },
    )
    assert r.status_code == 422
    assert _orders() == 0


def test_control_characters_in_a_reason_or_condition(client: Any, env: SimpleNamespace) -> None:
    oid = create(client, env).get_json()["id"]
    r = post(client, env.staff, f"/{oid}/reject", json={"reason": "no\x00"})
    assert r.status_code == 422 and error_of(r)["field"] == "reason"
    db.session.expire_all()
    assert db.session.get(ServiceOrder, oid).status.value == "submitted"


def test_control_characters_in_a_new_service(app: Any, env: SimpleNamespace) -> None:
    staff = signed_in(app, env.staff)
    before = db.session.scalar(select(func.count(ServiceOffering.id)))
    r = staff.post(
        "/orders/offerings",
        data={
            "field": "mechanical",
            "service_type": "calibration",
            "name": "ok",
            "procedure": "JJG\x00",
            "turnaround_days": "7",
            "fee": "1",
            "fee_waiver_percent": "0",
        },
    )
    assert r.status_code == 422
    assert db.session.scalar(select(func.count(ServiceOffering.id))) == before


def test_verification_with_a_nul_is_just_not_genuine(client: Any, env: SimpleNamespace) -> None:
    r = client.post("/verify", data={"number": "A\x00", "code": "B\x00"})
    assert r.status_code == 200
    r = client.get("/api/v1/service-orders/certificates/verify?number=A%00&code=B%00")
    if r.status_code == 404:  # the API lives beside the orders
        r = client.get("/api/v1/certificates/verify?number=A%00&code=B%00")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert r.get_json()["genuine"] is False


def test_ids_beyond_the_columns_are_not_found(app: Any, client: Any, env: SimpleNamespace) -> None:
    r = create(client, env, items=[item(env.offering) | {"offering_id": BIG}])
    assert r.status_code in (400, 422)
    assert client.get(f"{BASE}/{BIG}", headers=bearer(env.sme)).status_code == 404
    sme = signed_in(app, env.sme)
    assert sme.get(f"/orders/{BIG}").status_code == 404
    r = sme.post(
        "/orders/new",
        data={
            "institute_id": str(BIG),
            "delivery": "drop_off",
            "items-0-offering_id": str(BIG),
            "items-0-name": "x",
            "items-0-quantity": "1",
        },
    )
    assert r.status_code == 422
    r = sme.post(
        "/orders/new",
        data={
            "institute_id": env.institute.id,
            "delivery": "drop_off",
            "items-0-offering_id": str(BIG),
            "items-0-name": "x",
            "items-0-quantity": "1",
        },
    )
    assert r.status_code == 422
    staff = signed_in(app, env.staff)
    assert staff.post(f"/orders/offerings/{BIG}/withdraw").status_code == 404
    assert _orders() == 0


def test_fees_beyond_the_money_columns_are_refused(client: Any, env: SimpleNamespace) -> None:
    env.offering.fee = Decimal("1000000000.00")
    db.session.commit()
    r = create(client, env, items=[item(env.offering, quantity=10_000)])
    oid = r.get_json()["id"]
    r = post(client, env.staff, f"/{oid}/accept", json={"promised_date": "2030-01-20"})
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
    assert error_of(r)["field"].startswith("fees")
    db.session.expire_all()
    order = db.session.get(ServiceOrder, oid)
    assert order.status.value == "submitted" and order.fee == 0


@pytest.mark.parametrize("interval", ["²", "1²", "-3", "x"])
def test_an_odd_interval_is_a_clear_error(
    app: Any, client: Any, env: SimpleNamespace, interval: str
) -> None:
    oid = create(client, env).get_json()["id"]
    assert (
        post(client, env.staff, f"/{oid}/accept", json={"promised_date": "2030-01-20"}).status_code
        == 200
    )
    assert post(client, env.staff, f"/{oid}/receive", json={}).status_code == 200
    assert post(client, env.staff, f"/{oid}/start").status_code == 200
    order = db.session.get(ServiceOrder, oid)
    item_id = order.items[0].id
    r = complete(client, env.staff, oid, item_id, interval_months=interval)
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
    assert error_of(r)["field"] == "interval_months"
    staff = signed_in(app, env.staff)
    r = staff.post(
        f"/orders/{oid}/items/{item_id}/complete",
        data={
            "result": "calibrated",
            "certificate_number": "R-1",
            "interval_months": interval,
            "file": (io.BytesIO(make_pdf()), "c.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert r.status_code == 422
    db.session.expire_all()
    assert db.session.get(ServiceOrder, oid).items[0].completed_at is None


@pytest.mark.parametrize("status", [CompanyStatus.PENDING, CompanyStatus.REJECTED])
def test_an_unconfirmed_company_cannot_order(
    app: Any, client: Any, env: SimpleNamespace, status: CompanyStatus
) -> None:
    env.sme.company.status = status
    db.session.commit()
    r = create(client, env)
    assert r.status_code == 403, r.get_data(as_text=True)[:300]
    sme = signed_in(app, env.sme)
    r = sme.post(
        "/orders/new",
        data={
            "institute_id": env.institute.id,
            "delivery": "drop_off",
            "items-0-offering_id": env.offering.id,
            "items-0-name": "x",
            "items-0-quantity": "1",
        },
    )
    assert r.status_code == 403
    assert _orders() == 0


def test_a_member_who_left_hears_no_more_of_the_companys_order(
    client: Any, env: SimpleNamespace
) -> None:
    from labshare.models import Notification
    from labshare.orders import lifecycle

    oid = create(client, env).get_json()["id"]
    env.sme.active = False  # removed from the company by its administrator
    db.session.commit()
    order = db.session.get(ServiceOrder, oid)
    lifecycle.accept_order(order, env.staff, promised_date=NOW.date())
    db.session.commit()
    to = db.session.scalars(
        select(Notification.user_id).where(Notification.kind == "order_accepted")
    ).all()
    assert to == [env.colleague.id]


def test_the_reminder_reaches_the_company_after_the_orderer_left(env: SimpleNamespace) -> None:
    from labshare.models import Notification
    from labshare.orders.reminders import send_recalibration_reminders
    from tests.factories import completed_order

    completed_order(env, months=1)
    env.sme.active = False
    db.session.commit()
    assert send_recalibration_reminders()["reminded"]
    to = db.session.scalars(
        select(Notification.user_id).where(Notification.kind == "recalibration_reminder")
    ).all()
    assert to == [env.colleague.id]


@pytest.mark.parametrize("raw", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_the_orders_csv_keeps_formula_like_text_as_text(raw: str) -> None:
    from labshare.sheets import csv_cell

    assert csv_cell(raw) == "'" + raw
    assert csv_cell(-5) == -5 and csv_cell("ok") == "ok"


@pytest.mark.parametrize(
    "key", ["0" * 32 + ".pdf\n", "../" + "0" * 29 + ".pdf", "0" * 32 + ".PDF", "/etc/passwd"]
)
def test_the_store_refuses_keys_it_did_not_make(tmp_path: Any, key: str) -> None:
    from labshare.orders.storage import LocalCertificateStore

    store = LocalCertificateStore(tmp_path)
    made, _digest = store.save(b"%PDF-1.4 x")
    assert store.load(made) == b"%PDF-1.4 x"
    with pytest.raises(KeyError):
        store.load(key)
    with pytest.raises(KeyError):
        store.delete(key)


def test_a_missing_certificate_file_is_not_found_not_a_500(
    app: Any, client: Any, env: SimpleNamespace
) -> None:
    from labshare.orders.storage import certificate_store
    from tests.factories import completed_order

    order = completed_order(env)
    db.session.commit()
    item_obj = order.items[0]
    certificate_store().delete(item_obj.certificate_key)
    r = client.get(f"{BASE}/{order.id}/items/{item_obj.id}/certificate", headers=bearer(env.sme))
    assert r.status_code == 404
    sme = signed_in(app, env.sme)
    assert sme.get(f"/orders/{order.id}/items/{item_obj.id}/certificate").status_code == 404


def test_the_new_messages_in_chinese(client: Any, env: SimpleNamespace) -> None:
    env.sme.locale = "zh_CN"
    env.staff.locale = "zh_CN"
    db.session.commit()
    r = create(client, env, notes="a\x00")
    assert error_of(r)["message"] == "不允许使用控制字符。"
    env.offering.fee = Decimal("1000000000.00")
    db.session.commit()
    oid = create(client, env, items=[item(env.offering, quantity=10_000)]).get_json()["id"]
    r = post(client, env.staff, f"/{oid}/accept", json={"promised_date": "2030-01-20"})
    assert error_of(r)["message"].startswith("订单费用合计超过")
