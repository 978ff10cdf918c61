"""A NUL character in any query parameter or JSON string of the API is refused with
a 422 naming the field, never sent to the database (PostgreSQL refuses it in text:
a server error). Every documented operation, its string parameters and body members."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from labshare.models import Role
from tests.helpers import bearer, error_of, served_openapi


def _string_params(operation: dict[str, Any]) -> list[str]:
    names = []
    for p in operation.get("parameters", []):
        if p.get("in") != "query":
            continue
        schema = p.get("schema", {})
        kinds = {schema.get("type")} | {o.get("type") for o in schema.get("anyOf", [])}
        if "string" in kinds and "enum" not in schema and "format" not in schema:
            names.append(p["name"])
    return names


def _operations(doc: dict[str, Any], method: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, ops[method])
        for path, ops in doc["paths"].items()
        if method in ops and "{" not in path
    ]


@pytest.mark.parametrize("role", [Role.SME, Role.ADMIN])
def test_a_nul_in_any_query_parameter_is_a_422_naming_it(
    app: Flask, client: Any, db: Any, make_user: Any, role: Role
) -> None:
    headers = bearer(make_user(role))
    doc = served_openapi(client)
    tried = 0
    for path, operation in _operations(doc, "get"):
        for name in _string_params(operation):
            url = "/api/v1" + path if not path.startswith("/api/") else path
            r = client.get(url, query_string={name: "a\x00b"}, headers=headers)
            assert r.status_code < 500, (url, name, r.get_data(as_text=True)[:300])
            if r.status_code == 422:  # on it, or on a required one not sent
                required = {p["name"] for p in operation.get("parameters", []) if p.get("required")}
                assert error_of(r)["field"] in {name} | required, (url, name)
            tried += 1
    assert tried >= 10  # the walk found the operations


def test_the_search_refuses_a_nul_in_its_words(client: Any, db: Any) -> None:
    r = client.get("/api/v1/resources", query_string={"q": "压力\x00"})
    assert r.status_code == 422 and error_of(r)["field"] == "q"


def test_a_nul_in_a_query_parameter_is_refused_before_any_handler(
    client: Any, db: Any, make_user: Any
) -> None:
    """The one the fuzzer found: an institute code with a NUL on the service catalogue."""
    headers = bearer(make_user(Role.SME))
    r = client.get(
        "/api/v1/service-offerings", query_string={"institute": "N\x00IM"}, headers=headers
    )
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
    assert error_of(r)["field"] == "institute"
    assert "NUL" in error_of(r)["message"]
