"""A message about a booking that is delivered after the booking changed shows the
booking as it is at delivery: a reminder queued before a move is not sent, and the
one that is sent is for the new time, relative to the new time, once; a reminder of
a cancelled booking is not sent; a booking event delivered after a change says that
it tells of the past. The scheduler's ``deliver`` job runs after the change, against
a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from icalendar import Calendar
from sqlalchemy import select, update

from labshare.booking import bookings
from labshare.booking import move as moving
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.messaging import mail, notify
from labshare.models import Booking, BookingStatus, Notification, NotificationStatus, Role
from tests import factories
from tests.factories import OPEN_RULES
from tests.jobsutil import T0, SmtpServer, freeze

NEW_START = T0 + dt.timedelta(days=2)  # Wednesday 09:00 in Shanghai


def _text(msg: Any) -> str:
    return str(msg.get_body(preferencelist=("plain",)).get_content())


def _reminder_mails(smtp: SmtpServer) -> list[Any]:
    """The reminders among the mails (a move also tells of itself)."""
    return [m for m in smtp.messages if m["Subject"].strip().startswith("Reminder")]


@pytest.fixture
def env(app: Any) -> SimpleNamespace:
    app.config["REMINDER_HOURS"] = [24]
    instrument = factories.make_instrument(rules=dict(OPEN_RULES))
    sme = factories.make_user(Role.SME, email="wang@example.com")
    staff = factories.make_user(Role.STAFF, institute=instrument.institute)
    booking = factories.make_booking(
        status=BookingStatus.APPROVED,
        start=T0,
        end=T0 + dt.timedelta(hours=2),
        resource=instrument,
        user=sme,
    )
    db.session.commit()
    return SimpleNamespace(instrument=instrument, sme=sme, staff=staff, booking=booking)


def _reminders(booking_id: int) -> list[Notification]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Notification).where(
                Notification.booking_id == booking_id, Notification.kind == notify.REMINDER_KIND
            )
        )
    )


def _move(env: SimpleNamespace, start: dt.datetime) -> None:
    booking = db.session.get(Booking, env.booking.id)
    assert booking is not None
    moving.move_booking(booking, env.staff, start, start + dt.timedelta(hours=2))
    db.session.commit()


def test_a_reminder_queued_before_a_move_is_for_the_new_time_once(
    env: SimpleNamespace, smtp: SmtpServer
) -> None:
    freeze(T0 - dt.timedelta(hours=23))
    run_job("reminders")  # queued for Monday, not delivered yet
    assert len(_reminders(env.booking.id)) == 1
    _move(env, NEW_START)
    run_job("deliver")
    assert _reminder_mails(smtp) == []  # nothing for the old time
    assert _reminders(env.booking.id) == []
    # The job sends relative to the new time: not yet 24 h before it ...
    run_job("reminders")
    run_job("deliver")
    assert _reminder_mails(smtp) == []
    # ... then once, for the new time.
    freeze(NEW_START - dt.timedelta(hours=23))
    for _ in range(2):
        run_job("reminders")
        run_job("deliver")
    [msg] = _reminder_mails(smtp)
    assert "Wednesday, January 9, 2030 09:00–11:00" in _text(msg)
    assert "Monday, January 7" not in _text(msg)
    assert "January 9" in msg["Subject"]
    [ics] = list(msg.iter_attachments())
    assert Calendar.from_ical(ics.get_content()).walk("VEVENT")[0].decoded("dtstart") == NEW_START


def test_a_reminder_sent_before_a_move_is_kept_and_one_follows_for_the_new_time(
    env: SimpleNamespace, smtp: SmtpServer
) -> None:
    freeze(T0 - dt.timedelta(hours=23))
    run_job("reminders")
    run_job("deliver")
    assert len(_reminder_mails(smtp)) == 1
    _move(env, T0 + dt.timedelta(minutes=30))  # 23.5 h ahead: inside the 24 h window
    for _ in range(2):
        run_job("reminders")
        run_job("deliver")
    reminders = _reminder_mails(smtp)
    assert len(reminders) == 2
    assert "09:30–11:30" in _text(reminders[1])
    rows = _reminders(env.booking.id)
    assert len(rows) == 2 and {r.status for r in rows} == {NotificationStatus.SENT}


def test_a_reminder_of_a_cancelled_booking_is_not_sent(
    env: SimpleNamespace, smtp: SmtpServer
) -> None:
    freeze(T0 - dt.timedelta(hours=23))
    run_job("reminders")
    booking = db.session.get(Booking, env.booking.id)
    assert booking is not None
    bookings.cancel_booking(booking, env.staff, "仪器故障")
    db.session.commit()
    assert _reminders(env.booking.id) == []  # the unsent reminder went with the approval
    run_job("reminders")
    run_job("deliver")
    assert _reminder_mails(smtp) == []


def test_the_sender_drops_a_reminder_that_no_longer_applies(
    env: SimpleNamespace, smtp: SmtpServer
) -> None:
    """Whatever changed the booking (here a bare UPDATE, no signal), a reminder is
    sent only while its booking is approved and ahead."""
    freeze(T0 - dt.timedelta(hours=23))
    run_job("reminders")
    db.session.execute(
        update(Booking).where(Booking.id == env.booking.id).values(status=BookingStatus.CANCELLED)
    )
    db.session.commit()
    assert run_job("deliver")["dropped"] == 1
    assert smtp.messages == [] and _reminders(env.booking.id) == []


def test_a_reminder_taken_for_sending_before_a_move_is_not_sent(
    env: SimpleNamespace, smtp: SmtpServer
) -> None:
    freeze(T0 - dt.timedelta(hours=23))
    run_job("reminders")
    ids = mail.claim(10)  # the sender has taken it (status sending) ...
    assert len(ids) == 1
    db.session.commit()
    _move(env, NEW_START)  # ... when the booking moves
    [row] = _reminders(env.booking.id)
    assert row.status == NotificationStatus.SENDING and notify.MOVED_MARK in row.dedupe_key
    report = mail.DeliveryReport()
    mail._deliver_claimed(ids, report)
    assert report.dropped == 1 and report.sent == 0 and _reminder_mails(smtp) == []


def test_a_booking_event_delivered_after_a_change_says_it_tells_of_the_past(
    env: SimpleNamespace, smtp: SmtpServer
) -> None:
    freeze(T0 - dt.timedelta(days=3))
    booking = bookings.create_booking(
        env.instrument,
        env.sme,
        NEW_START,
        NEW_START + dt.timedelta(hours=1),
        purpose="校准",
    )
    db.session.commit()  # "confirmed" queued
    staff_copy = db.session.get(Booking, booking.id)
    assert staff_copy is not None
    moving.move_booking(
        staff_copy, env.staff, NEW_START + dt.timedelta(hours=3), NEW_START + dt.timedelta(hours=4)
    )
    bookings.cancel_booking(staff_copy, env.staff, "停电")
    db.session.commit()
    run_job("deliver")
    confirmed = [m for m in smtp.messages if "confirmed" in m["Subject"]]
    assert len(confirmed) == 1
    text = _text(confirmed[0])
    assert "the booking has changed since" in text
    assert "Status: Cancelled" in text
    assert "12:00–13:00" in text  # the time it has now, not the one confirmed
