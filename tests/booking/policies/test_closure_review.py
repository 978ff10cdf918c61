"""A booking a closure put back to pending cannot be approved again inside it; a lab
closure cancels a group booking of the lab and its instruments. On SQLite and
PostgreSQL."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from labshare.booking.policies import groups
from labshare.extensions import db as _db
from labshare.models import Booking, BookingStatus
from tests.booking.policies.test_booking_groups import END, START
from tests.booking.policies.test_booking_groups import env as group_env  # noqa: F401
from tests.booking.policies.test_closure_notices import CLOSURE, _url, world  # noqa: F401
from tests.helpers import bearer


def test_a_held_booking_cannot_be_approved_inside_the_closure(
    client: Any,
    world: SimpleNamespace,  # noqa: F811
) -> None:
    made = client.post(
        _url(world), json={**CLOSURE, "on_bookings": "ask_move"}, headers=world.headers
    )
    assert made.status_code == 201, made.get_json()
    held = world.bookings[0]
    approve = client.post(f"/api/v1/bookings/{held.id}/approve", headers=world.headers)
    assert approve.status_code in (409, 422), approve.get_json()
    _db.session.expire_all()
    assert _db.session.get(Booking, held.id).status == BookingStatus.PENDING


def test_a_lab_closure_cancels_a_group_booking_inside_it(
    client: Any,
    group_env: SimpleNamespace,  # noqa: F811
) -> None:
    """Closing the lab covers the group's lab and instrument members: cancelling the
    first moves the group, and the second (already cancelled with it) is not refused."""
    env = group_env
    group = groups.create_group(env.lab, [env.a], env.sme, START, END, purpose="x")
    _db.session.commit()
    body = {
        "start": START.isoformat(),
        "end": END.isoformat(),
        "kind": "maintenance",
        "on_bookings": "cancel",
    }
    made = client.post(
        f"/api/v1/catalogue/resources/{env.lab.id}/closures", json=body, headers=bearer(env.staff)
    )
    assert made.status_code == 201, made.get_json()
    _db.session.expire_all()
    statuses = set(_db.session.scalars(select(Booking.status).where(Booking.group_id == group.id)))
    assert statuses == {BookingStatus.CANCELLED}
