"""Every way staff book for a company (one booking, a bundle instrument, a lab with
instruments, a recurring series; the API and the web form) records the staff member
on every booking made (``booked_by_id``) and in the audit log, tells the company
exactly once, refuses staff of another institute (404) and a company that is not
confirmed (403), writing nothing then. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from labshare.extensions import db as _db
from labshare.models import (
    AuditLog,
    Booking,
    BookingGroup,
    BookingSeries,
    CompanyStatus,
    Notification,
    Role,
    User,
)
from labshare.timeutil import set_clock
from tests.factories import OPEN_RULES
from tests.helpers import END, NOW, START, bearer, count_rows, signed_in

WEB_START, WEB_END = "2030-01-07T09:00", "2030-01-07T11:00"


@pytest.fixture
def world(db: Any, make_lab: Any, make_instrument: Any, make_user: Any, make_company: Any) -> Any:
    set_clock(lambda: NOW)
    lab = make_lab(capacity=2, rules=dict(OPEN_RULES))
    single = make_instrument(lab=lab)
    bundled = make_instrument(lab=lab, bundle="XRD")
    sibling = make_instrument(lab=lab, bundle="XRD")
    staff = make_user(Role.STAFF, institute_id=lab.institute_id)
    other_staff = make_user(Role.STAFF)
    member = make_user(Role.SME, company_admin=True)
    colleague = make_user(Role.SME, company=member.company)
    unconfirmed = make_user(
        Role.SME, company=make_company(status=CompanyStatus.PENDING), company_admin=True
    )
    _db.session.commit()
    return SimpleNamespace(**locals())


def _writes() -> tuple[int, ...]:
    """Rows a booking would write (signing in on the web audits the login: not counted)."""
    booking_audit = _db.session.scalars(
        select(AuditLog.id).where(
            AuditLog.object_type.in_(("booking", "booking_group", "booking_series"))
        )
    ).all()
    rows = (count_rows(m) for m in (Booking, BookingGroup, BookingSeries, Notification))
    return (*rows, len(booking_audit))


# -- the paths: (name, how many bookings it makes, the call) -------------------------------


def _api(url: str, body: Callable[[Any, User], dict[str, Any]]) -> Callable[..., Any]:
    def call(app: Any, client: Any, world: Any, staff: User, booker: User) -> Any:
        payload = {"company_id": booker.company_id, **body(world, booker)}
        return client.post(f"/api/v1{url}", json=payload, headers=bearer(staff))

    return call


def _one(resource: str) -> Callable[[Any, User], dict[str, Any]]:
    def body(world: Any, booker: User) -> dict[str, Any]:
        return {
            "resource_id": getattr(world, resource).id,
            "start": START,
            "end": END,
            "purpose": "电话预约",
        }

    return body


def _group_body(world: Any, booker: User) -> dict[str, Any]:
    return {
        "lab_id": world.lab.id,
        "instrument_ids": [world.single.id],
        "start": START,
        "end": END,
        "purpose": "电话预约",
    }


def _series_body(world: Any, booker: User) -> dict[str, Any]:
    return {
        **_one("single")(world, booker),
        "recurrence": {"freq": "weekly", "count": 3},
    }


def _web(resource: str, **extra: Any) -> Callable[..., Any]:
    def call(app: Any, client: Any, world: Any, staff: User, booker: User) -> Any:
        data = {
            "credit_code": booker.company.credit_code,
            "start": WEB_START,
            "end": WEB_END,
            "purpose": "电话预约",
        }
        ids = extra.get("instrument_ids")
        if ids:
            data["instrument_ids"] = [str(getattr(world, n).id) for n in ids]
        data.update({k: v for k, v in extra.items() if k != "instrument_ids"})
        url = f"/manage/resources/{getattr(world, resource).id}/book-for"
        return signed_in(app, staff).post(url, data=data)

    return call


PATHS = {
    "api-single": (1, _api("/bookings/on-behalf", _one("single"))),
    "api-bundle": (2, _api("/bookings/on-behalf", _one("bundled"))),
    "api-group": (2, _api("/booking-groups/on-behalf", _group_body)),
    "api-series": (3, _api("/series/on-behalf", _series_body)),
    "web-single": (1, _web("single")),
    "web-bundle": (2, _web("bundled")),
    "web-group": (2, _web("lab", instrument_ids=["single"])),
    "web-series": (3, _web("single", freq="weekly", ends="count", count="3", interval="1")),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_recorded_audited_and_told_once(app: Any, client: Any, world: Any, path: str) -> None:
    made, call = PATHS[path]
    response = call(app, client, world, world.staff, world.member)
    assert response.status_code in (201, 302), response.get_data(as_text=True)[:800]
    _db.session.expire_all()
    booked = _db.session.scalars(select(Booking).order_by(Booking.id)).all()
    assert len(booked) == made
    assert {b.booked_by_id for b in booked} == {world.staff.id}
    assert {b.company_id for b in booked} == {world.member.company_id}
    assert {b.user_id for b in booked} == {world.member.id}
    entries = _db.session.scalars(select(AuditLog)).all()
    creations = [e for e in entries if e.action.endswith(".create")]
    assert creations and {e.actor_id for e in creations} == {world.staff.id}
    for entry in creations:
        assert (entry.data or {}).get("on_behalf_of") == world.member.company_id, entry.action
    # the company (any of its members) is told exactly once, and told who booked
    company_ids = (world.member.id, world.colleague.id)
    told = _db.session.scalars(
        select(Notification).where(Notification.user_id.in_(company_ids))
    ).all()
    assert len(told) == 1, [n.kind for n in told]
    assert "made this booking for your company" in told[0].body_text
    # running it again (a double submit) books nothing more and tells nobody again
    again = call(app, client, world, world.staff, world.member)
    assert again.status_code in (409, 422), again.get_data(as_text=True)[:300]
    _db.session.expire_all()
    assert count_rows(Booking) == made
    told_after = _db.session.scalars(
        select(Notification.id).where(Notification.user_id.in_(company_ids))
    ).all()
    assert len(told_after) == 1


@pytest.mark.parametrize("path", list(PATHS))
def test_staff_of_another_institute_write_nothing(
    app: Any, client: Any, world: Any, path: str
) -> None:
    _, call = PATHS[path]
    before = _writes()
    response = call(app, client, world, world.other_staff, world.member)
    assert response.status_code in (403, 404), response.status_code
    _db.session.expire_all()
    assert _writes() == before


@pytest.mark.parametrize("path", list(PATHS))
def test_a_company_not_confirmed_is_refused(app: Any, client: Any, world: Any, path: str) -> None:
    _, call = PATHS[path]
    before = _writes()
    response = call(app, client, world, world.staff, world.unconfirmed)
    assert response.status_code == 403, response.get_data(as_text=True)[:500]
    if path.startswith("api"):
        assert response.get_json()["error"]["rule"] == "company_not_confirmed"
    _db.session.expire_all()
    assert _writes() == before


def test_web_series_with_instruments_ticked_is_refused(app: Any, world: Any) -> None:
    call = _web("lab", instrument_ids=["single"], freq="weekly", ends="count", count="2")
    response = call(app, None, world, world.staff, world.member)
    assert response.status_code == 422
    assert "untick the instruments" in response.get_data(as_text=True)
    assert count_rows(Booking) == 0


def test_the_form_offers_the_lab_instruments_and_repeat(app: Any, world: Any) -> None:
    page = signed_in(app, world.staff).get(f"/manage/resources/{world.lab.id}/book-for")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'name="instrument_ids" value="{world.single.id}"' in html
    assert 'name="freq"' in html


def test_staff_see_who_booked_in_their_copy_without_the_company_line(
    client: Any, world: Any
) -> None:
    world.lab.rules.requires_approval = True  # staff are told of a pending request
    _db.session.commit()
    body = {"company_id": world.member.company_id, **_group_body(world, world.member)}
    response = client.post(
        "/api/v1/booking-groups/on-behalf", json=body, headers=bearer(world.staff)
    )
    assert response.status_code == 201, response.get_json()
    staff_notes = _db.session.scalars(
        select(Notification).where(Notification.user_id == world.staff.id)
    ).all()
    assert len(staff_notes) == 1 and staff_notes[0].kind == "booking_requested"
    assert "made this booking for your company" not in staff_notes[0].body_text
    assert "Booked together with" in staff_notes[0].body_text
