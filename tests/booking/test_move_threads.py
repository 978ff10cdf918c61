"""Moves racing in threads of one process against the real database (each thread its
own session and connection): a move and a creation into one slot, and two bookings
moved into each other's time at once (no deadlock, both refused)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select

from labshare.booking.move import move_booking
from labshare.errors import SlotTaken
from labshare.extensions import db
from labshare.models import HOLDING_STATUSES, Booking, BookingStatus, Role, User
from labshare.timeutil import set_clock
from tests import factories, raceutil

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "requires_approval": False,
    "max_active_per_company": 50,
    "cancel_deadline_hours": 0,
}
A = dt.datetime(2030, 1, 3, 2, tzinfo=dt.UTC)
B = dt.datetime(2030, 1, 3, 4, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def move_step(booking_id: int, user_id: int, start: dt.datetime) -> raceutil.Step[Booking]:
    def prepare() -> Callable[[], Booking]:
        set_clock(lambda: NOW)
        booking = db.session.get(Booking, booking_id)
        user = db.session.get(User, user_id)
        assert booking is not None and user is not None
        return lambda: move_booking(booking, user, start, start + HOUR)

    return prepare


def _holding(resource_id: int) -> list[tuple[int, dt.datetime]]:
    db.session.expire_all()
    return [
        (b.id, b.start_at)
        for b in db.session.scalars(
            select(Booking)
            .where(Booking.resource_id == resource_id, Booking.status.in_(HOLDING_STATUSES))
            .order_by(Booking.start_at)
        )
    ]


def test_a_move_and_a_creation_into_one_slot(app: Flask, db: Any) -> None:
    set_clock(lambda: NOW)
    inst = factories.make_instrument(rules=RULES)
    mover, creator = factories.make_user(Role.SME), factories.make_user(Role.SME)
    booking = factories.make_booking(
        resource=inst, user=mover, start=A, status=BookingStatus.APPROVED, end=A + HOUR
    )
    db.session.commit()
    ids = (inst.id, booking.id, mover.id, creator.id)
    db.session.remove()
    for round_ in range(3):
        target = B + round_ * 2 * HOUR  # a fresh slot each round
        outcomes = raceutil.race(
            app,
            [
                move_step(ids[1], ids[2], target),
                raceutil.booking_step(ids[0], ids[3], target, target + HOUR),
            ],
        )
        got = raceutil.labels(outcomes, "ok", {SlotTaken: "taken"})
        assert sorted(got) == ["ok", "taken"], got
        rows = _holding(ids[0])
        assert [s for _, s in rows].count(target) == 1
        if got[0] == "ok":  # moved: the creator lost
            assert (ids[1], target) in rows
        else:  # booked: the mover's booking kept its time
            assert (ids[1], A) in rows
        moved = db.session.get(Booking, ids[1])
        moved.start_at, moved.end_at = A, A + HOUR  # back for the next round
        db.session.commit()
        db.session.remove()


def test_two_bookings_moved_into_each_others_time(app: Flask, db: Any) -> None:
    set_clock(lambda: NOW)
    inst = factories.make_instrument(rules=RULES)
    one, two = factories.make_user(Role.SME), factories.make_user(Role.SME)
    first = factories.make_booking(
        resource=inst, user=one, start=A, end=A + HOUR, status=BookingStatus.APPROVED
    )
    second = factories.make_booking(
        resource=inst, user=two, start=B, end=B + HOUR, status=BookingStatus.APPROVED
    )
    db.session.commit()
    ids = (inst.id, first.id, one.id, second.id, two.id)
    db.session.remove()
    outcomes = raceutil.race(app, [move_step(ids[1], ids[2], B), move_step(ids[3], ids[4], A)])
    assert raceutil.labels(outcomes, "ok", {SlotTaken: "taken"}) == ["taken", "taken"]
    assert _holding(ids[0]) == [(ids[1], A), (ids[3], B)]
