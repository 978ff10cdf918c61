"""Review checks of bookings displaced by a holiday: a booking held (back to pending)
on the new holiday cannot be approved again by staff; bad choices on the command line
write nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.booking import transitions
from labshare.errors import RuleViolation
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, CalendarDay, Notification
from labshare.timeutil import set_clock
from tests import factories
from tests.booking.test_holiday_closes_bookings import (  # noqa: F401
    DAY,
    _add,
    _approved_on_day,
    local,
    world,
)


def test_a_held_booking_on_a_new_holiday_cannot_be_approved_again(
    client: Any,
    world: SimpleNamespace,  # noqa: F811
) -> None:
    response = _add(client, world, on_bookings="ask_move")
    assert response.status_code == 201, response.get_json()
    db.session.expire_all()
    held = db.session.get(Booking, world.bookings[0].id)
    assert held.status == BookingStatus.PENDING
    with pytest.raises(RuleViolation):
        transitions.approve_booking(held, world.staff)
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Booking, held.id).status == BookingStatus.PENDING
    assert _approved_on_day() == 0


def test_a_notice_read_after_its_reader_left_shows_no_booking_of_the_old_tenant(
    client: Any,
    world: SimpleNamespace,  # noqa: F811
) -> None:
    """The messages are worded when read: a booker who left the company, or staff
    moved to another institute, see none of the old one's bookings then."""
    response = _add(client, world, on_bookings="ask_move")
    assert response.status_code == 201, response.get_json()
    first = world.bookings[0]
    staff_note = db.session.scalars(
        select(Notification).where(Notification.kind == "holiday_bookings")
    ).one()
    booker_note = db.session.scalars(
        select(Notification).where(
            Notification.kind == "closure_notice", Notification.user_id == world.first.id
        )
    ).one()
    assert f"/bookings/{first.id}" in staff_note.body_text
    assert f"/bookings/{first.id}" in booker_note.body_text
    note_ids = (staff_note.id, booker_note.id)
    booking_ids = [b.id for b in world.bookings]
    world.staff.institute = factories.make_institute()
    world.first.company = factories.make_company()
    db.session.commit()
    db.session.expunge_all()  # the rows as a later request reads them
    for note_id in note_ids:
        note = db.session.get(Notification, note_id)
        assert note is not None
        for booking_id in booking_ids:
            assert f"/bookings/{booking_id}" not in note.body_text
            assert db.session.get(Booking, booking_id).company.name not in note.body_text


def test_cancelling_on_a_holiday_added_while_a_booking_runs_is_refused_whole(
    client: Any,
    world: SimpleNamespace,  # noqa: F811
) -> None:
    """A booking already begun cannot be cancelled: adding the day with cancel is
    refused (not a 500) and writes nothing."""
    set_clock(lambda: local(DAY, 9) + dt.timedelta(minutes=30))
    response = _add(client, world, on_bookings="cancel")
    assert 400 <= response.status_code < 500, response.get_json()
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Booking, world.bookings[0].id).status == BookingStatus.APPROVED
    assert db.session.scalar(select(func.count(CalendarDay.id))) == 1
    assert db.session.scalar(select(func.count(Notification.id))) == 0


def test_asking_to_move_on_a_holiday_added_while_a_booking_runs_is_refused_whole(
    client: Any,
    world: SimpleNamespace,  # noqa: F811
) -> None:
    """Put back to pending, a visit in progress would expire undecided: asking the
    companies to move is refused like a cancel (409, not a 500) and writes nothing."""
    set_clock(lambda: local(DAY, 9) + dt.timedelta(minutes=30))
    response = _add(client, world, on_bookings="ask_move")
    assert response.status_code == 409, response.get_json()
    error = response.get_json()["error"]
    assert "cannot be moved" in error["message"]
    assert error["booking_id"] == world.bookings[0].id
    assert error["resource_id"] == world.bookings[0].resource_id
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Booking, world.bookings[0].id).status == BookingStatus.APPROVED
    assert db.session.scalar(select(func.count(CalendarDay.id))) == 1
    assert db.session.scalar(select(func.count(Notification.id))) == 0
