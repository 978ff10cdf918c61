"""Staff book for a company: the company's booking, its member the booker, the staff
member recorded (column and audit); every rule applies; the member is told; another
institute's staff get 404, SMEs 403."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from labshare.extensions import db as _db
from labshare.models import AuditLog, Booking, Notification, Role
from labshare.timeutil import set_clock
from tests.helpers import END, NOW, START, bearer, check_schema, error_of

URL = "/api/v1/bookings/on-behalf"


@pytest.fixture
def world(db: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    inst = make_instrument()
    staff = make_user(Role.STAFF, institute_id=inst.institute_id)
    other_staff = make_user(Role.STAFF)
    member = make_user(Role.SME)
    admin_member = make_user(Role.SME, company=member.company, company_admin=True)
    stranger = make_user(Role.SME)
    _db.session.commit()
    return SimpleNamespace(
        inst=inst,
        staff=staff,
        other_staff=other_staff,
        member=member,
        admin_member=admin_member,
        stranger=stranger,
        company_id=member.company_id,
    )


def _body(world: SimpleNamespace, **kw: Any) -> dict[str, Any]:
    return {
        "resource_id": world.inst.id,
        "company_id": world.company_id,
        "start": START,
        "end": END,
        "purpose": "电话预约：校准压力变送器",
        **kw,
    }


def test_staff_book_for_a_company(client: Any, world: SimpleNamespace) -> None:
    response = client.post(URL, json=_body(world), headers=bearer(world.staff))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    check_schema(client, "BookingOut", body)
    assert body["company_id"] == world.company_id
    assert body["user_id"] == world.admin_member.id  # the company's administrator by default
    assert body["booked_by_id"] == world.staff.id
    booking = _db.session.get(Booking, body["id"])
    assert booking is not None and booking.booked_by_id == world.staff.id
    entry = _db.session.scalar(select(AuditLog).where(AuditLog.action == "booking.create"))
    assert entry is not None and entry.actor_id == world.staff.id
    assert entry.data == {"on_behalf_of": world.company_id, "booker": world.admin_member.id}
    told = _db.session.scalars(
        select(Notification.kind).where(Notification.user_id == world.admin_member.id)
    ).all()
    assert "booking_received" in told  # the company is told
    # the company sees it as its own
    mine = client.get("/api/v1/bookings", headers=bearer(world.member)).get_json()
    assert [b["id"] for b in mine["items"]] == [body["id"]]


def test_a_chosen_member(client: Any, world: SimpleNamespace) -> None:
    response = client.post(
        URL, json=_body(world, user_id=world.member.id), headers=bearer(world.staff)
    )
    assert response.status_code == 201 and response.get_json()["user_id"] == world.member.id
    wrong = client.post(
        URL,
        json=_body(
            world,
            user_id=world.stranger.id,
            start="2030-01-08T09:00:00+08:00",
            end="2030-01-08T11:00:00+08:00",
        ),
        headers=bearer(world.staff),
    )
    assert wrong.status_code == 422 and error_of(wrong)["field"] == "user_id"


def test_the_usual_rules_apply(client: Any, world: SimpleNamespace) -> None:
    first = client.post(URL, json=_body(world), headers=bearer(world.staff))
    assert first.status_code == 201
    taken = client.post(URL, json=_body(world), headers=bearer(world.staff))
    assert taken.status_code == 409
    naive = client.post(
        URL, json=_body(world, start="2030-01-07T09:00:00"), headers=bearer(world.staff)
    )
    assert naive.status_code == 422 and error_of(naive)["field"] == "start"
    nobody = client.post(URL, json=_body(world, company_id=999999), headers=bearer(world.staff))
    assert nobody.status_code == 422 and error_of(nobody)["field"] == "company_id"


def test_tenancy_and_roles(client: Any, world: SimpleNamespace) -> None:
    other = client.post(URL, json=_body(world), headers=bearer(world.other_staff))
    assert other.status_code == 404
    sme = client.post(URL, json=_body(world), headers=bearer(world.member))
    assert sme.status_code == 403
    assert _db.session.scalar(select(Booking.id)) is None


def test_web_form(app: Any, world: SimpleNamespace) -> None:
    from tests.helpers import signed_in

    client = signed_in(app, world.staff)
    url = f"/manage/resources/{world.inst.id}/book-for"
    assert client.get(url).status_code == 200
    data = {
        "credit_code": world.member.company.credit_code,
        "email": world.member.email,
        "start": "2030-01-07T09:00",
        "end": "2030-01-07T11:00",
        "purpose": "电话预约",
    }
    unknown = client.post(url, data={**data, "credit_code": "91320100MA00000000"})
    assert unknown.status_code == 422 and 'id="credit_code-error"' in unknown.get_data(as_text=True)
    made = client.post(url, data=data)
    assert made.status_code == 302, made.get_data(as_text=True)[:500]
    booking = _db.session.scalar(select(Booking))
    assert booking is not None and booking.user_id == world.member.id
    assert booking.booked_by_id == world.staff.id
    page = client.get(made.headers["Location"]).get_data(as_text=True)
    assert "booking.create" in page  # its history on the booking page
    assert signed_in(app, world.other_staff).get(url).status_code == 404
