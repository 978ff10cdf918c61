"""Review of the engine's windows, approval re-check, waitlist and midnight:
findings pinned by tests. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select

from labshare.booking.bookings import (
    approve_booking,
    cancel_booking,
    create_booking,
    record_usage,
    reject_booking,
)
from labshare.booking.policies import waitlist
from labshare.errors import NotAllowed, SlotTaken
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, OpeningPeriod, Role, ServiceType, WaitlistStatus
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import bearer, error_of, flask_db

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
END = dt.datetime(2030, 1, 7, 11, tzinfo=SH)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)

pytestmark = pytest.mark.usefixtures("cheap_passwords")


def at(moment: dt.datetime) -> None:
    set_clock(lambda: moment)


def test_approval_on_a_lab_does_not_count_the_request_against_an_open_offer(
    app: Any,
) -> None:
    """A lab of capacity 2: a pending request and an offer fill it. The request
    already holds its unit, so approving it must not be refused for the offer."""
    at(NOW)
    lab = factories.make_lab(capacity=2, rules={**factories.OPEN_RULES, "requires_approval": True})
    staff = factories.make_user(Role.STAFF, institute=lab.institute)
    a, c, d = (factories.make_user(Role.SME) for _ in range(3))
    request = create_booking(lab, a, START, END, purpose="A")
    other = create_booking(lab, c, START, END, purpose="C")
    db.session.commit()
    entry = waitlist.join(lab, d, START, END, purpose="D")
    db.session.commit()
    cancel_booking(other, c)
    db.session.commit()
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.OFFERED
    approve_booking(request, staff)
    db.session.commit()
    assert request.status == BookingStatus.APPROVED


def _usage_early(app: Any, minutes: int) -> None:
    at(NOW)
    inst = factories.make_instrument(rules=dict(factories.OPEN_RULES))
    staff = factories.make_user(Role.STAFF, institute=inst.institute)
    holder, a, third = (factories.make_user(Role.SME) for _ in range(3))
    booking = create_booking(inst, holder, START, END, purpose="first")
    db.session.commit()
    entry = waitlist.join(inst, a, START + HOUR, END, purpose="the second hour")
    db.session.commit()
    at((START + HOUR + minutes * MINUTE).astimezone(dt.UTC))
    record_usage(
        booking,
        staff,
        checked_in_at=START,
        checked_out_at=START + HOUR + minutes * MINUTE,
        service_type=ServiceType.CALIBRATION,
        samples_count=1,
        problem_solved=True,
    )
    db.session.commit()
    assert booking.status == BookingStatus.COMPLETED
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.OFFERED
    with pytest.raises(SlotTaken):  # a third company cannot jump the line
        create_booking(inst, third, START + HOUR + 30 * MINUTE, END, purpose="me first")
    db.session.rollback()


def test_usage_recorded_before_the_end_offers_the_rest_to_the_waitlist(app: Any) -> None:
    """Recording usage completes the booking, which stops holding its time: what is
    left of it goes to the line, not to whoever books first."""
    _usage_early(app, 10)


def test_an_entry_is_offered_at_the_instant_its_slot_begins(app: Any) -> None:
    """Freed exactly at the entry's start: offered what is left of it, as a minute
    later (the take-offer window of a begun slot, not of its start)."""
    _usage_early(app, 0)


def test_the_downgrade_keeps_the_morning_of_a_period_opening_at_23_59(
    empty_app: Flask,
) -> None:
    """23:59-06:00 cannot keep its minute before midnight under the old schema, but
    its 00:00-06:00 of the next day can: the downgrade keeps it."""
    flask_db(empty_app, "upgrade")
    lab = factories.make_lab(
        hours=[OpeningPeriod(weekday=2, opens=dt.time(23, 59), closes=dt.time(6))]
    )
    lab_id = lab.id
    db.session.commit()
    db.session.remove()
    flask_db(empty_app, "downgrade", "0013_sessions_passwords")
    rows = db.session.execute(
        select(OpeningPeriod.weekday, OpeningPeriod.opens, OpeningPeriod.closes).where(
            OpeningPeriod.lab_id == lab_id
        )
    ).all()
    db.session.remove()
    assert [tuple(r) for r in rows] == [(3, dt.time(0), dt.time(6))]
    flask_db(empty_app, "upgrade")


def test_approval_refuses_a_request_whose_member_has_left(app: Any, client: Any) -> None:
    """Creation refuses a booker who is no longer an active member of a company;
    approval re-runs the creation checks, so it refuses such a request too (409
    nothing written), and rejecting it stays possible."""
    at(NOW)
    inst = factories.make_instrument(rules={**factories.OPEN_RULES, "requires_approval": True})
    staff = factories.make_user(Role.STAFF, institute=inst.institute, locale="zh_CN")
    sme = factories.make_user(Role.SME)
    booking = create_booking(inst, sme, START, END, purpose="A")
    db.session.commit()
    sme.active = False  # removed from the company meanwhile
    db.session.commit()
    response = client.post(f"/api/v1/bookings/{booking.id}/approve", headers=bearer(staff))
    assert response.status_code == 403
    assert "离开" in error_of(response)["message"]
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).status == BookingStatus.PENDING
    with pytest.raises(NotAllowed):
        approve_booking(booking, staff)
    db.session.rollback()
    reject_booking(booking, staff, "left the company")
    db.session.commit()
    assert booking.status == BookingStatus.REJECTED
