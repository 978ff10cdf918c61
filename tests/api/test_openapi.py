"""The OpenAPI document and the routes cannot drift: every /api/v1 route is in the
document and every documented operation is a route, and the document is valid."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Blueprint, Flask
from openapi_spec_validator import validate

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _routes(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) & METHODS:
            found.add((method.lower(), path))
    return found


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, operations in document["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    }


def test_every_route_is_documented_and_every_operation_exists(app: Flask, client: Any) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.is_json
    document = response.get_json()
    routes = _routes(app)
    documented = _documented(document)
    assert routes - documented == set(), "routes missing from openapi.json"
    assert documented - routes == set(), "operations in openapi.json without a route"
    # API.md's endpoints are all there (the usage report belongs to a later issue).
    for method, path in [
        ("get", "/api/v1/me"),
        ("post", "/api/v1/auth/token"),
        ("get", "/api/v1/resources"),
        ("get", "/api/v1/resources/{resource_id}"),
        ("get", "/api/v1/resources/{resource_id}/availability"),
        ("get", "/api/v1/bookings"),
        ("post", "/api/v1/bookings"),
        ("get", "/api/v1/bookings/{booking_id}"),
        ("post", "/api/v1/bookings/{booking_id}/approve"),
        ("post", "/api/v1/bookings/{booking_id}/reject"),
        ("post", "/api/v1/bookings/{booking_id}/cancel"),
        ("post", "/api/v1/bookings/{booking_id}/usage"),
        ("get", "/api/v1/stats/campaign"),
        ("get", "/api/v1/openapi.json"),
    ]:
        assert (method, path) in documented
    assert "/calendar/{feed_token}.ics" in document["paths"]


def test_document_is_valid_openapi(client: Any) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    validate(document)
    assert document["openapi"].startswith("3.")


def test_document_matches_validation(client: Any) -> None:
    """The parameters and bodies come from the same models that validate requests."""
    document = client.get("/api/v1/openapi.json").get_json()
    search = document["paths"]["/api/v1/resources"]["get"]
    params = {p["name"]: p for p in search["parameters"]}
    assert {
        "q",
        "kind",
        "field",
        "province",
        "institute",
        "measurand",
        "value",
        "unit",
        "available_from",
        "available_to",
        "page",
        "per_page",
    } <= set(params)
    assert params["per_page"]["schema"]["maximum"] == 200
    availability = document["paths"]["/api/v1/resources/{resource_id}/availability"]["get"]
    assert {p["name"]: p["required"] for p in availability["parameters"]} == {
        "resource_id": True,
        "from": True,
        "to": True,
    }
    create = document["paths"]["/api/v1/bookings"]["post"]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(body["required"]) == {"resource_id", "start", "end", "purpose"}
    assert body["properties"]["start"]["format"] == "date-time"
    assert "201" in create["responses"] and "409" in create["responses"]
    assert create["security"] == [{"bearerAuth": []}]
    assert search["security"] == [{}]


def test_openapi_needs_no_token(client: Any) -> None:
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_an_answer_is_a_page_or_a_list_not_both() -> None:
    from labshare.api.registry import endpoint

    with pytest.raises(ValueError, match="a page or a list"):
        endpoint(
            Blueprint("x", __name__), "/x", "GET", summary="x", tag="x", paginated=True, listed=True
        )
