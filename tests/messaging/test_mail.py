"""Delivery of the outbox against a real SMTP server (aiosmtpd on a free port)."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
from typing import Any

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from labshare.extensions import db
from labshare.jobs import run_job
from labshare.messaging import mail, notify
from labshare.models import BookingStatus, Notification, NotificationStatus, Role
from tests import factories
from tests.jobsutil import (
    T0,
    SmtpServer,
    freeze,
    run_jobs_in_child,
)
from tests.serverutil import free_port


def _approved(**kw: Any) -> Any:
    return factories.make_booking(status=BookingStatus.APPROVED, start=T0, **kw)


def _text_part(msg: Any) -> str:
    return str(msg.get_body(preferencelist=("plain",)).get_content())


def _html_part(msg: Any) -> str:
    return str(msg.get_body(preferencelist=("html",)).get_content())


def test_reminder_arrives_once_with_content_and_local_time(app: Any, smtp: SmtpServer) -> None:
    user = factories.make_user(Role.SME, name="王工", email="wang@example.com")
    booking = _approved(user=user, purpose="校准压力变送器")
    name_en = booking.resource.name_en
    db.session.commit()

    freeze(T0 - dt.timedelta(hours=23))
    run_job("reminders")
    run_job("deliver")
    run_job("reminders")
    run_job("deliver")

    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["To"] == "wang@example.com"
    assert name_en in msg["Subject"]
    note = db.session.scalar(select(Notification).where(Notification.kind == "reminder"))
    assert note is not None
    assert msg["Message-ID"] == f"<notification-{note.id}@labshare>"
    assert note.status == NotificationStatus.SENT and note.message_id == msg["Message-ID"]
    text = _text_part(msg)
    # 01:00 UTC is 09:00 in the institute's zone, and the mail says so.
    assert "Monday, January 7, 2030 09:00–11:00 (Asia/Shanghai, UTC+08:00)" in text
    assert "校准压力变送器" in text
    assert "09:00–11:00" in _html_part(msg)
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == [f"booking-{booking.id}.ics"]
    assert attachments[0].get_content_type() == "text/calendar"
    event = Calendar.from_ical(attachments[0].get_content()).walk("VEVENT")[0]
    assert event.decoded("dtstart") == T0
    assert event.decoded("dtend") == T0 + dt.timedelta(hours=2)
    assert str(event["uid"]) == f"booking-{booking.id}@labshare"

    # The 1-hour reminder comes once its moment has passed, once.
    freeze(T0 - dt.timedelta(minutes=50))
    for _ in range(2):
        run_job("reminders")
        run_job("deliver")
    assert len(smtp.messages) == 2
    # After the start nothing more.
    freeze(T0 + dt.timedelta(minutes=5))
    run_job("reminders")
    run_job("deliver")
    assert len(smtp.messages) == 2


def test_messages_follow_the_recipients_locale(app: Any, smtp: SmtpServer) -> None:
    user = factories.make_user(Role.SME, locale="zh_CN")
    booking = _approved(user=user)
    name_zh = booking.resource.name
    db.session.commit()
    freeze(T0 - dt.timedelta(hours=2))
    run_job("reminders")
    run_job("deliver")
    [msg] = smtp.messages
    text = _text_part(msg)
    assert "2030年1月7日星期一 09:00–11:00" in text
    assert name_zh in msg["Subject"]


def test_booking_event_renders_text_and_html_in_institute_zone(app: Any) -> None:
    institute = factories.make_institute(timezone="Europe/Berlin")
    instrument = factories.make_instrument(institute=institute)
    booking = _approved(resource=instrument)
    [note] = notify.booking_event(booking, "confirmed")
    assert "Monday, January 7, 2030 02:00–04:00 (Europe/Berlin, UTC+01:00)" in note.body_text
    assert note.body_html is not None and "<table>" in note.body_html
    assert "confirmed" in note.subject
    # The same event twice queues nothing more.
    db.session.flush()
    assert notify.booking_event(booking, "confirmed") == []


def test_html_escapes_user_text(app: Any) -> None:
    booking = _approved(purpose="<script>alert(1)</script>")
    note = notify.reminder(booking, 24)
    assert note is not None and note.body_html is not None
    assert "<script>" not in note.body_html
    assert "&lt;script&gt;" in note.body_html


def test_smtp_down_nothing_lost_delivered_once_back(app: Any, monkeypatch: Any) -> None:
    port = free_port()
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", port)
    bookings = [_approved() for _ in range(3)]
    for b in bookings:
        notify.booking_event(b, "confirmed")
    db.session.commit()

    freeze(T0 - dt.timedelta(days=3))
    report = run_job("deliver")  # nobody listens on the port: connection refused
    assert report["sent"] == 0 and report["retried"] == 3
    notes = db.session.scalars(select(Notification)).all()
    assert {n.status for n in notes} == {NotificationStatus.PENDING}
    assert all(n.attempts == 1 and n.next_attempt_at > T0 - dt.timedelta(days=3) for n in notes)
    assert all("connection" in (n.last_error or "") for n in notes)
    # Not due again yet: the backoff holds.
    assert run_job("deliver")["retried"] == 0

    server = SmtpServer(port)
    server.start()
    try:
        freeze(T0 - dt.timedelta(days=2))
        assert run_job("deliver")["sent"] == 3
        run_job("deliver")
        assert len(server.messages) == 3
        assert len({m["Message-ID"] for m in server.messages}) == 3
    finally:
        server.stop()
    db.session.expire_all()
    assert {n.status for n in db.session.scalars(select(Notification))} == {NotificationStatus.SENT}


def test_permanent_refusal_fails_at_once(app: Any, smtp: SmtpServer) -> None:
    smtp.recorder.mode = "550"
    notify.booking_event(_approved(), "confirmed")
    db.session.commit()
    freeze(T0)
    assert run_job("deliver")["failed"] == 1
    freeze(T0 + dt.timedelta(days=1))
    assert run_job("deliver") == {"sent": 0, "retried": 0, "failed": 0, "uncertain": 0}
    note = db.session.scalar(select(Notification))
    assert note is not None
    assert note.status == NotificationStatus.FAILED and note.attempts == 1
    assert "550" in (note.last_error or "")
    assert mail.undelivered() == [note]
    assert smtp.messages == []


def test_temporary_refusal_retries_with_backoff_then_fails(
    app: Any, smtp: SmtpServer, monkeypatch: Any
) -> None:
    monkeypatch.setitem(app.config, "MAIL_MAX_ATTEMPTS", 3)
    smtp.recorder.mode = "451"
    notify.booking_event(_approved(), "confirmed")
    db.session.commit()
    now = T0
    delays = []
    for _attempt in range(3):
        freeze(now)
        run_job("deliver")
        note = db.session.scalar(select(Notification))
        assert note is not None
        delays.append(note.next_attempt_at - now)
        now = note.next_attempt_at + dt.timedelta(seconds=1)
    db.session.expire_all()
    note = db.session.scalar(select(Notification))
    assert note is not None
    assert note.status == NotificationStatus.FAILED and note.attempts == 3
    # 1 then 2 minutes, give or take the jitter.
    assert dt.timedelta(seconds=45) <= delays[0] <= dt.timedelta(seconds=75)
    assert dt.timedelta(seconds=90) <= delays[1] <= dt.timedelta(seconds=150)
    assert mail.undelivered() == [note]
    # The server recovers: a failed row stays failed (an admin decides), nothing resent.
    smtp.recorder.mode = "ok"
    freeze(now + dt.timedelta(days=1))
    run_job("deliver")
    assert smtp.messages == []


def test_backoff_grows_and_is_capped(app: Any) -> None:
    assert mail.backoff(1) <= dt.timedelta(seconds=75)
    assert mail.backoff(5) >= dt.timedelta(minutes=12)
    assert mail.backoff(30) <= dt.timedelta(hours=7.5)


def test_row_left_sending_by_a_crash_becomes_uncertain_not_resent(
    app: Any, smtp: SmtpServer
) -> None:
    notify.booking_event(_approved(), "confirmed")
    db.session.commit()
    freeze(T0)
    assert mail.claim(10)  # a sender claims it ... and dies before marking it
    freeze(T0 + dt.timedelta(minutes=5))
    assert run_job("deliver")["uncertain"] == 0  # its lease still runs: maybe still sending
    freeze(T0 + dt.timedelta(hours=1))
    assert run_job("deliver")["uncertain"] == 1
    note = db.session.scalar(select(Notification))
    assert note is not None and note.status == NotificationStatus.UNCERTAIN
    assert mail.undelivered() == [note]
    assert smtp.messages == []


def test_embedded_default_logs_and_marks_sent(app: Any, caplog: Any) -> None:
    assert not app.config.get("MAIL_SERVER")
    notify.booking_event(_approved(), "confirmed")
    db.session.commit()
    with caplog.at_level(logging.INFO, logger="labshare.messaging.mail"):
        assert run_job("deliver")["sent"] == 1
    assert "MAIL_SERVER unset" in caplog.text and "confirmed" in caplog.text
    note = db.session.scalar(select(Notification))
    assert note is not None and note.status == NotificationStatus.SENT
    assert note.read_at is None  # still unread in the in-app inbox


def test_inactive_account_gets_no_mail(app: Any, smtp: SmtpServer) -> None:
    user = factories.make_user(Role.SME, active=False)
    notify.booking_event(_approved(user=user), "confirmed")
    db.session.commit()
    assert run_job("deliver")["failed"] == 1
    assert smtp.messages == []


def test_two_processes_deliver_each_reminder_exactly_once(
    app: Any, smtp: SmtpServer, tmp_path: Any
) -> None:
    bookings = [
        factories.make_booking(
            status=BookingStatus.APPROVED, start=T0 + dt.timedelta(minutes=10 * i)
        )
        for i in range(12)
    ]
    db.session.commit()
    ids = {b.id for b in bookings}
    now = (T0 - dt.timedelta(hours=20)).isoformat()
    ctx = multiprocessing.get_context("spawn")
    args = (
        app.config["SQLALCHEMY_DATABASE_URI"],
        str(tmp_path),
        smtp.port,
        now,
        ["reminders", "deliver"],
        3,
    )
    procs = [ctx.Process(target=run_jobs_in_child, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert len(smtp.messages) == len(ids)
    assert len({m["Message-ID"] for m in smtp.messages}) == len(ids)
    db.session.rollback()  # a fresh snapshot: the children's writes
    count = db.session.scalar(
        select(func.count()).select_from(Notification).where(Notification.kind == "reminder")
    )
    assert count == len(ids)
    sent = db.session.scalars(select(Notification.status)).all()
    assert set(sent) == {NotificationStatus.SENT}


@pytest.mark.parametrize("hours", [[48], [24, 1]])
def test_reminder_hours_are_configurable(app: Any, monkeypatch: Any, hours: list[int]) -> None:
    monkeypatch.setitem(app.config, "REMINDER_HOURS", hours)
    _approved()
    db.session.commit()
    freeze(T0 - dt.timedelta(hours=30))
    assert run_job("reminders")["sent"] == (1 if hours == [48] else 0)
