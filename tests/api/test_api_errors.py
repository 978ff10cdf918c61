"""Every error under /api is JSON in API.md's shape, never an HTML page."""

from __future__ import annotations

from typing import Any

import pytest

from labshare.models import Role
from tests.helpers import bearer, error_of


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/v1/nothing-here", 404, "not_found"),
        ("get", "/api/v1/resources/12345678", 404, "not_found"),
        ("delete", "/api/v1/resources", 405, "method_not_allowed"),
        ("put", "/api/v1/bookings/1/approve", 405, "method_not_allowed"),
        ("get", "/api/v1/me", 401, "unauthorized"),
        ("get", "/api/v1/bookings", 401, "unauthorized"),
        ("post", "/api/v1/bookings", 401, "unauthorized"),
    ],
)
def test_http_errors_are_json(client: Any, method: str, path: str, status: int, code: str) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert error_of(response)["code"] == code


def test_body_over_one_megabyte_is_413_json(db: Any, client: Any, make_user: Any) -> None:
    headers = bearer(make_user(Role.SME))
    response = client.post(
        "/api/v1/bookings",
        data=b'{"purpose": "' + b"x" * (1024 * 1024 + 10) + b'"}',
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_unauthenticated_comes_before_validation(client: Any) -> None:
    response = client.post("/api/v1/bookings", data="{bad", content_type="application/json")
    assert response.status_code == 401
