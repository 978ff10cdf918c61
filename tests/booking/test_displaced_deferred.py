"""Closing time over bookings (a new public holiday, a closure) does in its transaction
only what must be atomic: the bookings held in one UPDATE with one audit INSERT, one
outbox row of facts per booker, in a number of statements that does not grow with the
bookings. The alternatives are computed and the message rendered when it is delivered
(or shown in the inbox): they avoid the holidays and are free at that time, and the
message is delivered once. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from labshare.booking import holiday_admin
from labshare.booking.policies import closures
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import AuditLog, Booking, BookingStatus, Lab, Notification, Role, User
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import sent_statements
from tests.jobsutil import SmtpServer

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 9, 1, 0, 0, tzinfo=dt.UTC)
FEW_DAY = dt.date(2030, 10, 8)  # a Tuesday: 3 bookings
MANY_DAY = dt.date(2030, 10, 9)  # a Wednesday: 30 bookings
NOTICE = "closure_notice"


def local(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), SH)


@pytest.fixture
def world(db: Any) -> SimpleNamespace:
    """Three instruments of one lab (08:00-18:00 on weekdays): 3 approved bookings on
    FEW_DAY and 30 on MANY_DAY, each of its own booker; an equivalent in a lab that
    works through holidays; the institute's staff."""
    set_clock(lambda: NOW)
    lab = factories.make_lab(hours=factories.weekday_hours("08:00", "18:00", range(5)))
    insts = [factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES)) for _ in range(3)]
    open_lab = factories.make_lab(
        hours=factories.weekday_hours("08:00", "18:00", range(5)), follows_holidays=False
    )
    works = factories.make_instrument(lab=open_lab, rules=dict(factories.OPEN_RULES))
    staff = factories.make_user(Role.STAFF, institute=lab.institute, locale="en")
    slots = [(FEW_DAY, insts[i], 9) for i in range(3)]
    slots += [(MANY_DAY, inst, hour) for inst in insts for hour in range(8, 18)]
    for day, inst, hour in slots:
        factories.make_booking(
            resource=inst,
            user=factories.make_user(Role.SME, locale="en"),
            start=local(day, hour),
            end=local(day, hour + 1),
            status=BookingStatus.APPROVED,
        )
    db.session.commit()
    return SimpleNamespace(
        lab=lab, lab_id=lab.id, staff_id=staff.id, insts=insts, works=works, staff=staff
    )


def _add_holiday(day: dt.date, choice: str = "ask_move") -> list[str]:
    with sent_statements() as sent:
        added = holiday_admin.add_day(
            None, day=day.isoformat(), kind="holiday", name="测试", on_bookings=choice
        )
        db.session.flush()
    db.session.commit()
    assert len(added.bookings_inside) in (3, 30)
    return list(sent)


def _close(world: SimpleNamespace, day: dt.date, choice: str) -> list[str]:
    with sent_statements() as sent:
        closures.close(
            db.session.get(User, world.staff_id),
            db.session.get(Lab, world.lab_id),
            local(day, 0),
            local(day + dt.timedelta(days=1), 0),
            kind="maintenance",
            on_bookings=choice,
        )
        db.session.flush()
    db.session.commit()
    return list(sent)


@pytest.mark.parametrize("choice", ["ask_move", "cancel"])
@pytest.mark.parametrize("closing", ["holiday", "closure"])
def test_the_transaction_sends_as_many_statements_for_30_bookings_as_for_3(
    world: SimpleNamespace, closing: str, choice: str
) -> None:
    if closing == "holiday":
        run = lambda day: _add_holiday(day, choice)  # noqa: E731
    else:
        run = lambda day: _close(world, day, choice)  # noqa: E731
    db.session.remove()
    few = run(FEW_DAY)
    db.session.remove()
    many = run(MANY_DAY)
    # the same statements but for a constant few (a cache warm or cold)
    assert abs(len(many) - len(few)) <= 3, "\n".join(many)
    assert len(many) <= 40, "\n".join(many)
    # and all 33 were held or cancelled, audited, and each booker gets one row of facts
    statuses = set(db.session.scalars(select(Booking.status)))
    if choice == "cancel":
        assert statuses == {BookingStatus.CANCELLED}
        action = "booking.cancel"
        assert all(b.cancelled_at is not None for b in db.session.scalars(select(Booking)))
    else:
        assert statuses == {BookingStatus.PENDING}
        action = "booking.holiday_hold" if closing == "holiday" else "booking.closure_hold"
    assert len(db.session.scalars(select(AuditLog).where(AuditLog.action == action)).all()) == 33
    notes = db.session.scalars(select(Notification).where(Notification.kind == NOTICE)).all()
    assert len(notes) == 33 and len({n.user_id for n in notes}) == 33
    assert all(n.stored_body_text is None and n.data for n in notes)


def test_delivery_renders_alternatives_free_then_and_off_the_holiday(
    world: SimpleNamespace, smtp: SmtpServer
) -> None:
    _add_holiday(FEW_DAY)
    note = db.session.scalars(
        select(Notification).where(Notification.kind == NOTICE).order_by(Notification.id)
    ).first()
    assert note is not None and note.stored_body_text is None  # nothing rendered yet
    booking = db.session.get(Booking, note.data["items"][0]["id"])
    # before delivery, someone books the booked instrument's first free hour after the
    # holiday (MANY_DAY is full: the next day's 08:00)
    after = FEW_DAY + dt.timedelta(days=2)
    taken = factories.make_booking(
        resource=booking.resource,
        start=local(after, 8),
        end=local(after, 9),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()

    run_job("deliver")
    run_job("deliver")  # delivered once

    to_booker = [m for m in smtp.messages if m["To"] == booking.user.email]
    assert len(to_booker) == 1
    text = str(to_booker[0].get_body(preferencelist=("plain",)).get_content())
    assert "public holiday" in str(to_booker[0]["Subject"])
    assert "2030-10-08 测试" in text  # the day and its name, worded at delivery
    own = booking.resource.name_en
    alternatives = [line for line in text.splitlines() if line.startswith("  - ")]
    assert len(alternatives) == 3, text
    # its own resource: the next free hour, not the one taken since the holiday was added
    assert alternatives[0].startswith(f"  - {own}: Thursday, October 10, 2030 09:00–10:00"), text
    # the other instruments of the lab are free on the holiday, but it is not suggested
    assert all("October 8," not in line for line in alternatives), text
    assert all("October 10, 2030 08:00" in line for line in alternatives[1:]), text
    assert taken.id not in {int(i["id"]) for i in note.data["items"]}
    db.session.expire_all()
    note = db.session.get(Notification, note.id)
    assert note is not None and note.status == "sent" and note.stored_body_text is None


def test_the_inbox_renders_the_row_with_its_alternatives(
    world: SimpleNamespace, client: Any, login: Any
) -> None:
    _add_holiday(FEW_DAY)
    note = db.session.scalars(select(Notification).where(Notification.kind == NOTICE)).first()
    assert note is not None and note.stored_body_text is None
    booker = db.session.get(User, note.user_id)
    assert booker is not None
    login(booker)
    page = client.get("/notifications")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "public holiday" in html
    assert "2030-10-08 测试" in html  # the headline, worded when the page is shown
    # the same row's text (the page shows its first 400 characters) lists them
    assert "Nearest free alternatives" in note.body_text
    db.session.expire_all()
    note = db.session.get(Notification, note.id)
    assert note is not None and note.stored_body_text is None  # never written back


@pytest.mark.parametrize("closing", ["holiday", "closure"])
def test_bookings_cancelled_in_bulk_lose_their_unsent_reminders(
    world: SimpleNamespace, closing: str
) -> None:
    from labshare.messaging import notify

    ids = db.session.scalars(
        select(Booking.id).where(Booking.start_at < local(FEW_DAY + dt.timedelta(days=1), 0))
    ).all()
    for booking in db.session.scalars(select(Booking).where(Booking.id.in_(ids))):
        assert notify.reminder(booking, 24) is not None
    db.session.commit()

    def reminders() -> int:
        return len(
            db.session.scalars(
                select(Notification.id).where(
                    Notification.kind == notify.REMINDER_KIND, Notification.booking_id.in_(ids)
                )
            ).all()
        )

    assert reminders() == 3
    if closing == "holiday":
        _add_holiday(FEW_DAY, "cancel")
    else:
        _close(world, FEW_DAY, "cancel")
    assert {db.session.get(Booking, i).status for i in ids} == {BookingStatus.CANCELLED}
    assert reminders() == 0
