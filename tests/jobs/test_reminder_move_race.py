"""A booking moved by another connection while the deliver job holds its reminder
(taken for sending, about to be checked): the reminder is not sent, and exactly one
reminder follows, for the new time. The move runs in a real thread, with its own
session and connection, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from labshare.booking import move as moving
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.messaging import mail, notify
from labshare.models import Booking, BookingStatus, Role, User
from tests.jobs import test_reminders_after_change as after_change
from tests.jobs.test_reminders_after_change import _reminder_mails, _text
from tests.jobsutil import T0, SmtpServer, freeze

env = after_change.env  # the fixture


def test_a_move_committed_while_the_sender_checks_its_reminder(
    app: Any, env: Any, smtp: SmtpServer, monkeypatch: Any
) -> None:
    freeze(T0 - dt.timedelta(hours=23))
    run_job("reminders")
    new_start = T0 + dt.timedelta(minutes=30)  # still inside the 24 h window
    errors: list[BaseException] = []
    # read here: the thread must not touch the objects of this thread's session
    booking_id, staff_id = env.booking.id, env.staff.id

    def move_elsewhere() -> None:
        with app.app_context():
            try:
                booking = db.session.get(Booking, booking_id)
                staff = db.session.get(User, staff_id)
                assert booking is not None and staff is not None
                moving.move_booking(booking, staff, new_start, new_start + dt.timedelta(hours=2))
                db.session.commit()
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                db.session.remove()

    real_applies = notify.reminder_applies
    moved = threading.Event()

    def applies_after_a_move(note_id: int, now: dt.datetime) -> bool:
        # the sender has read the row it claimed; the move commits now, elsewhere
        if not moved.is_set():
            moved.set()
            thread = threading.Thread(target=move_elsewhere)
            thread.start()
            thread.join(30)
        return real_applies(note_id, now)

    monkeypatch.setattr(notify, "reminder_applies", applies_after_a_move)
    report = mail.deliver_pending()
    assert errors == []
    assert moved.is_set()
    assert report.sent == 0 and report.dropped == 1, report
    monkeypatch.setattr(notify, "reminder_applies", real_applies)
    for _ in range(2):
        run_job("reminders")
        run_job("deliver")
    reminders = _reminder_mails(smtp)
    assert len(reminders) == 1, [m["Subject"] for m in reminders]
    assert "09:30–11:30" in _text(reminders[0])


def test_a_reminder_follows_a_move_across_midnight_in_urumqi(app: Any, smtp: SmtpServer) -> None:
    """Asia/Urumqi is UTC+6: a booking at 00:30 on Tuesday moved to 23:30 on Monday is
    reminded once, 24 h before the new time, in the institute's zone and date."""
    from labshare.jobs import run_job as run
    from tests import factories
    from tests.factories import OPEN_RULES

    app.config["REMINDER_HOURS"] = [24]
    institute = factories.make_institute(timezone="Asia/Urumqi")
    instrument = factories.make_instrument(rules=dict(OPEN_RULES), institute=institute)
    sme = factories.make_user(Role.SME, email="ma@example.com")
    staff = factories.make_user(Role.STAFF, institute=institute)
    old_start = dt.datetime(2030, 1, 7, 18, 30, tzinfo=dt.UTC)  # Tue 8 Jan 00:30 local
    booking = factories.make_booking(
        status=BookingStatus.APPROVED,
        start=old_start,
        end=old_start + dt.timedelta(hours=1),
        resource=instrument,
        user=sme,
    )
    db.session.commit()
    freeze(old_start - dt.timedelta(hours=23))
    run("reminders")
    new_start = old_start - dt.timedelta(hours=1)  # Mon 7 Jan 23:30 local
    moving.move_booking(booking, staff, new_start, new_start + dt.timedelta(hours=1))
    db.session.commit()
    for _ in range(2):
        run("reminders")
        run("deliver")
    [msg] = _reminder_mails(smtp)
    text = _text(msg)
    span = "Monday, January 7, 2030 23:30 – Tuesday, January 8, 2030 00:30"
    assert f"{span} (Asia/Urumqi, UTC+06:00)" in text
    assert "01:30" not in text  # the old end
    assert "January 7" in msg["Subject"]


def test_a_booking_cannot_be_moved_into_the_past_and_keeps_its_reminder(
    env: Any, smtp: SmtpServer
) -> None:
    from labshare.errors import DomainError

    freeze(T0 - dt.timedelta(hours=23))
    run_job("reminders")
    past = T0 - dt.timedelta(hours=25)
    booking = db.session.get(Booking, env.booking.id)
    assert booking is not None
    try:
        moving.move_booking(booking, env.staff, past, past + dt.timedelta(hours=2))
    except DomainError:
        db.session.rollback()
    else:  # pragma: no cover - the failure this test is for
        raise AssertionError("moved into the past")
    run_job("deliver")
    [msg] = _reminder_mails(smtp)
    assert "09:00–11:00" in _text(msg)
