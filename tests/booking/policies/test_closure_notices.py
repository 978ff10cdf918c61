"""A closure over bookings: shown first (409 / dry run), then cancelled or put back to
pending at the staff's choice; each company told once with alternatives; nothing stays
approved inside."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.extensions import db as _db
from labshare.models import Booking, BookingStatus, Closure, Notification, Role
from labshare.timeutil import set_clock
from tests.helpers import NOW, bearer, error_of

DAY = dt.datetime(2030, 1, 8, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
CLOSURE = {
    "start": "2030-01-08T08:00:00+08:00",
    "end": "2030-01-08T13:00:00+08:00",
    "kind": "maintenance",
}


@pytest.fixture
def world(db: Any, make_instrument: Any, make_user: Any, make_booking: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    inst = make_instrument()
    twin = make_instrument(lab=inst.lab)  # same measurand and range: an equivalent
    far = make_instrument()  # another institute's equivalent
    staff = make_user(Role.STAFF, institute_id=inst.institute_id)
    booked = []
    for hour in range(3):
        sme = make_user(Role.SME)
        booked.append(
            make_booking(
                resource=inst,
                user=sme,
                start=DAY + dt.timedelta(hours=hour),
                end=DAY + dt.timedelta(hours=hour + 1),
                status=BookingStatus.APPROVED,
            )
        )
    _db.session.commit()
    return SimpleNamespace(
        inst=inst, twin=twin, far=far, staff=staff, bookings=booked, headers=bearer(staff)
    )


def _url(world: SimpleNamespace) -> str:
    return f"/api/v1/catalogue/resources/{world.inst.id}/closures"


def _notices() -> list[Notification]:
    return list(
        _db.session.scalars(select(Notification).where(Notification.kind == "closure_notice"))
    )


def test_closure_over_bookings_is_shown_first(client: Any, world: SimpleNamespace) -> None:
    refused = client.post(_url(world), json=CLOSURE, headers=world.headers)
    assert refused.status_code == 409
    error = error_of(refused)
    assert error["code"] == "conflict"
    assert [b["id"] for b in error["bookings"]] == [b.id for b in world.bookings]
    dry = client.post(_url(world), json={**CLOSURE, "dry_run": True}, headers=world.headers)
    assert dry.status_code == 200
    assert dry.get_json()["id"] is None and len(dry.get_json()["bookings"]) == 3
    assert _db.session.scalar(select(func.count(Closure.id))) == 0
    assert _notices() == []
    bad = client.post(_url(world), json={**CLOSURE, "on_bookings": "ignore"}, headers=world.headers)
    assert bad.status_code == 422 and error_of(bad)["field"] == "on_bookings"


@pytest.mark.parametrize(
    ("choice", "status"),
    [("ask_move", BookingStatus.PENDING), ("cancel", BookingStatus.CANCELLED)],
)
def test_closure_over_three_bookings(
    client: Any, world: SimpleNamespace, choice: str, status: BookingStatus
) -> None:
    body = {**CLOSURE, "on_bookings": choice, "message": "真空泵故障维修"}
    made = client.post(_url(world), json=body, headers=world.headers)
    assert made.status_code == 201, made.get_json()
    assert len(made.get_json()["bookings"]) == 3
    _db.session.expire_all()
    for booking in world.bookings:
        assert _db.session.get(Booking, booking.id).status == status
    inside = _db.session.scalar(
        select(func.count(Booking.id)).where(
            Booking.resource_id == world.inst.id, Booking.status == BookingStatus.APPROVED
        )
    )
    assert inside == 0  # nothing stays approved inside the closure
    notices = _notices()
    assert sorted(n.user_id for n in notices) == sorted(b.user_id for b in world.bookings)
    for notice in notices:
        assert "真空泵故障维修" in notice.body_text
        # alternatives: the twin in the same lab comes before the other institute's
        assert world.twin.name_en in notice.body_text
        text = notice.body_text
        assert text.index(world.twin.name_en) < text.index(world.far.name_en)
    # the standard cancellation notice is replaced by the closure's: one message each
    per_user = _db.session.execute(
        select(Notification.user_id, func.count(Notification.id)).group_by(Notification.user_id)
    ).all()
    assert all(count == 1 for _user, count in per_user)


def test_notice_sent_once_even_when_run_twice(client: Any, world: SimpleNamespace) -> None:
    from labshare.booking import displaced
    from labshare.booking.policies import closures

    body = {**CLOSURE, "on_bookings": "ask_move"}
    assert client.post(_url(world), json=body, headers=world.headers).status_code == 201
    closure = _db.session.scalar(select(Closure))
    inside = [
        displaced.Displaced(b, (closure.start_at, closure.end_at))
        for b in _db.session.scalars(select(Booking))
    ]
    notice = closures.notice(closure, world.inst, {world.inst.id})
    assert displaced.tell(inside, notice, cancelled=False, text=None) == 0
    _db.session.commit()
    assert len(_notices()) == 3


def test_other_institute_staff_cannot_close(
    client: Any, world: SimpleNamespace, make_user: Any
) -> None:
    other = make_user(Role.STAFF)
    _db.session.commit()
    response = client.post(
        _url(world), json={**CLOSURE, "on_bookings": "cancel"}, headers=bearer(other)
    )
    assert response.status_code == 404
    assert _notices() == []
