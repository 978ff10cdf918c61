"""A booking being created on a day while an admin adds that day as a public holiday,
in real threads (each its own session and connection), on a database whose calendar
was never changed before: the booking is refused, or it is held or cancelled with the
others; it never stays approved on the holiday. Either may go first. On SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select

from labshare.booking import holiday_admin, workdays
from labshare.booking.bookings import create_booking
from labshare.extensions import db as _db
from labshare.models import Booking, BookingStatus, CalendarState, Resource, Role, User
from labshare.timeutil import set_clock
from tests import factories, raceutil

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 9, 1, 0, 0, tzinfo=dt.UTC)
DAY = dt.date(2030, 10, 1)
HOLD = 0.6  # how long the first one keeps its transaction open
HEAD_START = 0.2


def local(hour: int) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(hour), SH)


@pytest.mark.parametrize("first", ["booking", "admin"])
@pytest.mark.parametrize("on_bookings", ["ask_move", "cancel"])
def test_a_booking_racing_a_new_holiday_never_stays_approved_on_it(
    app: Flask, db: Any, first: str, on_bookings: str
) -> None:
    set_clock(lambda: NOW)
    inst = factories.make_instrument(rules=dict(factories.OPEN_RULES))
    other = factories.make_instrument(lab=inst.lab, rules=dict(factories.OPEN_RULES))
    sme = factories.make_user(Role.SME)
    # another booking on the day, on another instrument: the admin has work to do
    factories.make_booking(
        resource=other, start=local(9), end=local(10), status=BookingStatus.APPROVED
    )
    db.session.commit()
    assert db.session.scalar(select(CalendarState.token)) == workdays.EMPTY_TOKEN
    inst_id, sme_id = inst.id, sme.id
    db.session.remove()

    def booking_step() -> Callable[[], int]:
        resource = _db.session.get(Resource, inst_id)
        user = _db.session.get(User, sme_id)

        def act() -> int:
            if first == "admin":
                time.sleep(HEAD_START)
            booking = create_booking(resource, user, local(14), local(16), purpose="race")
            if first == "booking":
                time.sleep(HOLD)  # commits after the admin has added the holiday
            return booking.id

        return act

    def admin_step() -> Callable[[], list[int]]:
        def act() -> list[int]:
            if first == "booking":
                time.sleep(HEAD_START)  # the booking has read the calendar by now
            added = holiday_admin.add_day(
                None, day=DAY.isoformat(), kind="holiday", name="国庆节", on_bookings=on_bookings
            )
            if first == "admin":
                time.sleep(HOLD)  # commits after the booking has started
            return added.bookings_inside

        return act

    booked, added = raceutil.race(app, [booking_step, admin_step])
    assert added.ok, added.error
    if booked.ok:
        assert booked.value in (added.value or [])
        status = _db.session.get(Booking, booked.value).status
        assert status == (
            BookingStatus.CANCELLED if on_bookings == "cancel" else BookingStatus.PENDING
        )
    else:
        assert getattr(booked.error, "rule", None) == "holiday", booked.error
    approved = _db.session.scalars(
        select(Booking.id).where(
            Booking.status == BookingStatus.APPROVED,
            Booking.start_at < local(23),
            Booking.end_at > local(0),
        )
    ).all()
    assert approved == []
