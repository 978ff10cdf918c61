"""Booking events are queued as event rows and rendered when sent or read, in the
language the recipient had; rows queued already rendered are delivered unchanged."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from labshare.extensions import db
from labshare.jobs import run_job
from labshare.messaging import inbox, notify
from labshare.models import BookingStatus, Notification, NotificationStatus, Role, User
from tests import factories
from tests.jobsutil import (
    T0,
    SmtpServer,
)


def _approved(**kw: Any) -> Any:
    return factories.make_booking(status=BookingStatus.APPROVED, start=T0, **kw)


def _stored(note_id: int) -> tuple[str | None, str | None, str | None]:
    row = db.session.execute(
        select(
            Notification.stored_subject, Notification.stored_body_text, Notification.locale
        ).where(Notification.id == note_id)
    ).one()
    return row[0], row[1], row[2]


def test_booking_event_stores_the_event_not_the_text(app: Any) -> None:
    user = factories.make_user(Role.SME, locale="zh_CN")
    booking = _approved(user=user)
    [note] = notify.booking_event(booking, "confirmed")
    db.session.commit()
    subject, body, locale = _stored(note.id)
    assert subject is None and body is None and locale == "zh_CN"
    assert note.kind == "booking_confirmed" and note.booking_id == booking.id


def test_event_row_mailed_in_the_recipients_language_with_rendered_rows(
    app: Any, smtp: SmtpServer
) -> None:
    zh = factories.make_user(Role.SME, locale="zh_CN")
    en = factories.make_user(Role.SME, locale="en")
    b_zh = _approved(user=zh)
    b_en = _approved(user=en)
    notify.booking_event(b_zh, "confirmed")
    notify.booking_event(b_en, "confirmed")
    # A row in the rendered style, as other kinds of message are queued.
    notify.enqueue(en, "custom", subject="plain subject", body_text="plain body", dedupe_key="x1")
    db.session.commit()
    run_job("deliver")
    run_job("deliver")  # nothing twice
    by_to = {m["To"]: m for m in smtp.messages}
    assert len(smtp.messages) == 3
    assert "已确认" in by_to[zh.email]["Subject"] or "确认" in by_to[zh.email]["Subject"]
    assert "confirmed" in str(by_to[en.email]["Subject"]) or "plain" in str(
        by_to[en.email]["Subject"]
    )
    subjects = sorted(str(m["Subject"]) for m in smtp.messages)
    assert "plain subject" in subjects
    assert any(f"Booking {b_en.id} confirmed" in s for s in subjects)
    statuses = set(db.session.scalars(select(Notification.status)))
    assert statuses == {NotificationStatus.SENT}
    # Rendering never wrote the text back into the outbox.
    for note in db.session.scalars(select(Notification).where(Notification.kind != "custom")):
        assert _stored(note.id)[1] is None


def test_event_keeps_the_locale_it_was_queued_with(app: Any, smtp: SmtpServer) -> None:
    user = factories.make_user(Role.SME, locale="en")
    booking = _approved(user=user)
    notify.booking_event(booking, "confirmed")
    db.session.commit()
    db.session.get(User, user.id).locale = "zh_CN"  # type: ignore[union-attr]
    db.session.commit()
    run_job("deliver")
    [msg] = smtp.messages
    assert f"Booking {booking.id} confirmed" in str(msg["Subject"])


def test_inbox_renders_event_rows_on_read(app: Any) -> None:
    user = factories.make_user(Role.SME, locale="en")
    booking = _approved(user=user)
    notify.booking_event(booking, "confirmed")
    notify.enqueue(user, "custom", subject="rendered", body_text="text", dedupe_key="x2")
    db.session.commit()
    user_id, booking_id = user.id, booking.id
    db.session.expunge_all()
    rows, total = inbox.list_notifications(db.session.get(User, user_id))  # type: ignore[arg-type]
    assert total == 2
    subjects = {r.subject for r in rows}
    assert "rendered" in subjects
    assert any(f"Booking {booking_id} confirmed" in s for s in subjects)
    event_row = next(r for r in rows if r.kind == "booking_confirmed")
    assert "Your booking is confirmed." in event_row.body_text
    assert event_row.body_html is not None and "<table>" in event_row.body_html
    db.session.commit()  # reading does not make the row dirty
    assert _stored(event_row.id)[1] is None


def test_an_event_that_cannot_be_rendered_fails_alone(app: Any, smtp: SmtpServer) -> None:
    user = factories.make_user(Role.SME, locale="en")
    booking = _approved(user=user)
    [note] = notify.booking_event(booking, "confirmed")
    note.kind = "booking_unknown"
    notify.enqueue(user, "custom", subject="ok", body_text="ok", dedupe_key="x3")
    db.session.commit()
    run_job("deliver")
    assert [str(m["Subject"]) for m in smtp.messages] == ["ok"]
    db.session.expire_all()
    assert db.session.get(Notification, note.id).status == NotificationStatus.FAILED  # type: ignore[union-attr]
