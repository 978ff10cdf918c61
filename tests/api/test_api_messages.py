"""A refused value's message is in the user's language and names the field, for
each kind of check a query string or a JSON body meets (labshare/api/messages.py):
pydantic's own texts are English only."""

from __future__ import annotations

import re
from typing import Any

import pytest

from labshare.api.messages import message

CHINESE = re.compile(r"[\u4e00-\u9fff]")
SEARCH = "/api/v1/resources"


def refusal(client: Any, language: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    headers = {"Accept-Language": language}
    if "json" in kw:
        response = client.post("/api/v1/auth/token", headers=headers, **kw)
    else:
        response = client.get(SEARCH, headers=headers, **kw)
    return response.status_code, response.get_json()["error"]


@pytest.mark.parametrize(
    "query, field, english, limit",
    [
        ({"q": "x" * 101}, "q", "may be at most 100 characters", "100"),
        ({"per_page": "0"}, "per_page", "must be at least 1", "1"),
        ({"per_page": "201"}, "per_page", "may be at most 200", "200"),
        ({"page": "x"}, "page", "must be a whole number", None),
        ({"page": "1.5"}, "page", "must be a whole number", None),
        ({"measurand": "pressure", "value": "abc"}, "value", "must be a number", None),
        ({"measurand": "pressure", "value": "inf"}, "value", "must be a number", None),
        ({"kind": "robot"}, "kind", "must be one of 'lab', 'instrument'", None),
        ({"facets": "maybe"}, "facets", "must be true or false", None),
        ({"duration": "0"}, "duration", "must be at least 1", "1"),
    ],
)
def test_a_refused_query_value_is_explained_in_the_user_s_language(
    db: Any, client: Any, query: dict[str, str], field: str, english: str, limit: str | None
) -> None:
    status, en = refusal(client, "en", query_string=query)
    assert status == 422
    assert en["code"] == "validation_error"
    assert en["field"] == field
    assert en["message"] == f"{field} {english}."
    status, zh = refusal(client, "zh", query_string=query)
    assert status == 422
    assert zh["field"] == field
    assert zh["message"].startswith(field)
    assert CHINESE.search(zh["message"]), zh["message"]
    assert "should" not in zh["message"] and "Input" not in zh["message"]
    if limit is not None:
        assert limit in zh["message"]


@pytest.mark.parametrize(
    "body, status, field, english",
    [
        ({"email": "ab", "password": "x"}, 422, "email", "must be at least 3 characters"),
        ({"email": 5, "password": "x"}, 400, "email", "must be text"),
    ],
)
def test_a_refused_body_member_is_explained_in_the_user_s_language(
    db: Any, client: Any, body: dict[str, Any], status: int, field: str, english: str
) -> None:
    got, en = refusal(client, "en", json=body)
    assert got == status
    assert (en["field"], en["message"]) == (field, f"{field} {english}.")
    got, zh = refusal(client, "zh", json=body)
    assert got == status
    assert zh["field"] == field
    assert CHINESE.search(zh["message"]), zh["message"]


def test_other_kinds_keep_pydantic_s_text_after_the_field(app: Any) -> None:
    assert message("some_new_kind", "x", None, "Input is odd") == "x: Input is odd"
    # without a field (the body itself), a kind's own message would name nothing
    assert message("string_too_long", None, {"max_length": 3}, "Too long") == (
        "the request body: Too long"
    )


def test_limits_are_written_as_people_write_them(app: Any) -> None:
    assert message("greater_than_equal", "value", {"ge": 1.0}, "") == "value must be at least 1."
    assert message("less_than", "value", {"lt": 2.5}, "") == "value must be less than 2.5."
    assert message("literal_error", "mode", {"expected": "'a' or 'b'"}, "") == (
        "mode must be one of 'a', 'b'."
    )
