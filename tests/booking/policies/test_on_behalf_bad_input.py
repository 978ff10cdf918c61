"""Bad input on every on-behalf path (API single, group, series; the web form):
a clear 422 naming the field (a wrong JSON type: 400 naming it, as API.md says),
nothing written, never a 500. On both databases."""

from __future__ import annotations

from typing import Any

import pytest

from labshare.extensions import db as _db
from labshare.models import Role
from tests.booking.policies import test_on_behalf_paths as paths
from tests.booking.policies.test_on_behalf_paths import _group_body, _one, _series_body, _writes
from tests.helpers import bearer, signed_in

world = paths.world  # the fixture
WEB_START, WEB_END = "2030-01-07T09:00", "2030-01-07T11:00"

BODIES = {
    "/bookings/on-behalf": _one("single"),
    "/booking-groups/on-behalf": _group_body,
    "/series/on-behalf": _series_body,
}

BAD = [
    ("company_id", "abc"),
    ("company_id", -1),
    ("company_id", 0),
    ("company_id", 10**30),
    ("company_id", None),
    ("company_id", 987654),
    ("user_id", "x"),
    ("user_id", -5),
    ("user_id", 10**30),
    ("user_id", 987654),
]


@pytest.mark.parametrize("url", list(BODIES))
@pytest.mark.parametrize(("field", "value"), BAD)
def test_api_bad_field_is_named(client: Any, world: Any, url: str, field: str, value: Any) -> None:
    payload = {"company_id": world.member.company_id, **BODIES[url](world, world.member)}
    if value is None:
        payload.pop(field)
    else:
        payload[field] = value
    before = _writes()
    response = client.post(f"/api/v1{url}", json=payload, headers=bearer(world.staff))
    expected = 400 if isinstance(value, str) else 422  # a wrong type: bad_request
    assert response.status_code == expected, response.get_data(as_text=True)[:500]
    assert response.get_json()["error"]["field"] == field
    _db.session.expire_all()
    assert _writes() == before


@pytest.mark.parametrize("url", list(BODIES))
@pytest.mark.parametrize("who", ["colleague_of_other_company", "staff", "unconfirmed"])
def test_api_user_id_not_a_member_is_named(
    client: Any, world: Any, make_user: Any, url: str, who: str
) -> None:
    if who == "staff":
        target = world.staff
    elif who == "unconfirmed":
        target = world.unconfirmed
    else:
        target = make_user(Role.SME)
        _db.session.commit()
    payload = {
        "company_id": world.member.company_id,
        "user_id": target.id,
        **BODIES[url](world, world.member),
    }
    before = _writes()
    response = client.post(f"/api/v1{url}", json=payload, headers=bearer(world.staff))
    assert response.status_code == 422, response.get_data(as_text=True)[:500]
    assert response.get_json()["error"]["field"] == "user_id"
    _db.session.expire_all()
    assert _writes() == before


WEB_BAD = [
    ("lab", {"instrument_ids": "abc"}, "instrument_ids"),
    ("lab", {"instrument_ids": "-3"}, "instrument_ids"),
    ("lab", {"instrument_ids": "99999999999999999999999"}, "instrument_ids"),
    ("lab", {"instrument_ids": "987654"}, "instrument_ids"),
    ("single", {"freq": "hourly"}, "freq"),
    ("single", {"freq": "weekly", "weekdays": "9", "ends": "count", "count": "2"}, "weekdays"),
    ("single", {"freq": "weekly", "interval": "-1", "ends": "count", "count": "2"}, "interval"),
    ("single", {"freq": "weekly", "interval": "x", "ends": "count", "count": "2"}, "interval"),
    ("single", {"freq": "weekly", "ends": "count", "count": "999999"}, "count"),
    ("single", {"freq": "weekly", "ends": "count", "count": ""}, "count"),
    ("single", {"freq": "weekly", "ends": "until", "until": ""}, "until"),
    ("single", {"freq": "weekly", "ends": "until", "until": "2020-01-01"}, "until"),
    ("single", {"freq": "weekly", "ends": "forever"}, "ends"),
]


@pytest.mark.parametrize(("resource", "extra", "field"), WEB_BAD)
def test_web_bad_field_is_named(
    app: Any, world: Any, resource: str, extra: dict[str, str], field: str
) -> None:
    data = {
        "credit_code": world.member.company.credit_code,
        "start": WEB_START,
        "end": WEB_END,
        "purpose": "电话预约",
        **extra,
    }
    before = _writes()
    url = f"/manage/resources/{getattr(world, resource).id}/book-for"
    response = signed_in(app, world.staff).post(url, data=data)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    _db.session.expire_all()
    assert _writes() == before


# -- tenancy: a lab of the staff's institute with an instrument of another one --------------


def test_api_group_with_another_institutes_instrument_writes_nothing(
    client: Any, world: Any, make_instrument: Any
) -> None:
    foreign = make_instrument()
    assert foreign.institute_id != world.lab.institute_id
    _db.session.commit()
    body = {**_group_body(world, world.member), "instrument_ids": [world.single.id, foreign.id]}
    before = _writes()
    response = client.post(
        "/api/v1/booking-groups/on-behalf",
        json={"company_id": world.member.company_id, **body},
        headers=bearer(world.staff),
    )
    assert response.status_code in (404, 422), response.get_data(as_text=True)[:300]
    assert response.get_json()["error"].get("field") in (None, "instrument_ids")
    _db.session.expire_all()
    assert _writes() == before


def test_web_group_with_a_forged_instrument_of_another_institute_writes_nothing(
    app: Any, world: Any, make_instrument: Any
) -> None:
    foreign = make_instrument()
    _db.session.commit()
    data = {
        "credit_code": world.member.company.credit_code,
        "start": WEB_START,
        "end": WEB_END,
        "purpose": "电话预约",
        "instrument_ids": [str(world.single.id), str(foreign.id)],
    }
    before = _writes()
    url = f"/manage/resources/{world.lab.id}/book-for"
    response = signed_in(app, world.staff).post(url, data=data)
    assert response.status_code in (404, 422), response.status_code
    _db.session.expire_all()
    assert _writes() == before


def test_an_admin_cannot_book_on_behalf(client: Any, world: Any, make_user: Any) -> None:
    admin = make_user(Role.ADMIN)
    _db.session.commit()
    before = _writes()
    for url, body in BODIES.items():
        payload = {"company_id": world.member.company_id, **body(world, world.member)}
        response = client.post(f"/api/v1{url}", json=payload, headers=bearer(admin))
        assert response.status_code in (403, 404), (url, response.status_code)
    _db.session.expire_all()
    assert _writes() == before
