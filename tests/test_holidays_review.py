"""The holiday calendar, reviewed: bad input that reached the database, and a year the
calendar does not cover. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.extensions import db
from labshare.models import CalendarDay, Role
from tests import factories
from tests.helpers import bearer, error_of


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "国\x00庆"}, "name"),  # PostgreSQL refuses a NUL in text: was a 500
        ({"name_en": "National\x00Day"}, "name_en"),
        ({"region": "320000\n"}, "region"),  # ``$`` matched before the newline: was a 500
        ({"date": "20301001"}, "date"),  # fromisoformat's basic form is no YYYY-MM-DD
        ({"date": "2030-W40-2"}, "date"),  # nor an ISO week date
    ],
)
def test_bad_text_is_named_and_writes_nothing(
    client: Any, app: Any, change: dict[str, Any], field: str
) -> None:
    admin = factories.make_user(Role.ADMIN, locale="zh_CN")
    db.session.commit()
    body = {"date": "2030-10-01", "kind": "holiday", "name": "国庆节", **change}
    response = client.post("/api/v1/holidays", json=body, headers=bearer(admin))
    assert response.status_code == 422, response.get_json()
    error = error_of(response)
    assert error["field"] == field
    assert not error["message"].isascii()
    assert db.session.scalar(select(func.count(CalendarDay.id))) == 0
