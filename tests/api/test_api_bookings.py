"""Bookings over the API: the booking object, creation errors, transitions, list
filters, and the whole flow from token to completed."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.catalogue.capability import refresh_base_range
from labshare.models import Booking, BookingStatus, Role, UsageRecord
from labshare.timeutil import set_clock
from tests.factories import PASSWORD
from tests.helpers import END, NOW, START, bearer, check_schema, count_rows, error_of

BOOKING_KEYS = {
    "id",
    "resource_id",
    "resource_name",
    "institute_id",
    "company_id",
    "user_id",
    "start",
    "end",
    "status",
    "purpose",
    "samples",
    "fee",
    "fee_waived",
    "decision_reason",
    "created_at",
    "series_id",  # recurrence
    "booked_by_id",  # booking on behalf (additive)
    "checked_in_at",  # check-in
    "group_id",  # booking groups
}


@pytest.fixture
def env(db: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    inst = make_instrument()
    refresh_base_range(inst)
    sme = make_user(Role.SME)
    staff = make_user(Role.STAFF, institute=inst.institute)
    db.session.commit()
    return SimpleNamespace(inst=inst, sme=sme, staff=staff)


def _create(client: Any, env: SimpleNamespace, **overrides: Any) -> Any:
    payload = {
        "resource_id": env.inst.id,
        "start": START,
        "end": END,
        "purpose": "校准压力变送器",
        "samples": "3 台变送器",
    }
    payload.update(overrides)
    return client.post("/api/v1/bookings", json=payload, headers=bearer(env.sme))


def test_create_returns_201_with_the_booking_object(client: Any, env: SimpleNamespace) -> None:
    response = _create(client, env)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == BOOKING_KEYS
    check_schema(client, "BookingOut", body)
    assert body["status"] == "pending"
    assert body["resource_id"] == env.inst.id
    assert body["resource_name"] == env.inst.name
    assert body["institute_id"] == env.inst.institute_id
    assert body["company_id"] == env.sme.company_id
    assert body["user_id"] == env.sme.id
    assert body["start"] == START and body["end"] == END  # in the institute's zone
    assert body["created_at"].endswith("+08:00")
    assert body["purpose"] == "校准压力变送器" and body["samples"] == "3 台变送器"
    assert body["fee"] == 300 and body["fee_waived"] == 150
    assert body["decision_reason"] is None


def test_create_accepts_utc_z(client: Any, env: SimpleNamespace) -> None:
    response = _create(client, env, start="2030-01-07T01:00:00Z", end="2030-01-07T03:00:00Z")
    assert response.status_code == 201
    assert response.get_json()["start"] == START


@pytest.mark.parametrize(
    ("overrides", "status", "code", "field"),
    [
        ({"start": "2030-01-07T09:00:00"}, 422, "validation_error", "start"),
        ({"end": "2030-01-07T11:00:00"}, 422, "validation_error", "end"),
        ({"start": "next monday"}, 422, "validation_error", "start"),
        ({"start": 1893978000}, 400, "bad_request", "start"),
        ({"resource_id": "1"}, 400, "bad_request", "resource_id"),
        ({"resource_id": None}, 400, "bad_request", "resource_id"),
        ({"purpose": ["a"]}, 400, "bad_request", "purpose"),
        ({"purpose": ""}, 422, "validation_error", "purpose"),
        ({"purpose": "x" * 501}, 422, "validation_error", "purpose"),
        ({"end": "2030-01-07T08:00:00+08:00"}, 422, "validation_error", "end"),
    ],
)
def test_create_bad_input(
    db: Any,
    client: Any,
    env: SimpleNamespace,
    overrides: dict[str, Any],
    status: int,
    code: str,
    field: str,
) -> None:
    response = _create(client, env, **overrides)
    assert response.status_code == status, response.get_json()
    error = error_of(response)
    assert error["code"] == code
    assert error["field"] == field
    assert count_rows(Booking) == 0


def test_create_missing_field_is_422(db: Any, client: Any, env: SimpleNamespace) -> None:
    response = client.post(
        "/api/v1/bookings",
        json={"resource_id": env.inst.id, "start": START, "end": END},
        headers=bearer(env.sme),
    )
    assert response.status_code == 422
    assert error_of(response)["field"] == "purpose"


@pytest.mark.parametrize(
    "raw", ['{"resource_id": 1,', "[1, 2]", "null", '"text"', "\xff\xfe", "{'a': 1}"]
)
def test_create_malformed_json_is_400(db: Any, client: Any, env: SimpleNamespace, raw: str) -> None:
    response = client.post(
        "/api/v1/bookings",
        data=raw.encode("latin-1"),
        content_type="application/json",
        headers=bearer(env.sme),
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"
    assert count_rows(Booking) == 0


def test_create_unknown_resource_is_404(db: Any, client: Any, env: SimpleNamespace) -> None:
    response = _create(client, env, resource_id=999999)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_rule_violation_and_conflict_pass_through(
    db: Any, client: Any, env: SimpleNamespace, make_user: Any
) -> None:
    response = _create(client, env, start="2030-01-07T09:10:00+08:00")
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["rule"]) == ("rule_violation", "granularity")
    assert _create(client, env).status_code == 201
    rival = SimpleNamespace(inst=env.inst, sme=make_user(Role.SME))
    response = _create(
        client, rival, start="2030-01-07T10:00:00+08:00", end="2030-01-07T12:00:00+08:00"
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert count_rows(Booking) == 1


@pytest.mark.parametrize("role", [Role.STAFF, Role.ADMIN])
def test_only_smes_create(
    db: Any, client: Any, env: SimpleNamespace, make_user: Any, role: Role
) -> None:
    user = env.staff if role == Role.STAFF else make_user(Role.ADMIN)
    response = client.post(
        "/api/v1/bookings",
        json={"resource_id": env.inst.id, "start": START, "end": END, "purpose": "x"},
        headers=bearer(user),
    )
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


def test_reject_needs_a_reason(db: Any, client: Any, env: SimpleNamespace) -> None:
    booking_id = _create(client, env).get_json()["id"]
    url = f"/api/v1/bookings/{booking_id}/reject"
    headers = bearer(env.staff)
    response = client.post(url, json={}, headers=headers)
    assert response.status_code == 422 and error_of(response)["field"] == "reason"
    response = client.post(url, headers=headers)  # no body at all
    assert response.status_code == 422 and error_of(response)["field"] == "reason"
    response = client.post(url, json={"reason": 5}, headers=headers)
    assert response.status_code == 400 and error_of(response)["field"] == "reason"
    response = client.post(url, json={"reason": "   "}, headers=headers)
    assert response.status_code == 422 and error_of(response)["field"] == "reason"
    response = client.post(url, json={"reason": "仪器检修"}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["status"] == "rejected"
    assert response.get_json()["decision_reason"] == "仪器检修"
    # A second decision is a wrong transition.
    response = client.post(f"/api/v1/bookings/{booking_id}/approve", headers=headers)
    assert response.status_code == 409
    assert error_of(response)["code"] == "invalid_state"


def test_cancel_with_and_without_reason(db: Any, client: Any, env: SimpleNamespace) -> None:
    first = _create(client, env).get_json()["id"]
    response = client.post(f"/api/v1/bookings/{first}/cancel", headers=bearer(env.sme))
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    second = _create(client, env).get_json()["id"]
    response = client.post(
        f"/api/v1/bookings/{second}/cancel", json={"reason": "改期"}, headers=bearer(env.sme)
    )
    assert response.get_json()["status"] == "cancelled"
    response = client.post(f"/api/v1/bookings/{second}/cancel", headers=bearer(env.sme))
    assert response.status_code == 409
    assert error_of(response)["code"] == "invalid_state"


def test_sme_cancel_after_deadline_is_a_rule_violation(
    db: Any, client: Any, env: SimpleNamespace
) -> None:
    booking_id = _create(client, env).get_json()["id"]
    set_clock(lambda: dt.datetime(2030, 1, 6, 12, 0, tzinfo=dt.UTC))  # < 24 h before
    response = client.post(f"/api/v1/bookings/{booking_id}/cancel", headers=bearer(env.sme))
    assert response.status_code == 422
    assert error_of(response)["rule"] == "cancellation_deadline"
    response = client.post(f"/api/v1/bookings/{booking_id}/cancel", headers=bearer(env.staff))
    assert response.status_code == 200


def test_usage_validation(db: Any, client: Any, env: SimpleNamespace) -> None:
    booking_id = _create(client, env).get_json()["id"]
    staff = bearer(env.staff)
    client.post(f"/api/v1/bookings/{booking_id}/approve", headers=staff)
    url = f"/api/v1/bookings/{booking_id}/usage"
    good = {
        "checked_in_at": "2030-01-07T09:05:00+08:00",
        "checked_out_at": "2030-01-07T10:50:00+08:00",
        "service_type": "calibration",
        "samples_count": 3,
        "problem_solved": True,
    }
    cases = [
        ({"checked_in_at": "2030-01-07T09:05:00"}, 422, "checked_in_at"),
        ({"service_type": "magic"}, 422, "service_type"),
        ({"samples_count": -1}, 422, "samples_count"),
        ({"samples_count": "3"}, 400, "samples_count"),
        ({"problem_solved": "yes"}, 400, "problem_solved"),
        ({"checked_out_at": "2030-01-07T09:00:00+08:00"}, 422, "checked_out_at"),
    ]
    for change, status, field in cases:
        response = client.post(url, json=good | change, headers=staff)
        assert response.status_code == status, (change, response.get_json())
        assert error_of(response)["field"] == field
    assert db.session.scalar(select(func.count(UsageRecord.id))) == 0
    set_clock(lambda: dt.datetime.fromisoformat(END))  # once it has happened
    response = client.post(url, json=good | {"notes": "ok"}, headers=bearer(env.staff))
    assert response.status_code == 200
    assert response.get_json()["status"] == "completed"


def test_list_filters_and_pagination(
    db: Any, client: Any, env: SimpleNamespace, make_instrument: Any
) -> None:
    other = make_instrument(lab=env.inst.lab)
    db.session.commit()
    ids = []
    for day in (7, 8, 9):
        response = _create(
            client,
            env,
            resource_id=other.id if day == 9 else env.inst.id,
            start=f"2030-01-0{day}T09:00:00+08:00",
            end=f"2030-01-0{day}T10:00:00+08:00",
        )
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    client.post(f"/api/v1/bookings/{ids[0]}/cancel", headers=bearer(env.sme))
    headers = bearer(env.sme)

    def listed(**params: Any) -> list[int]:
        response = client.get("/api/v1/bookings", query_string=params, headers=headers)
        assert response.status_code == 200, response.get_json()
        return [b["id"] for b in response.get_json()["items"]]

    body = client.get("/api/v1/bookings", headers=headers).get_json()
    check_schema(client, "BookingOutPage", body)
    assert body["total"] == 3 and body["page"] == 1 and body["per_page"] == 20
    assert listed() == [ids[2], ids[1], ids[0]]  # newest start first
    assert listed(status="cancelled") == [ids[0]]
    assert listed(status="pending") == [ids[2], ids[1]]
    assert listed(resource_id=other.id) == [ids[2]]
    assert listed(**{"from": "2030-01-08T00:00:00+08:00"}) == [ids[2], ids[1]]
    assert listed(to="2030-01-08T00:00:00+08:00") == [ids[0]]
    assert listed(per_page=2, page=2) == [ids[0]]
    for params, field in (
        ({"status": "lost"}, "status"),
        ({"from": "2030-01-08T00:00:00"}, "from"),
        ({"per_page": 500}, "per_page"),
        ({"resource_id": "x"}, "resource_id"),
    ):
        response = client.get("/api/v1/bookings", query_string=params, headers=headers)
        assert response.status_code == 422
        assert error_of(response)["field"] == field


def test_end_to_end_flow(db: Any, client: Any, make_instrument: Any, make_user: Any) -> None:
    """Token -> search -> availability -> create -> approve (staff) -> usage -> completed."""
    set_clock(lambda: NOW)
    inst = make_instrument(measurand="pressure", unit="MPa", range_min=0, range_max=10)
    refresh_base_range(inst)
    make_user(Role.SME, email="sme@example.com")
    make_user(Role.STAFF, email="staff@example.com", institute=inst.institute)
    db.session.commit()

    def token(email: str) -> dict[str, str]:
        response = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200
        return {"Authorization": f"Bearer {response.get_json()['token']}"}

    sme, staff = token("sme@example.com"), token("staff@example.com")
    found = client.get(
        "/api/v1/resources", query_string={"measurand": "pressure", "value": 8000, "unit": "kPa"}
    ).get_json()
    assert [r["id"] for r in found["items"]] == [inst.id]
    free = client.get(
        f"/api/v1/resources/{inst.id}/availability",
        query_string={"from": "2030-01-07T00:00:00+08:00", "to": "2030-01-08T00:00:00+08:00"},
    ).get_json()["free"]
    slot_start = dt.datetime.fromisoformat(free[0]["start"]) + dt.timedelta(hours=9)
    slot_end = slot_start + dt.timedelta(hours=2)
    created = client.post(
        "/api/v1/bookings",
        json={
            "resource_id": inst.id,
            "start": slot_start.isoformat(),
            "end": slot_end.isoformat(),
            "purpose": "Calibrate pressure transmitters",
        },
        headers=sme,
    )
    assert created.status_code == 201, created.get_json()
    booking = created.get_json()
    assert booking["status"] == "pending"
    approved = client.post(f"/api/v1/bookings/{booking['id']}/approve", headers=staff)
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    busy = client.get(
        f"/api/v1/resources/{inst.id}/availability",
        query_string={"from": "2030-01-07T00:00:00+08:00", "to": "2030-01-08T00:00:00+08:00"},
    ).get_json()["busy"]
    assert {"start": booking["start"], "end": booking["end"], "reason": "booked"} in busy
    set_clock(lambda: slot_end + dt.timedelta(minutes=5))
    staff, sme = token("staff@example.com"), token("sme@example.com")  # 24 h tokens expired
    usage = client.post(
        f"/api/v1/bookings/{booking['id']}/usage",
        json={
            "checked_in_at": booking["start"],
            "checked_out_at": booking["end"],
            "service_type": "calibration",
            "samples_count": 4,
            "problem_solved": True,
        },
        headers=staff,
    )
    assert usage.status_code == 200, usage.get_json()
    assert usage.get_json()["status"] == "completed"
    detail = client.get(f"/api/v1/bookings/{booking['id']}", headers=sme).get_json()
    assert detail["status"] == "completed"
    record = db.session.scalars(select(UsageRecord)).one()
    assert record.samples_count == 4 and record.service_type == "calibration"
    assert db.session.get(Booking, booking["id"]).status == BookingStatus.COMPLETED
