"""An open waitlist offer keeps the rules' buffer free around it, as a booking does:
nobody else can book next to the offered time meanwhile, so taking the offer cannot
fail on that neighbour, and the calendar shows the buffer. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from labshare.booking.availability import availability
from labshare.booking.bookings import cancel_booking, create_booking
from labshare.booking.policies import waitlist
from labshare.errors import SlotTaken
from labshare.extensions import db
from labshare.models import BookingStatus, Role, WaitlistStatus
from labshare.timeutil import set_clock
from tests import factories

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
END = dt.datetime(2030, 1, 7, 11, tzinfo=SH)
HOUR = dt.timedelta(hours=1)
HALF = dt.timedelta(minutes=30)
RULES = {**factories.OPEN_RULES, "max_active_per_company": 10}


def offered(buffer_minutes: int) -> SimpleNamespace:
    """09:00-11:00 booked by ``holder``, ``a`` in line for it, then the booking is
    cancelled: the slot is offered to ``a``. ``other`` is a third company."""
    set_clock(lambda: NOW)
    inst = factories.make_instrument(rules={**RULES, "buffer_minutes": buffer_minutes})
    holder, a, other = (factories.make_user(Role.SME) for _ in range(3))
    booking = create_booking(inst, holder, START, END, purpose="first")
    db.session.commit()
    entry = waitlist.join(inst, a, START, END, purpose="calibrate a gauge")
    db.session.commit()
    cancel_booking(booking, holder, "plans changed")
    db.session.commit()
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.OFFERED
    return SimpleNamespace(inst=inst, a=a, other=other, entry=entry)


def test_nobody_else_books_inside_the_buffer_of_an_offer(app: Any) -> None:
    env = offered(buffer_minutes=30)
    for start, end in ((END, END + HOUR), (START - HOUR, START)):
        with pytest.raises(SlotTaken) as info:
            create_booking(env.inst, env.other, start, end, purpose="next door")
        assert info.value.details == {"reason": "offered", "buffer_minutes": 30}
        db.session.rollback()
    after = create_booking(env.inst, env.other, END + HALF, END + HALF + HOUR, purpose="later")
    db.session.commit()
    assert after.status == BookingStatus.APPROVED
    taken = waitlist.accept_offer(env.entry, env.a)
    db.session.commit()
    assert (taken.start_at, taken.end_at) == (START.astimezone(dt.UTC), END.astimezone(dt.UTC))


def test_without_a_buffer_the_neighbour_may_book(app: Any) -> None:
    env = offered(buffer_minutes=0)
    create_booking(env.inst, env.other, END, END + HOUR, purpose="next door")
    db.session.commit()
    assert waitlist.accept_offer(env.entry, env.a).status == BookingStatus.APPROVED


def test_the_calendar_shows_the_buffer_around_an_offer(app: Any) -> None:
    env = offered(buffer_minutes=30)
    result = availability(env.inst, START - 2 * HOUR, END + 2 * HOUR)
    busy = [(i.start, i.end, i.reason) for i in result.busy]
    utc = dt.UTC
    assert (START.astimezone(utc), END.astimezone(utc), "offered") in busy
    assert ((START - HALF).astimezone(utc), START.astimezone(utc), "buffer") in busy
    assert (END.astimezone(utc), (END + HALF).astimezone(utc), "buffer") in busy
