"""Service orders over the API: the whole life cycle, each transition's window and
actor, tenancy on every endpoint and the certificate download, bad input, and the
public verification."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.extensions import db
from labshare.models import (
    AuditLog,
    Notification,
    OrderStatus,
    ServiceOrder,
    ServiceOrderItem,
)
from labshare.orders.lifecycle import TRANSITIONS
from tests.factories import PNG, make_pdf
from tests.helpers import bearer, check_schema, error_of, served_openapi
from tests.orders.helpers import BASE, complete, create, item, post


def advance(client: Any, env: SimpleNamespace, to: OrderStatus) -> dict[str, Any]:
    """An order moved through the API up to status ``to``."""
    path = {
        OrderStatus.SUBMITTED: [],
        OrderStatus.REJECTED: [("reject", {"reason": "不具备条件"})],
        OrderStatus.CANCELLED: [("cancel", None)],
        OrderStatus.ACCEPTED: [("accept", {"promised_date": "2030-01-20"})],
        OrderStatus.RECEIVED: [("accept", {"promised_date": "2030-01-20"}), ("receive", {})],
        OrderStatus.IN_PROGRESS: [
            ("accept", {"promised_date": "2030-01-20"}),
            ("receive", {}),
            ("start", None),
        ],
    }
    steps = path.get(to)
    if steps is None:
        order = advance(client, env, OrderStatus.IN_PROGRESS)
        for it in order["items"]:
            assert complete(client, env.staff, order["id"], it["id"]).status_code == 200
        if to is OrderStatus.RETURNED:
            post(client, env.staff, f"/{order['id']}/return")
        if to is OrderStatus.COLLECTED:
            post(client, env.staff, f"/{order['id']}/collect")
        return dict(client.get(f"{BASE}/{order['id']}", headers=bearer(env.sme)).get_json())
    oid = create(client, env).get_json()["id"]
    for action, body in steps:
        actor = env.sme if action == "cancel" else env.staff
        r = post(client, actor, f"/{oid}/{action}", json=body or {})
        assert r.status_code == 200, r.get_json()
    return dict(client.get(f"{BASE}/{oid}", headers=bearer(env.sme)).get_json())


def test_the_whole_life_cycle(client: Any, env: SimpleNamespace, app: Any) -> None:
    r = create(client, env)
    assert r.status_code == 201, r.get_json()
    order = r.get_json()
    check_schema(client, "OrderOut", order)
    assert order["status"] == "submitted" and len(order["items"]) == 2
    assert order["actions"] == ["cancel"]
    oid = order["id"]
    # the institute's staff hear of the new order, the company gets its copy
    kinds = {(n.user_id, n.kind) for n in db.session.scalars(select(Notification))}
    assert (env.staff.id, "order_submitted") in kinds and (env.sme.id, "order_submitted") in kinds

    r = post(client, env.staff, f"/{oid}/accept", json={"promised_date": "2030-01-20"})
    assert r.status_code == 200, r.get_json()
    order = r.get_json()
    # catalogue fee x quantity, the SME waiver (50 %) applied
    assert [i["fee"] for i in order["items"]] == [400.0, 80.0]
    assert [i["fee_waived"] for i in order["items"]] == [200.0, 40.0]
    assert order["fee"] == 480.0 and order["fee_waived"] == 240.0
    first, second = (i["id"] for i in order["items"])

    r = post(
        client,
        env.staff,
        f"/{oid}/receive",
        json={"conditions": [{"item_id": first, "condition": "表盘有划痕"}]},
    )
    assert r.get_json()["status"] == "received"
    assert r.get_json()["items"][0]["condition_note"] == "表盘有划痕"
    assert post(client, env.staff, f"/{oid}/start").get_json()["status"] == "in_progress"

    r = complete(client, env.staff, oid, first, number="JZ-2030-0001", interval_months="12")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "in_progress"
    r = complete(client, env.staff, oid, second, result="conforming", number="JC-2030-0002")
    order = r.get_json()
    assert order["status"] == "completed"
    assert order["items"][0]["due_date"] == "2031-01-01"  # calibration, 12 months
    assert order["items"][1]["due_date"] is None  # testing carries no interval

    r = client.get(f"{BASE}/{oid}/items/{first}/certificate", headers=bearer(env.colleague))
    assert r.status_code == 200 and r.data == make_pdf()
    assert r.headers["Content-Type"] == "application/pdf"
    assert 'filename="JZ-2030-0001.pdf"' in r.headers["Content-Disposition"]

    code = order["items"][0]["verification_code"]
    r = client.get(
        "/api/v1/certificates/verify", query_string={"number": "JZ-2030-0001", "code": code}
    )
    assert r.get_json()["genuine"] is True
    assert r.get_json()["issued_by"] == env.institute.name
    assert r.get_json()["issued_at"] == "2030-01-01"

    assert post(client, env.staff, f"/{oid}/return").get_json()["status"] == "returned"
    actions = db.session.scalars(
        select(AuditLog.action).where(AuditLog.object_type == "service_order").order_by(AuditLog.id)
    ).all()
    assert actions == [
        "service_order.create",
        "service_order.accept",
        "service_order.receive",
        "service_order.start",
        "service_order.complete_item",
        "service_order.complete_item",
        "service_order.complete",
        "service_order.return",
    ]
    events = {
        n.kind
        for n in db.session.scalars(select(Notification).where(Notification.user_id == env.sme.id))
    }
    assert {"order_accepted", "order_received", "order_completed", "order_returned"} <= events


def test_company_cancels_before_receipt_not_after(client: Any, env: SimpleNamespace) -> None:
    order = advance(client, env, OrderStatus.ACCEPTED)
    r = post(client, env.colleague, f"/{order['id']}/cancel", json={"reason": "不需要了"})
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled"
    order = advance(client, env, OrderStatus.RECEIVED)
    r = post(client, env.sme, f"/{order['id']}/cancel", json={})
    assert r.status_code == 409 and error_of(r)["code"] == "invalid_state"
    assert "received" in error_of(r)["message"]


def test_reject_needs_a_reason(client: Any, env: SimpleNamespace) -> None:
    order = create(client, env).get_json()
    r = post(client, env.staff, f"/{order['id']}/reject", json={"reason": " "})
    assert r.status_code == 422 and error_of(r)["field"] == "reason"
    assert db.session.get(ServiceOrder, order["id"]).status == OrderStatus.SUBMITTED


ACTION_BODIES: dict[str, Any] = {
    "accept": {"promised_date": "2030-01-20"},
    "reject": {"reason": "x"},
    "cancel": {},
    "receive": {},
    "start": None,
    "return": None,
    "collect": None,
}
STATUSES = [
    OrderStatus.SUBMITTED,
    OrderStatus.ACCEPTED,
    OrderStatus.RECEIVED,
    OrderStatus.IN_PROGRESS,
    OrderStatus.COMPLETED,
    OrderStatus.RETURNED,
    OrderStatus.REJECTED,
    OrderStatus.CANCELLED,
]


@pytest.mark.parametrize("status", STATUSES, ids=str)
def test_each_transition_only_from_its_window(
    client: Any, env: SimpleNamespace, status: OrderStatus
) -> None:
    order = advance(client, env, status)
    assert order["status"] == status
    for action, body in ACTION_BODIES.items():
        actor = env.sme if TRANSITIONS[action].actor == "company" else env.staff
        allowed = status in TRANSITIONS[action].sources
        seen = client.get(f"{BASE}/{order['id']}", headers=bearer(actor)).get_json()
        if allowed:
            assert action in seen["actions"]
            continue
        assert action not in seen["actions"]
        r = post(client, actor, f"/{order['id']}/{action}", json=body or {})
        assert r.status_code == 409, (action, r.get_json())
        assert error_of(r)["code"] == "invalid_state"
        assert db.session.get(ServiceOrder, order["id"]).status == status
    if status is not OrderStatus.IN_PROGRESS:
        # an item is completed only while its order is in progress
        r = complete(client, env.staff, order["id"], order["items"][0]["id"], number="W-1")
        assert r.status_code == 409 and error_of(r)["code"] == "invalid_state"


@pytest.mark.parametrize(
    ("action", "who", "status"),
    [
        ("accept", "sme", 403),
        ("reject", "sme", 403),
        ("receive", "sme", 403),
        ("start", "sme", 403),
        ("cancel", "staff", 403),
        ("accept", "admin", 403),
        ("cancel", "admin", 403),
        ("accept", "other_staff", 404),
        ("cancel", "other_sme", 404),
        ("reject", "other_staff", 404),
    ],
)
def test_wrong_actor(client: Any, env: SimpleNamespace, action: str, who: str, status: int) -> None:
    order = create(client, env).get_json()
    body = ACTION_BODIES[action] or {}
    r = post(client, getattr(env, who), f"/{order['id']}/{action}", json=body)
    assert r.status_code == status, r.get_json()
    assert db.session.get(ServiceOrder, order["id"]).status == OrderStatus.SUBMITTED


def test_tenancy_on_every_read_and_the_file(client: Any, env: SimpleNamespace) -> None:
    order = advance(client, env, OrderStatus.COMPLETED)
    oid, iid = order["id"], order["items"][0]["id"]
    reads = [f"{BASE}/{oid}", f"{BASE}/{oid}/items/{iid}/certificate"]
    for user in (env.other_sme, env.other_staff):
        for url in reads:
            assert client.get(url, headers=bearer(user)).status_code == 404, (user.role, url)
        listed = client.get(BASE, headers=bearer(user)).get_json()
        assert listed["total"] == 0
        r = complete(client, user, oid, iid)
        assert r.status_code == 404
    for user in (env.sme, env.colleague, env.staff, env.admin):
        assert client.get(reads[1], headers=bearer(user)).status_code == 200
        listed = client.get(BASE, headers=bearer(user)).get_json()
        assert listed["total"] == 1, (user.role, [o["id"] for o in listed["items"]])
    assert client.get(reads[1]).status_code == 401
    # an SME may not complete items
    r = complete(client, env.sme, oid, iid)
    assert r.status_code == 403


def _nothing_written() -> None:
    assert db.session.scalar(select(func.count(ServiceOrder.id))) == 0
    assert db.session.scalar(select(func.count(ServiceOrderItem.id))) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"items": []}, "items"),
        ({"items": "__1000__"}, "items"),
        ({"items": "__negative__"}, "items.1.quantity"),
        ({"items": "__foreign__"}, "items.0.offering_id"),
        ({"items": "__unknown__"}, "items.0.offering_id"),
        ({"items": "__noname__"}, "items.0.name"),
        ({"delivery": "pigeon"}, "delivery"),
        ({"institute_id": 999999}, "institute_id"),
    ],
)
def test_bad_orders_name_the_field_and_write_nothing(
    client: Any, env: SimpleNamespace, overrides: dict[str, Any], field: str
) -> None:
    special = {
        "__1000__": [item(env.offering)] * 1000,
        "__negative__": [item(env.offering), item(env.offering, quantity=-3)],
        "__foreign__": [item(env.foreign)],
        "__unknown__": [item(env.offering, offering_id=987654)],
        "__noname__": [item(env.offering, name="  ")],
    }
    if isinstance(overrides.get("items"), str):
        overrides = {"items": special[overrides["items"]]}
    r = create(client, env, **overrides)
    assert r.status_code == 422, r.get_json()
    assert error_of(r)["code"] == "validation_error" and error_of(r)["field"] == field
    _nothing_written()


def test_bad_order_message_in_chinese(client: Any, env: SimpleNamespace) -> None:
    r = client.post(
        BASE,
        json={"institute_id": env.institute.id, "delivery": "courier", "items": []},
        headers={**bearer(env.sme), "Accept-Language": "zh-CN"},
    )
    env.sme.locale = "zh_CN"
    db.session.commit()
    r = client.post(
        BASE,
        json={"institute_id": env.institute.id, "delivery": "courier", "items": []},
        headers=bearer(env.sme),
    )
    assert error_of(r)["message"] == "订单至少需要一个物品。"


def _store_files(app: Any) -> list[Path]:
    root = Path(app.config["INSTANCE_DIR"]) / "certificates"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize(
    ("kw", "status", "field"),
    [
        ({"pdf": PNG, "filename": "cert.pdf"}, 422, "file"),
        ({"pdf": b"%PDF-1.4\nnot really a pdf\n", "filename": "cert.pdf"}, 422, "file"),
        ({"pdf": make_pdf(), "filename": "../../etc/passwd.pdf"}, 422, "file"),
        ({"pdf": make_pdf(), "filename": "..\\evil.pdf"}, 422, "file"),
        ({"pdf": b"%PDF-1.4\n" + b"0" * (50 * 1024 * 1024)}, 413, "file"),
        ({"pdf": b"", "filename": ""}, 422, "file"),
        ({"result": "great"}, 422, "result"),
        ({"number": ""}, 422, "certificate_number"),
        ({"interval_months": "-1"}, 422, "interval_months"),
    ],
    ids=[
        "png",
        "fake-pdf",
        "dotdot",
        "backslash",
        "50MB",
        "no-file",
        "result",
        "number",
        "interval",
    ],
)
def test_bad_certificates_refused_nothing_written(
    client: Any, env: SimpleNamespace, app: Any, kw: dict[str, Any], status: int, field: str
) -> None:
    order = advance(client, env, OrderStatus.IN_PROGRESS)
    before = _store_files(app)
    r = complete(client, env.staff, order["id"], order["items"][0]["id"], **kw)
    assert r.status_code == status, r.get_json()
    assert error_of(r)["field"] == field
    assert error_of(r)["code"] == ("payload_too_large" if status == 413 else "validation_error")
    item_row = db.session.get(ServiceOrderItem, order["items"][0]["id"])
    db.session.refresh(item_row)
    assert item_row.completed_at is None and item_row.certificate_key is None
    assert _store_files(app) == before


def test_certificate_size_is_configurable(
    client: Any, env: SimpleNamespace, app: Any, monkeypatch: Any
) -> None:
    monkeypatch.setitem(app.config, "CERTIFICATE_MAX_BYTES", 500)
    order = advance(client, env, OrderStatus.IN_PROGRESS)
    r = complete(client, env.staff, order["id"], order["items"][0]["id"], pdf=make_pdf("x" * 600))
    assert r.status_code == 413 and error_of(r)["field"] == "file"


def test_a_file_name_never_becomes_the_stored_path(
    client: Any, env: SimpleNamespace, app: Any
) -> None:
    before = set(_store_files(app))
    order = advance(client, env, OrderStatus.COMPLETED)
    files = [f for f in _store_files(app) if f not in before]
    root = Path(app.config["INSTANCE_DIR"]) / "certificates"
    assert len(files) == 2
    for f in files:
        assert f.resolve().is_relative_to(root.resolve())
        assert f.name.endswith(".pdf") and len(f.stem) == 32
    assert order["status"] == "completed"


def test_certificate_number_is_unique(client: Any, env: SimpleNamespace) -> None:
    order = advance(client, env, OrderStatus.IN_PROGRESS)
    a, b = (i["id"] for i in order["items"])
    assert complete(client, env.staff, order["id"], a, number="SAME-1").status_code == 200
    r = complete(client, env.staff, order["id"], b, number="SAME-1")
    assert r.status_code == 422 and error_of(r)["field"] == "certificate_number"


def test_verification_gives_one_shape_for_unknown_and_wrong(
    client: Any, env: SimpleNamespace
) -> None:
    order = advance(client, env, OrderStatus.COMPLETED)
    number = order["items"][0]["certificate_number"]
    answers = [
        client.get("/api/v1/certificates/verify", query_string=q).get_json()
        for q in (
            {"number": "NO-SUCH-1", "code": "ABCDEFGHJK"},
            {"number": number, "code": "ABCDEFGHJK"},
        )
    ]
    for answer in answers:
        assert answer["genuine"] is False
        assert answer["issued_by"] is None and answer["issued_at"] is None
        assert set(answer) == {
            "genuine",
            "certificate_number",
            "issued_by",
            "issued_by_en",
            "issued_at",
            "result",
            "item",
        }
    r = client.get("/api/v1/certificates/verify", query_string={"number": "x"})
    assert r.status_code == 422 and error_of(r)["field"] == "code"


def test_accept_checks_its_quote(client: Any, env: SimpleNamespace) -> None:
    order = create(client, env).get_json()
    oid, first = order["id"], order["items"][0]["id"]
    cases = [
        ({}, "promised_date"),
        ({"promised_date": "2029-12-01"}, "promised_date"),
        ({"promised_date": "2030-01-20", "fees": [{"item_id": first, "fee": -1}]}, f"fees.{first}"),
        ({"promised_date": "2030-01-20", "fees": [{"item_id": 99999, "fee": 1}]}, "fees.99999"),
    ]
    for body, field in cases:
        r = post(client, env.staff, f"/{oid}/accept", json=body)
        assert r.status_code == 422 and error_of(r)["field"] == field, (body, r.get_json())
    assert db.session.get(ServiceOrder, oid).status == OrderStatus.SUBMITTED
    r = post(
        client,
        env.staff,
        f"/{oid}/accept",
        json={"promised_date": "2030-01-20", "fees": [{"item_id": first, "fee": 300}]},
    )
    assert r.get_json()["items"][0]["fee"] == 300.0
    assert r.get_json()["items"][0]["fee_waived"] == 150.0


def test_catalogue_and_openapi(client: Any, env: SimpleNamespace) -> None:
    r = client.get("/api/v1/service-offerings", query_string={"institute": env.institute.code})
    assert r.get_json()["total"] == 2
    doc = served_openapi(client)
    for path in (
        "/api/v1/service-orders",
        "/api/v1/service-orders/{order_id}/accept",
        "/api/v1/service-orders/{order_id}/items/{item_id}/certificate",
        "/api/v1/certificates/verify",
        "/api/v1/service-offerings",
    ):
        assert path in doc["paths"], path
    upload = doc["paths"]["/api/v1/service-orders/{order_id}/items/{item_id}/complete"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]


def test_verification_is_rate_limited_page_and_api(
    app: Any, env: SimpleNamespace, tmp_path: Any
) -> None:
    from config import TestingConfig
    from labshare import create_app
    from labshare.extensions import limiter

    limited = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        INSTANCE_DIR=str(tmp_path),
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_VERIFY="3 per day",
    )
    try:
        client = limited.test_client()
        query = {"number": "NO-SUCH-1", "code": "ABCDEFGHJK"}
        codes = [
            client.get("/api/v1/certificates/verify", query_string=query).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        r = client.get("/api/v1/certificates/verify", query_string=query)
        assert error_of(r)["code"] == "rate_limited"
        pages = [client.post("/verify", data=query).status_code for _ in range(4)]
        assert pages == [200, 200, 200, 429]
    finally:
        with limited.app_context():
            db.engine.dispose()
        limiter.init_app(app)
    assert not limiter.enabled


def test_staff_add_services_over_the_api(client: Any, env: SimpleNamespace) -> None:
    url = "/api/v1/service-offerings"
    body = {
        "field": "optical",
        "service_type": "calibration",
        "name": "照度计校准",
        "fee": 150,
        "fee_waiver_percent": 40,
        "interval_months": 12,
    }
    r = client.post(url, json=body, headers=bearer(env.staff))
    assert r.status_code == 201, r.get_json()
    check_schema(client, "OfferingOut", r.get_json())
    assert r.get_json()["institute"]["id"] == env.institute.id
    for bad, field in (
        ({"field": "magic"}, "field"),
        ({"fee": -5}, "fee"),
        ({"fee_waiver_percent": 101}, "fee_waiver_percent"),
    ):
        r = client.post(url, json={**body, **bad}, headers=bearer(env.staff))
        assert r.status_code == 422 and error_of(r)["field"] == field
    assert client.post(url, json=body, headers=bearer(env.sme)).status_code == 403
