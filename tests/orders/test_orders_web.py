"""The order pages: an SME orders through the form, staff work through the queue
and the order page, the certificate is downloaded and verified; labels; phone width
content in both languages; errors name the field on the page."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select

from labshare.extensions import db
from labshare.models import OrderStatus, ServiceOffering, ServiceOrder, ServiceOrderItem
from tests.factories import PNG, make_pdf
from tests.helpers import signed_in


def _form(env: SimpleNamespace, **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "institute_id": env.institute.id,
        "delivery": "drop_off",
        "items-0-offering_id": env.offering.id,
        "items-0-name": "数字压力计",
        "items-0-serial_number": "P-77",
        "items-0-quantity": "1",
        "items-1-offering_id": env.testing.id,
        "items-1-name": "镀层样品",
        "items-1-quantity": "3",
        "items-2-offering_id": "",
        "items-2-name": "",
        "items-2-quantity": "",
    }
    data.update(kw)
    return data


def test_sme_and_staff_pages_through_the_whole_flow(app: Any, env: SimpleNamespace) -> None:
    sme = signed_in(app, env.sme)
    page = sme.get("/orders/new")
    assert page.status_code == 200 and "items-0-name" in page.get_data(as_text=True)
    r = sme.post("/orders/new", data=_form(env))
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    order = db.session.scalars(select(ServiceOrder)).one()
    assert [i.name for i in order.items] == ["数字压力计", "镀层样品"]

    staff = signed_in(app, env.staff)
    queue = staff.get("/orders").get_data(as_text=True)
    assert f"#{order.id}" in queue
    r = staff.post(f"/orders/{order.id}/accept", data={"promised_date": "2030-01-15"})
    assert r.status_code == 302
    r = staff.post(f"/orders/{order.id}/receive", data={f"condition-{order.items[0].id}": "完好"})
    assert r.status_code == 302
    assert staff.post(f"/orders/{order.id}/start").status_code == 302
    for n, item in enumerate(order.items):
        r = staff.post(
            f"/orders/{order.id}/items/{item.id}/complete",
            data={
                "result": "conforming",
                "certificate_number": f"WEB-{n}",
                "file": (io.BytesIO(make_pdf()), "c.pdf"),
            },
            content_type="multipart/form-data",
        )
        assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    db.session.expire_all()
    assert db.session.get(ServiceOrder, order.id).status == OrderStatus.COMPLETED

    detail = sme.get(f"/orders/{order.id}").get_data(as_text=True)
    code = re.search(r'class="verification-code">([A-Z0-9]+)<', detail)
    assert code is not None
    pdf = sme.get(f"/orders/{order.id}/items/{order.items[0].id}/certificate")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    answer = app.test_client().post("/verify", data={"number": "WEB-0", "code": code.group(1)})
    assert "Genuine." in answer.get_data(as_text=True)
    wrong = app.test_client().post("/verify", data={"number": "NOPE", "code": "X"})
    assert "Not confirmed." in wrong.get_data(as_text=True)

    labels = sme.get(f"/orders/{order.id}/labels").get_data(as_text=True)
    assert labels.count("<svg") == 2
    again = sme.get(f"/orders/new?again={order.id}").get_data(as_text=True)
    assert 'value="P-77"' in again
    assert staff.post(f"/orders/{order.id}/collect").status_code == 302


def test_form_errors_name_the_field_and_write_nothing(app: Any, env: SimpleNamespace) -> None:
    sme = signed_in(app, env.sme)
    r = sme.post("/orders/new", data=_form(env, **{"items-1-quantity": "-2"}))
    assert r.status_code == 422
    assert 'data-field="items.1.quantity"' in r.get_data(as_text=True)
    r = sme.post(
        "/orders/new",
        data={"institute_id": env.institute.id, "delivery": "courier", "items-0-name": ""},
    )
    assert r.status_code == 422 and 'data-field="items"' in r.get_data(as_text=True)
    assert db.session.scalar(select(func.count(ServiceOrder.id))) == 0


def test_upload_errors_on_the_page(app: Any, env: SimpleNamespace) -> None:
    sme = signed_in(app, env.sme)
    sme.post("/orders/new", data=_form(env))
    order = db.session.scalars(select(ServiceOrder)).one()
    staff = signed_in(app, env.staff)
    staff.post(f"/orders/{order.id}/accept", data={"promised_date": "2030-01-15"})
    staff.post(f"/orders/{order.id}/receive")
    staff.post(f"/orders/{order.id}/start")
    url = f"/orders/{order.id}/items/{order.items[0].id}/complete"
    for payload, status in (
        (PNG, 422),
        (b"%PDF-1.4\n" + b"0" * (50 * 1024 * 1024), 413),
    ):
        r = staff.post(
            url,
            data={
                "result": "conforming",
                "certificate_number": "N-1",
                "file": (io.BytesIO(payload), "c.pdf"),
            },
            content_type="multipart/form-data",
        )
        assert r.status_code == status
        assert 'data-field="file"' in r.get_data(as_text=True)
    # a file just over the app's 1 MB request limit but within the certificate limit passes
    big = make_pdf("x" * (2 * 1024 * 1024))
    r = staff.post(
        url,
        data={
            "result": "conforming",
            "certificate_number": "N-2",
            "file": (io.BytesIO(big), "c.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert r.status_code == 302
    assert (
        db.session.scalar(
            select(ServiceOrderItem.certificate_number).where(
                ServiceOrderItem.id == order.items[0].id
            )
        )
        == "N-2"
    )


def test_pages_are_tenant_scoped(app: Any, env: SimpleNamespace) -> None:
    sme = signed_in(app, env.sme)
    sme.post("/orders/new", data=_form(env))
    order = db.session.scalars(select(ServiceOrder)).one()
    for user in (env.other_sme, env.other_staff):
        client = signed_in(app, user)
        for url in (
            f"/orders/{order.id}",
            f"/orders/{order.id}/labels",
            f"/orders/new?again={order.id}",
        ):
            assert client.get(url).status_code in (403, 404), url
        assert (
            client.post(
                f"/orders/{order.id}/accept", data={"promised_date": "2030-01-15"}
            ).status_code
            == 404
        )
    staff = signed_in(app, env.staff)
    assert staff.post(f"/orders/{order.id}/cancel").status_code == 403
    assert (
        sme.post(f"/orders/{order.id}/accept", data={"promised_date": "2030-01-15"}).status_code
        == 403
    )
    assert staff.get("/orders/new").status_code == 403


def test_pages_in_chinese(app: Any, env: SimpleNamespace) -> None:
    env.sme.locale = "zh_CN"
    db.session.commit()
    sme = signed_in(app, env.sme)
    sme.post("/orders/new", data=_form(env))
    order = db.session.scalars(select(ServiceOrder)).one()
    page = sme.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "送检订单" in page and "已提交" in page
    assert 'name="viewport"' in page


def test_catalogue_of_services_and_staff_manage_theirs(app: Any, env: SimpleNamespace) -> None:
    public = app.test_client().get("/orders/services").get_data(as_text=True)
    assert "Pressure gauge calibration" in public and "about 7 days" in public
    assert "SME waiver 50%" in public
    page = app.test_client().get("/orders/services?field=thermal").get_data(as_text=True)
    assert "Pressure gauge calibration" not in page
    sme = signed_in(app, env.sme)
    new = sme.get(f"/orders/new?offering={env.testing.id}").get_data(as_text=True)
    assert re.search(rf'<option value="{env.testing.id}"[^>]*selected', new)

    staff = signed_in(app, env.staff)
    r = staff.post(
        "/orders/offerings",
        data={"field": "thermal", "service_type": "calibration", "name": "", "fee": "10"},
    )
    assert r.status_code == 422 and 'data-field="name"' in r.get_data(as_text=True)
    for bad, field in (
        ({"fee": "-1"}, "fee"),
        ({"fee_waiver_percent": "150"}, "fee_waiver_percent"),
    ):
        data = {
            "field": "thermal",
            "service_type": "calibration",
            "name": "温度计校准",
            "turnaround_days": "5",
            "fee_waiver_percent": "20",
            "fee": "10",
        }
        data.update(bad)
        r = staff.post("/orders/offerings", data=data)
        assert r.status_code == 422 and f'data-field="{field}"' in r.get_data(as_text=True)
    r = staff.post(
        "/orders/offerings",
        data={
            "field": "thermal",
            "service_type": "calibration",
            "name": "温度计校准",
            "turnaround_days": "5",
            "fee": "120",
            "fee_waiver_percent": "20",
        },
    )
    assert r.status_code == 302
    added = db.session.scalar(select(ServiceOffering).where(ServiceOffering.name == "温度计校准"))
    assert added is not None and added.institute_id == env.institute.id
    assert staff.post(f"/orders/offerings/{added.id}/withdraw").status_code == 302
    db.session.refresh(added)
    assert added.active is False
    assert "温度计校准" not in app.test_client().get("/orders/services").get_data(as_text=True)
    # another institute's staff cannot touch it; SMEs cannot manage services
    assert (
        signed_in(app, env.other_staff).post(f"/orders/offerings/{added.id}/activate").status_code
        == 404
    )
    assert sme.get("/orders/offerings").status_code == 403
