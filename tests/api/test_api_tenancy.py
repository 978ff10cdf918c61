"""Every booking endpoint x every kind of caller, with the status each must get.
Nobody reaches another tenant's booking by changing an id: they get 404, as if it
did not exist; the right tenant without the right role gets 403."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from labshare.extensions import db as _db
from labshare.models import Booking, BookingStatus, Role, User
from labshare.timeutil import set_clock
from tests.helpers import END, NOW, START, bearer

#: The booking under test: Tuesday 8 January 2030, 09:00-11:00 in Shanghai.
BOOKED_START = dt.datetime(2030, 1, 8, 1, 0, tzinfo=dt.UTC)
BOOKED_END = dt.datetime(2030, 1, 8, 3, 0, tzinfo=dt.UTC)

ACTORS = ("own_sme", "other_sme", "own_staff", "other_staff", "admin", "anonymous")

#: endpoint -> expected status per actor, in the order of ACTORS.
MATRIX: dict[str, tuple[int, ...]] = {
    "list": (200, 200, 200, 200, 200, 401),
    "detail": (200, 404, 200, 404, 200, 401),
    "create": (201, 201, 403, 403, 403, 401),
    "approve": (403, 404, 200, 404, 403, 401),
    "reject": (403, 404, 200, 404, 403, 401),
    "cancel": (200, 404, 200, 404, 403, 401),
    "usage": (403, 404, 200, 404, 403, 401),
}

#: Whether the list shows the booking to each actor (anonymous: no list at all).
LIST_SHOWS = {
    "own_sme": True,
    "other_sme": False,
    "own_staff": True,
    "other_staff": False,
    "admin": True,
}


@pytest.fixture
def world(
    db: Any,
    make_instrument: Any,
    make_user: Any,
    make_booking: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> SimpleNamespace:
    set_clock(lambda: NOW)
    # Bearer tokens need no password: skip scrypt, seven users per test add up.
    monkeypatch.setattr(User, "set_password", lambda self, _p: setattr(self, "password_hash", "!"))
    inst = make_instrument()
    other_inst = make_instrument()
    booker = make_user(Role.SME)
    colleague = make_user(Role.SME, company=booker.company)  # same company, not the booker
    world = SimpleNamespace(
        inst=inst,
        booking=make_booking(
            resource=inst,
            user=booker,
            start=BOOKED_START,
            end=BOOKED_END,
            status=BookingStatus.PENDING,
        ),
        own_sme=colleague,
        other_sme=make_user(Role.SME),
        own_staff=make_user(Role.STAFF, institute=inst.institute),
        other_staff=make_user(Role.STAFF, institute=other_inst.institute),
        admin=make_user(Role.ADMIN),
        anonymous=None,
    )
    db.session.commit()
    return world


def _request(client: Any, world: SimpleNamespace, endpoint: str, actor: str) -> Any:
    user = getattr(world, actor)
    headers = bearer(user) if user is not None else {}
    booking_id = world.booking.id
    if endpoint == "list":
        return client.get("/api/v1/bookings", headers=headers)
    if endpoint == "detail":
        return client.get(f"/api/v1/bookings/{booking_id}", headers=headers)
    if endpoint == "create":
        body = {"resource_id": world.inst.id, "start": START, "end": END, "purpose": "测量"}
        return client.post("/api/v1/bookings", json=body, headers=headers)
    if endpoint == "approve":
        return client.post(f"/api/v1/bookings/{booking_id}/approve", headers=headers)
    if endpoint == "reject":
        return client.post(
            f"/api/v1/bookings/{booking_id}/reject", json={"reason": "不行"}, headers=headers
        )
    if endpoint == "cancel":
        return client.post(f"/api/v1/bookings/{booking_id}/cancel", json={}, headers=headers)
    if endpoint == "usage":
        body = {
            "checked_in_at": "2030-01-08T09:00:00+08:00",
            "checked_out_at": "2030-01-08T11:00:00+08:00",
            "service_type": "testing",
            "samples_count": 1,
            "problem_solved": False,
        }
        return client.post(f"/api/v1/bookings/{booking_id}/usage", json=body, headers=headers)
    raise AssertionError(endpoint)


CASES = [
    pytest.param(endpoint, actor, statuses[i], id=f"{endpoint}-{actor}")
    for endpoint, statuses in MATRIX.items()
    for i, actor in enumerate(ACTORS)
]


@pytest.mark.parametrize(("endpoint", "actor", "expected"), CASES)
def test_tenancy(
    db: Any, client: Any, world: SimpleNamespace, endpoint: str, actor: str, expected: int
) -> None:
    if endpoint == "usage":
        world.booking.status = BookingStatus.APPROVED
        db.session.commit()
        set_clock(lambda: world.booking.end_at)  # usage is recorded once it has happened
    before = BookingStatus(world.booking.status)
    response = _request(client, world, endpoint, actor)
    assert response.status_code == expected, response.get_json()
    assert response.is_json
    if expected >= 400:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}[expected]
        assert response.get_json()["error"]["code"] == code
        _db.session.expire_all()
        assert _db.session.get(Booking, world.booking.id).status == before  # nothing changed
    if endpoint == "list" and expected == 200:
        ids = {b["id"] for b in response.get_json()["items"]}
        assert (world.booking.id in ids) is LIST_SHOWS[actor]
    if endpoint == "detail" and expected == 200:
        assert response.get_json()["id"] == world.booking.id


def test_list_does_not_leak_through_filters(db: Any, client: Any, world: SimpleNamespace) -> None:
    """Filtering by the other tenant's resource still shows nothing of theirs."""
    response = client.get(
        "/api/v1/bookings",
        query_string={"resource_id": world.inst.id},
        headers=bearer(world.other_sme),
    )
    assert response.get_json()["items"] == [] and response.get_json()["total"] == 0
