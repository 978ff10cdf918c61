"""Two admins add the same public holiday over bookings at once, in real threads
(each its own session and connection): each booker and the staff are told exactly
once, and nothing stays approved on the day. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from labshare.booking import holiday_admin
from labshare.extensions import db as _db
from labshare.models import Booking, BookingStatus, Notification, Role
from labshare.timeutil import set_clock
from tests import factories, raceutil
from tests.booking.test_holiday_closes_race import DAY, NOW, local


@pytest.mark.parametrize("on_bookings", ["ask_move", "cancel"])
def test_two_admins_adding_the_same_day_tell_everyone_once(
    app: Flask, db: Any, on_bookings: str
) -> None:
    set_clock(lambda: NOW)
    inst = factories.make_instrument(rules=dict(factories.OPEN_RULES))
    factories.make_user(Role.STAFF, institute=inst.institute)
    for hour in (9, 11):
        factories.make_booking(
            resource=inst, start=local(hour), end=local(hour + 1), status=BookingStatus.APPROVED
        )
    db.session.commit()
    db.session.remove()

    def admin_step(delay: float) -> Callable[[], Callable[[], list[int]]]:
        def prepare() -> Callable[[], list[int]]:
            def act() -> list[int]:
                time.sleep(delay)
                added = holiday_admin.add_day(
                    None,
                    day=DAY.isoformat(),
                    kind="holiday",
                    name="国庆节",
                    on_bookings=on_bookings,
                )
                time.sleep(0.3)  # the other one starts meanwhile
                return added.bookings_inside

            return act

        return prepare

    results = raceutil.race(app, [admin_step(0.0), admin_step(0.1)])
    assert all(r.ok for r in results), [r.error for r in results]
    per_user = _db.session.execute(
        select(Notification.kind, Notification.user_id, func.count(Notification.id)).group_by(
            Notification.kind, Notification.user_id
        )
    ).all()
    kinds = {kind for kind, _user, _n in per_user}
    assert {"closure_notice", "holiday_bookings"} <= kinds
    assert all(n == 1 for _kind, _user, n in per_user), per_user
    approved = _db.session.scalar(
        select(func.count(Booking.id)).where(Booking.status == BookingStatus.APPROVED)
    )
    assert approved == 0
