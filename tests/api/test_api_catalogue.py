"""The catalogue API: the forms' and the import's checks (every bad field named, 422,
nothing written), tenancy (another institute's resource is 404), roles, and a nightly
LIMS sync by the institute's own ids that changes nothing the second time."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.extensions import db as _db
from labshare.models import AuditLog, BookingQuota, Closure, Instrument, Lab, Resource, Role
from labshare.timeutil import set_clock
from tests.helpers import NOW, bearer, check_schema, error_of

LAB = {
    "external_id": "LIMS-LAB-1",
    "name": "压力开放实验室",
    "name_en": "Pressure lab",
    "field": "mechanical",
    "location": "B 栋 2 层",
    "capacity": 2,
    "fee_per_hour": "0",
}

INSTRUMENT = {
    "lab_external_id": "LIMS-LAB-1",
    "name": "活塞式压力计",
    "name_en": "Piston gauge",
    "field": "mechanical",
    "model": "PG7601",
    "manufacturer": "Fluke",
    "serial_number": "SN-0001",
    "asset_number": "ZC-2020-001",
    "measurand": "pressure",
    "unit": "MPa",
    "range_min": 0,
    "range_max": 10,
    "accuracy": "±0.005 %",
    "calibration_valid_until": "2031-06-30",
    "fee_per_hour": 200,
    "fee_waiver_percent": 50,
}

RULES = {
    "slot_minutes": 30,
    "min_minutes": 60,
    "max_minutes": 240,
    "lead_time_hours": 24,
    "horizon_days": 60,
    "requires_approval": True,
    "max_active_per_company": 3,
    "cancel_deadline_hours": 24,
}

HOURS = {"periods": [{"weekday": d, "opens": "08:30", "closes": "17:30"} for d in range(5)]}


@pytest.fixture
def world(db: Any, make_lab: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    other_instrument = make_instrument()
    own_lab = make_lab()
    staff = make_user(Role.STAFF, institute_id=own_lab.institute_id)
    other_staff = make_user(Role.STAFF, institute_id=other_instrument.institute_id)
    sme = make_user(Role.SME)
    admin = make_user(Role.ADMIN)
    _db.session.add(
        BookingQuota(institute_id=other_instrument.institute_id, period="week", max_bookings=2)
    )
    _db.session.add(
        Closure(
            resource_id=other_instrument.id,
            start_at=NOW,
            end_at=NOW.replace(year=2031),
            kind="maintenance",
        )
    )
    _db.session.commit()
    return SimpleNamespace(
        staff=staff,
        other_staff=other_staff,
        sme=sme,
        admin=admin,
        own_lab=own_lab,
        other_instrument=other_instrument,
        other_lab_id=other_instrument.lab_id,
        headers=bearer(staff),
    )


def _audits() -> int:
    return int(_db.session.scalar(select(func.count(AuditLog.id))) or 0)


def _resources() -> int:
    return int(_db.session.scalar(select(func.count(Resource.id))) or 0)


def _versions() -> dict[int, int]:
    _db.session.expire_all()
    return dict(_db.session.execute(select(Resource.id, Resource.calendar_version)).tuples().all())


# -- creation and the checks ------------------------------------------------------------------


def test_create_lab_and_instrument(client: Any, world: SimpleNamespace) -> None:
    lab = client.post("/api/v1/catalogue/labs", json=LAB, headers=world.headers)
    assert lab.status_code == 201, lab.get_json()
    check_schema(client, "CatalogueItemOut", lab.get_json())
    assert lab.get_json()["external_id"] == "LIMS-LAB-1"
    inst = client.post("/api/v1/catalogue/instruments", json=INSTRUMENT, headers=world.headers)
    assert inst.status_code == 201, inst.get_json()
    body = inst.get_json()
    check_schema(client, "CatalogueItemOut", body)
    assert body["lab_id"] == lab.get_json()["id"] and body["measurand"] == "pressure"
    created = _db.session.get(Instrument, body["id"])
    assert created is not None and created.institute_id == world.staff.institute_id
    # the public resource API sees it at once
    assert client.get(f"/api/v1/resources/{body['id']}").status_code == 200


BAD_LABS = [
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"field": "astrology"}, "field"),
    ({"status": "sleeping"}, "status"),
    ({"capacity": 0}, "capacity"),
    ({"capacity": "many"}, "capacity"),
    ({"fee_per_hour": "abc"}, "fee_per_hour"),
    ({"fee_per_hour": -1}, "fee_per_hour"),
    ({"fee_per_hour": "1.234"}, "fee_per_hour"),
    ({"fee_waiver_percent": 101}, "fee_waiver_percent"),
    ({"location": "x" * 301}, "location"),
    ({"external_id": "x" * 101}, "external_id"),
    ({"external_id": "a\nb"}, "external_id"),
]


@pytest.mark.parametrize(("change", "field"), BAD_LABS)
def test_bad_lab_field_is_named(
    client: Any, world: SimpleNamespace, change: dict[str, Any], field: str
) -> None:
    before = (_audits(), _resources())
    response = client.post("/api/v1/catalogue/labs", json={**LAB, **change}, headers=world.headers)
    assert response.status_code == 422, response.get_json()
    assert error_of(response)["field"] == field
    assert (_audits(), _resources()) == before


BAD_INSTRUMENTS = [
    ({"measurand": "happiness"}, "measurand"),
    ({"measurand": ""}, "measurand"),
    ({"unit": "kg"}, "unit"),
    ({"unit": ""}, "unit"),
    ({"range_min": "low"}, "range_min"),
    ({"range_max": None}, "range_max"),
    ({"range_min": 5, "range_max": 1}, "range_max"),
    ({"calibration_valid_until": "30/06/2031"}, "calibration_valid_until"),
    ({"serial_number": "x" * 101}, "serial_number"),
    ({"model": "x" * 101}, "model"),
    ({"accuracy": "x" * 201}, "accuracy"),
    ({"lab_external_id": "NOPE"}, "lab_external_id"),
    ({"lab_external_id": None}, "lab_id"),
    ({"name": None}, "name"),
    ({"field": None}, "field"),
]


@pytest.mark.parametrize(("change", "field"), BAD_INSTRUMENTS)
def test_bad_instrument_field_is_named(
    client: Any, world: SimpleNamespace, change: dict[str, Any], field: str
) -> None:
    assert client.post("/api/v1/catalogue/labs", json=LAB, headers=world.headers).status_code == 201
    before = (_audits(), _resources())
    response = client.post(
        "/api/v1/catalogue/instruments", json={**INSTRUMENT, **change}, headers=world.headers
    )
    assert response.status_code == 422, response.get_json()
    assert error_of(response)["field"] == field
    assert (_audits(), _resources()) == before


def test_instrument_in_another_institutes_lab_is_refused(
    client: Any, world: SimpleNamespace
) -> None:
    body = {**INSTRUMENT, "lab_external_id": None, "lab_id": world.other_lab_id}
    before = _resources()
    response = client.post("/api/v1/catalogue/instruments", json=body, headers=world.headers)
    assert response.status_code == 422 and error_of(response)["field"] == "lab_id"
    assert _resources() == before


def test_external_id_is_unique_in_the_institute(client: Any, world: SimpleNamespace) -> None:
    assert client.post("/api/v1/catalogue/labs", json=LAB, headers=world.headers).status_code == 201
    again = client.post("/api/v1/catalogue/labs", json=LAB, headers=world.headers)
    assert again.status_code == 422 and error_of(again)["field"] == "external_id"
    # another institute may use the same id for its own lab
    other = client.post("/api/v1/catalogue/labs", json=LAB, headers=bearer(world.other_staff))
    assert other.status_code == 201


BAD_RULES = [
    ({"slot_minutes": None}, "slot_minutes"),
    ({"slot_minutes": 2}, "slot_minutes"),
    ({"min_minutes": 45}, "min_minutes"),
    ({"max_minutes": 30}, "max_minutes"),
    ({"horizon_days": 0}, "horizon_days"),
    ({"lead_time_hours": "soon"}, "lead_time_hours"),
    ({"buffer_minutes": 5000}, "buffer_minutes"),
]


@pytest.mark.parametrize(("change", "field"), BAD_RULES)
def test_bad_rules_field_is_named(
    client: Any, world: SimpleNamespace, change: dict[str, Any], field: str
) -> None:
    before = (_audits(), _versions())
    response = client.put(
        f"/api/v1/catalogue/resources/{world.own_lab.id}/rules",
        json={**RULES, **change},
        headers=world.headers,
    )
    assert response.status_code == 422, response.get_json()
    assert error_of(response)["field"] == field
    assert (_audits(), _versions()) == before


@pytest.mark.parametrize(
    ("periods", "field"),
    [
        ([{"weekday": 0, "opens": "25:00", "closes": "26:00"}], "periods[0]"),
        (
            [
                {"weekday": 0, "opens": "08:00", "closes": "12:00"},
                {"weekday": 0, "opens": "11:00", "closes": "13:00"},
            ],
            "day_0",
        ),
        ([{"weekday": 7, "opens": "08:00", "closes": "12:00"}], "periods.0.weekday"),
    ],
)
def test_bad_hours_are_named(
    client: Any, world: SimpleNamespace, periods: list[Any], field: str
) -> None:
    before = _versions()
    response = client.put(
        f"/api/v1/catalogue/labs/{world.own_lab.id}/opening-hours",
        json={"periods": periods},
        headers=world.headers,
    )
    assert response.status_code == 422, response.get_json()
    assert error_of(response)["field"] == field
    assert _versions() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"end": "2030-02-01T08:00:00+08:00"}, "end"),
        ({"start": "2030-02-02T08:00:00"}, "start"),
        ({"kind": "party"}, "kind"),
        ({"note": "x" * 301}, "note"),
    ],
)
def test_bad_closure_is_named(
    client: Any, world: SimpleNamespace, change: dict[str, Any], field: str
) -> None:
    body = {
        "start": "2030-02-02T08:00:00+08:00",
        "end": "2030-02-03T08:00:00+08:00",
        "kind": "maintenance",
        **change,
    }
    response = client.post(
        f"/api/v1/catalogue/resources/{world.own_lab.id}/closures",
        json=body,
        headers=world.headers,
    )
    assert response.status_code == 422, response.get_json()
    assert error_of(response)["field"] == field
    count = _db.session.scalar(
        select(func.count(Closure.id)).where(Closure.resource_id == world.own_lab.id)
    )
    assert count == 0


def test_closure_and_quota_round_trip(client: Any, world: SimpleNamespace) -> None:
    body = {
        "start": "2030-02-02T08:00:00+08:00",
        "end": "2030-02-03T08:00:00+08:00",
        "kind": "holiday",
    }
    url = f"/api/v1/catalogue/resources/{world.own_lab.id}/closures"
    made = client.post(url, json=body, headers=world.headers)
    assert made.status_code == 201, made.get_json()
    check_schema(client, "ClosureOut", made.get_json())
    gone = client.delete(
        f"/api/v1/catalogue/closures/{made.get_json()['id']}", headers=world.headers
    )
    assert gone.status_code == 200
    bad = client.post(
        "/api/v1/catalogue/quotas",
        json={"period": "fortnight", "max_hours": 3},
        headers=world.headers,
    )
    assert bad.status_code == 422 and error_of(bad)["field"] == "period"
    none = client.post("/api/v1/catalogue/quotas", json={"period": "week"}, headers=world.headers)
    assert none.status_code == 422 and error_of(none)["field"] == "max_hours"
    elsewhere = client.post(
        "/api/v1/catalogue/quotas",
        json={"period": "week", "max_hours": 3, "resource_id": world.other_instrument.id},
        headers=world.headers,
    )
    assert elsewhere.status_code == 422 and error_of(elsewhere)["field"] == "resource_id"
    quota = client.post(
        "/api/v1/catalogue/quotas",
        json={"period": "week", "max_hours": 3, "resource_id": world.own_lab.id},
        headers=world.headers,
    )
    assert quota.status_code == 201
    deleted = client.delete(
        f"/api/v1/catalogue/quotas/{quota.get_json()['id']}", headers=world.headers
    )
    assert deleted.status_code == 200


# -- tenancy and roles --------------------------------------------------------------------------


def test_another_institutes_resource_is_404(client: Any, world: SimpleNamespace) -> None:
    other, lab_id, h = world.other_instrument, world.other_lab_id, world.headers
    inst = {**INSTRUMENT, "lab_external_id": None, "lab_id": lab_id}
    calls = [
        client.put(f"/api/v1/catalogue/labs/{lab_id}", json=LAB, headers=h),
        client.put(f"/api/v1/catalogue/instruments/{other.id}", json=inst, headers=h),
        client.post(f"/api/v1/catalogue/resources/{other.id}/retire", headers=h),
        client.put(f"/api/v1/catalogue/resources/{other.id}/rules", json=RULES, headers=h),
        client.post(f"/api/v1/catalogue/resources/{other.id}/rules/clear", headers=h),
        client.put(f"/api/v1/catalogue/labs/{lab_id}/opening-hours", json=HOURS, headers=h),
        client.post(
            f"/api/v1/catalogue/resources/{other.id}/closures",
            json={
                "start": "2030-02-02T08:00:00+08:00",
                "end": "2030-02-03T08:00:00+08:00",
                "kind": "holiday",
            },
            headers=h,
        ),
    ]
    closure_id = _db.session.scalar(select(Closure.id).where(Closure.resource_id == other.id))
    quota_id = _db.session.scalar(select(BookingQuota.id))
    calls.append(client.delete(f"/api/v1/catalogue/closures/{closure_id}", headers=h))
    calls.append(client.delete(f"/api/v1/catalogue/quotas/{quota_id}", headers=h))
    for response in calls:
        assert response.status_code == 404, (response.request.path, response.get_json())
        assert error_of(response)["code"] == "not_found"
    assert _audits() == 0
    # the wrong kind is no resource of that kind either
    wrong = client.put(f"/api/v1/catalogue/labs/{other.id}", json=LAB, headers=h)
    assert wrong.status_code == 404


@pytest.mark.parametrize("who", ["sme", "admin"])
def test_only_staff(client: Any, world: SimpleNamespace, who: str) -> None:
    headers = bearer(getattr(world, who))
    assert client.post("/api/v1/catalogue/labs", json=LAB, headers=headers).status_code == 403
    assert (
        client.put(
            f"/api/v1/catalogue/resources/{world.own_lab.id}/rules", json=RULES, headers=headers
        ).status_code
        == 403
    )
    assert client.post("/api/v1/catalogue/labs", json=LAB).status_code == 401


def test_retire(client: Any, world: SimpleNamespace) -> None:
    url = f"/api/v1/catalogue/resources/{world.own_lab.id}/retire"
    first = client.post(url, headers=world.headers)
    assert first.status_code == 200 and first.get_json()["status"] == "retired"
    audits = _audits()
    assert client.post(url, headers=world.headers).status_code == 200
    assert _audits() == audits  # retiring twice changes nothing


# -- the nightly sync --------------------------------------------------------------------------


def _sync(client: Any, headers: dict[str, str], lims: dict[str, Any]) -> list[Any]:
    out = []
    lab = client.put(
        "/api/v1/catalogue/labs/by-external-id/LIMS-LAB-1", json=lims["lab"], headers=headers
    )
    out.append(lab)
    lab_id = lab.get_json()["id"]
    out.append(
        client.put(
            f"/api/v1/catalogue/labs/{lab_id}/opening-hours", json=lims["hours"], headers=headers
        )
    )
    out.append(
        client.put(
            f"/api/v1/catalogue/resources/{lab_id}/rules", json=lims["rules"], headers=headers
        )
    )
    for key, instrument in lims["instruments"].items():
        out.append(
            client.put(
                f"/api/v1/catalogue/instruments/by-external-id/{key}",
                json=instrument,
                headers=headers,
            )
        )
    return out


def test_nightly_sync_twice_changes_nothing_the_second_time(
    client: Any, world: SimpleNamespace
) -> None:
    lims = {
        "lab": LAB,
        "hours": HOURS,
        "rules": RULES,
        "instruments": {
            "ZC-001": INSTRUMENT,
            "ZC-002": {**INSTRUMENT, "serial_number": "SN-0002", "name": "二号压力计"},
        },
    }
    first = _sync(client, world.headers, lims)
    assert [r.status_code for r in first] == [201, 200, 200, 201, 201], [
        r.get_json() for r in first
    ]
    audits, versions, resources = _audits(), _versions(), _resources()
    second = _sync(client, world.headers, copy.deepcopy(lims))
    assert [r.status_code for r in second] == [200, 200, 200, 200, 200]
    assert [r.get_json() for r in second[3:]] == [r.get_json() for r in first[3:]]
    assert _audits() == audits  # no audit row
    assert _versions() == versions  # no calendar version bump
    assert _resources() == resources
    # a real change is written, once
    lims["instruments"]["ZC-002"] = {**lims["instruments"]["ZC-002"], "fee_per_hour": 250}
    third = _sync(client, world.headers, lims)
    assert third[-1].get_json()["fee_per_hour"] == "250.00"
    assert _audits() == audits + 1
    changed = _db.session.scalar(select(AuditLog).where(AuditLog.action == "instrument.update"))
    assert changed is not None and changed.data == {"fee_per_hour": "250"}


def test_sync_id_of_the_other_kind_is_refused(client: Any, world: SimpleNamespace) -> None:
    assert client.post("/api/v1/catalogue/labs", json=LAB, headers=world.headers).status_code == 201
    response = client.put(
        "/api/v1/catalogue/instruments/by-external-id/LIMS-LAB-1",
        json=INSTRUMENT,
        headers=world.headers,
    )
    assert response.status_code == 422 and error_of(response)["field"] == "external_id"
    assert _db.session.scalar(select(func.count(Lab.id))) == 3
