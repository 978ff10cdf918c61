"""Helpers of the service-order tests: the API calls they repeat and an item's
payload (the orders' factories are in tests/factories.py)."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from tests.factories import make_pdf
from tests.helpers import bearer

BASE = "/api/v1/service-orders"


def create(client: Any, env: SimpleNamespace, **overrides: Any) -> Any:
    payload: dict[str, Any] = {
        "institute_id": env.institute.id,
        "delivery": "courier",
        "tracking_number": "SF1234567890",
        "items": [item(env.offering), item(env.testing, name="涂层样品", quantity=1)],
    }
    payload.update(overrides)
    return client.post(BASE, json=payload, headers=bearer(overrides.pop("_user", env.sme)))


def post(client: Any, user: Any, path: str, **kw: Any) -> Any:
    return client.post(f"{BASE}{path}", headers=bearer(user), **kw)


def complete(client: Any, user: Any, order_id: int, item_id: int, **kw: Any) -> Any:
    data = {
        "result": kw.pop("result", "calibrated"),
        "certificate_number": kw.pop("number", f"JZ-2030-{item_id:04d}"),
        "file": (io.BytesIO(kw.pop("pdf", make_pdf())), kw.pop("filename", "cert.pdf")),
    }
    data.update(kw)
    return post(
        client,
        user,
        f"/{order_id}/items/{item_id}/complete",
        data=data,
        content_type="multipart/form-data",
    )


def item(offering: Any, **kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "offering_id": offering.id,
        "name": "压力表",
        "model": "Y-100",
        "serial_number": "SN-001",
        "measuring_range": "0-1.6 MPa",
        "accuracy_class": "1.6",
        "quantity": 2,
    }
    values.update(kw)
    return values
