"""Recurring bookings over the API and the web pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from labshare.models import Booking, BookingSeries, BookingStatus, Notification, Role
from labshare.timeutil import set_clock
from tests.helpers import NOW, bearer, check_schema, count_rows, error_of, served_openapi

RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "requires_approval": True,
    "max_active_per_company": 200,
    "cancel_deadline_hours": 0,
}
START = "2030-01-07T09:00:00+08:00"
END = "2030-01-07T11:00:00+08:00"


def body(resource_id: int, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource_id": resource_id,
        "start": START,
        "end": END,
        "purpose": "weekly calibration",
        "recurrence": {"freq": "weekly", "weekdays": [0, 2], "count": 4},
    }
    out.update(kw)
    return out


@pytest.fixture
def env(db: Any, make_instrument: Any, make_user: Any, make_booking: Any) -> Any:
    set_clock(lambda: NOW)
    inst = make_instrument(rules=dict(RULES))
    sme = make_user(Role.SME)
    staff = make_user(Role.STAFF, institute=inst.institute)
    db.session.commit()

    class Env:
        pass

    e = Env()
    e.inst, e.sme, e.staff = inst, sme, staff  # type: ignore[attr-defined]
    return e


def test_preview_lists_occurrences_and_writes_nothing(
    db: Any, client: Any, env: Any, make_booking: Any, make_user: Any
) -> None:
    make_booking(
        resource=env.inst,
        user=make_user(Role.SME),
        start=dt.datetime(2030, 1, 9, 1, tzinfo=dt.UTC),  # Wed 09:00 Shanghai
        end=dt.datetime(2030, 1, 9, 3, tzinfo=dt.UTC),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()
    before = count_rows(Booking)
    response = client.post(
        "/api/v1/series/preview", json=body(env.inst.id), headers=bearer(env.sme)
    )
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    check_schema(client, "PreviewOut", data)
    assert [o["start"] for o in data["occurrences"]] == [
        "2030-01-07T09:00:00+08:00",
        "2030-01-09T09:00:00+08:00",
        "2030-01-14T09:00:00+08:00",
        "2030-01-16T09:00:00+08:00",
    ]
    assert [o["ok"] for o in data["occurrences"]] == [True, False, True, True]
    assert data["occurrences"][1]["code"] == "conflict"
    assert count_rows(Booking) == before and count_rows(BookingSeries) == 0


def test_create_all_or_nothing_then_skip(
    db: Any, client: Any, env: Any, make_booking: Any, make_user: Any
) -> None:
    make_booking(
        resource=env.inst,
        user=make_user(Role.SME),
        start=dt.datetime(2030, 1, 14, 1, tzinfo=dt.UTC),  # the second Monday
        end=dt.datetime(2030, 1, 14, 3, tzinfo=dt.UTC),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()
    headers = bearer(env.sme)
    response = client.post("/api/v1/series", json=body(env.inst.id), headers=headers)
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict"
    assert [o["index"] for o in error["occurrences"]] == [2]
    assert count_rows(BookingSeries) == 0 and count_rows(Booking) == 1
    assert count_rows(Notification) == 0

    response = client.post(
        "/api/v1/series", json=body(env.inst.id, skip_conflicting=True), headers=headers
    )
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    check_schema(client, "SeriesOut", data)
    assert len(data["bookings"]) == 3
    assert all(b["series_id"] == data["id"] for b in data["bookings"])
    assert [o["ok"] for o in data["occurrences"]] == [True, True, False, True]
    assert data["recurrence"] == {
        "freq": "weekly",
        "interval": 1,
        "weekdays": [0, 2],
        "until": None,
        "count": 4,
    }
    # the booking endpoints show the series
    one = client.get(f"/api/v1/bookings/{data['bookings'][0]['id']}", headers=headers)
    assert one.get_json()["series_id"] == data["id"]
    check_schema(client, "BookingOut", one.get_json())
    # two messages (booker's copy, the staff member's request), not 3 x 2
    assert count_rows(Notification) == 2


def test_rule_violation_in_all_or_nothing_is_422_with_the_rule(
    db: Any, client: Any, env: Any
) -> None:
    response = client.post(
        "/api/v1/series",
        json=body(
            env.inst.id,
            recurrence={"freq": "daily", "count": 3},
            start=START.replace("09:00", "09:10"),
        ),
        headers=bearer(env.sme),
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "rule_violation" and error["rule"] == "granularity"
    assert len(error["occurrences"]) == 3
    assert count_rows(Booking) == 0


@pytest.mark.parametrize(
    ("recurrence", "field", "status"),
    [
        ({"freq": "yearly", "count": 2}, "recurrence.freq", 422),
        ({"freq": "daily", "count": 2, "until": "2030-02-01"}, "recurrence.count", 422),
        ({"freq": "daily"}, "recurrence.until", 422),
        ({"freq": "daily", "count": 101}, "recurrence.count", 422),
        ({"freq": "daily", "until": "2030-12-31"}, "recurrence.until", 422),
        ({"freq": "daily", "interval": 0, "count": 2}, "recurrence.interval", 422),
        ({"freq": "daily", "weekdays": [1], "count": 2}, "recurrence.weekdays", 422),
        ({"freq": "weekly", "weekdays": [9], "count": 2}, "recurrence.weekdays", 422),
        ({"freq": "daily", "until": "2030-02-31"}, "recurrence.until", 422),
        ({"freq": "daily", "count": "3"}, "recurrence.count", 400),
        ({"count": 3}, "recurrence.freq", 422),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/series", "/api/v1/series/preview"])
def test_bad_input_names_the_field_and_writes_nothing(
    db: Any, client: Any, env: Any, path: str, recurrence: dict[str, Any], field: str, status: int
) -> None:
    response = client.post(
        path, json=body(env.inst.id, recurrence=recurrence), headers=bearer(env.sme)
    )
    assert response.status_code == status, response.get_json()
    assert error_of(response)["field"] == field
    assert count_rows(Booking) == 0 and count_rows(BookingSeries) == 0


def test_missing_recurrence_and_naive_start(db: Any, client: Any, env: Any) -> None:
    headers = bearer(env.sme)
    no_rule = body(env.inst.id)
    del no_rule["recurrence"]
    response = client.post("/api/v1/series", json=no_rule, headers=headers)
    assert response.status_code == 422 and error_of(response)["field"] == "recurrence"
    response = client.post(
        "/api/v1/series", json=body(env.inst.id, start="2030-01-07T09:00:00"), headers=headers
    )
    assert response.status_code == 422 and error_of(response)["field"] == "start"
    response = client.post("/api/v1/series", json=body(999999), headers=headers)
    assert response.status_code == 404
    assert count_rows(BookingSeries) == 0


def test_series_transitions_and_tenancy(
    db: Any, client: Any, env: Any, make_user: Any, make_instrument: Any
) -> None:
    created = client.post("/api/v1/series", json=body(env.inst.id), headers=bearer(env.sme))
    series_id = created.get_json()["id"]
    first_id = created.get_json()["bookings"][0]["id"]
    stranger = make_user(Role.SME)
    other_staff = make_user(Role.STAFF)
    db.session.commit()
    assert client.get(f"/api/v1/series/{series_id}", headers=bearer(stranger)).status_code == 404
    assert (
        client.post(f"/api/v1/series/{series_id}/approve", headers=bearer(other_staff)).status_code
        == 404
    )
    assert (
        client.post(f"/api/v1/series/{series_id}/approve", headers=bearer(env.sme)).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/v1/series/{series_id}/cancel", json={}, headers=bearer(stranger)
        ).status_code
        == 404
    )
    staff = bearer(env.staff)
    # one occurrence at a time through the booking endpoints, unchanged
    single = client.post(
        f"/api/v1/bookings/{first_id}/reject", json={"reason": "not that day"}, headers=staff
    )
    assert single.status_code == 200
    response = client.post(f"/api/v1/series/{series_id}/approve", headers=staff)
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    check_schema(client, "SeriesOut", data)
    assert [b["status"] for b in data["bookings"]] == [
        "rejected",
        "approved",
        "approved",
        "approved",
    ]
    assert data["skipped"] == []
    again = client.post(f"/api/v1/series/{series_id}/approve", headers=staff)
    assert again.status_code == 409 and error_of(again)["code"] == "invalid_state"
    reject = client.post(f"/api/v1/series/{series_id}/reject", json={}, headers=staff)
    assert reject.status_code == 422 and error_of(reject)["field"] == "reason"
    cancel = client.post(
        f"/api/v1/series/{series_id}/cancel", json={"reason": "done"}, headers=bearer(env.sme)
    )
    assert cancel.status_code == 200
    assert [b["status"] for b in cancel.get_json()["bookings"]] == [
        "rejected",
        "cancelled",
        "cancelled",
        "cancelled",
    ]
    assert client.get(f"/api/v1/series/{series_id}", headers=bearer(env.sme)).status_code == 200


def test_openapi_documents_the_series_paths(client: Any) -> None:
    paths = served_openapi(client)["paths"]
    for path in (
        "/api/v1/series",
        "/api/v1/series/preview",
        "/api/v1/series/{series_id}",
        "/api/v1/series/{series_id}/approve",
        "/api/v1/series/{series_id}/reject",
        "/api/v1/series/{series_id}/cancel",
    ):
        assert path in paths


# -- web ----------------------------------------------------------------------------------


def _form(**kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "start": "2030-01-07T09:00",
        "end": "2030-01-07T11:00",
        "purpose": "weekly calibration",
        "freq": "weekly",
        "interval": "1",
        "weekdays": ["0", "2"],
        "ends": "count",
        "count": "4",
        "until": "",
        "action": "preview",
    }
    data.update(kw)
    return data


def test_web_repeat_preview_then_book_the_rest(
    db: Any, client: Any, env: Any, login: Any, make_booking: Any, make_user: Any
) -> None:
    make_booking(
        resource=env.inst,
        user=make_user(Role.SME),
        start=dt.datetime(2030, 1, 9, 1, tzinfo=dt.UTC),
        end=dt.datetime(2030, 1, 9, 3, tzinfo=dt.UTC),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()
    login(env.sme)
    # the booking form offers "repeat", which carries what was typed
    page = client.get(f"/resources/{env.inst.id}/book")
    assert f"/resources/{env.inst.id}/book/series".encode() in page.data
    carried = client.post(
        f"/resources/{env.inst.id}/book/series",
        data={
            "start": "2030-01-07T09:00",
            "end": "2030-01-07T11:00",
            "purpose": "p",
            "action": "form",
        },
    )
    assert carried.status_code == 200
    assert b'value="2030-01-07T09:00"' in carried.data
    preview = client.post(f"/resources/{env.inst.id}/book/series", data=_form())
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert html.count("occurrence-ok") == 3 and html.count("occurrence-refused") == 1
    assert 'value="book_rest"' in html and "Book nothing" in html
    assert count_rows(Booking) == 1
    booked = client.post(f"/resources/{env.inst.id}/book/series", data=_form(action="book_rest"))
    assert booked.status_code == 302
    series = db.session.scalar(select(BookingSeries))
    assert booked.headers["Location"].endswith(f"/series/{series.id}")
    assert count_rows(Booking) == 4
    page = client.get(f"/series/{series.id}")
    assert page.status_code == 200
    assert page.get_data(as_text=True).count("/bookings/") >= 3
    one = db.session.scalar(select(Booking).where(Booking.series_id == series.id))
    detail = client.get(f"/bookings/{one.id}")
    assert f"/series/{series.id}".encode() in detail.data


def test_web_book_all_refused_shows_the_error_and_writes_nothing(
    db: Any, client: Any, env: Any, login: Any, make_booking: Any, make_user: Any
) -> None:
    make_booking(
        resource=env.inst,
        user=make_user(Role.SME),
        start=dt.datetime(2030, 1, 9, 1, tzinfo=dt.UTC),
        end=dt.datetime(2030, 1, 9, 3, tzinfo=dt.UTC),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()
    login(env.sme)
    response = client.post(f"/resources/{env.inst.id}/book/series", data=_form(action="book_all"))
    assert response.status_code == 409
    assert "nothing was booked" in response.get_data(as_text=True)
    assert count_rows(BookingSeries) == 0
    bad = client.post(f"/resources/{env.inst.id}/book/series", data=_form(count="500"))
    assert bad.status_code == 422


def test_web_staff_approve_and_reject_whole_series(
    db: Any, client: Any, env: Any, login: Any
) -> None:
    created = client.post("/api/v1/series", json=body(env.inst.id), headers=bearer(env.sme))
    series_id = created.get_json()["id"]
    login(env.staff)
    page = client.get(f"/series/{series_id}")
    assert b"Approve all pending" in page.data and b"Reject all pending" in page.data
    no_reason = client.post(f"/series/{series_id}/reject", data={"reason": ""})
    assert no_reason.status_code == 422
    response = client.post(f"/series/{series_id}/reject", data={"reason": "calibration campaign"})
    assert response.status_code == 302
    statuses = db.session.scalars(
        select(Booking.status).where(Booking.series_id == series_id)
    ).all()
    assert statuses == [BookingStatus.REJECTED] * 4
    assert client.post(f"/series/{series_id}/approve").status_code == 409
