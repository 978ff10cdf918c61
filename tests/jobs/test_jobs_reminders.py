"""Reminders and staff nudges: due-and-not-done selection, at most once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import BookingStatus, JobMarker, Notification, Role
from tests import factories
from tests.jobsutil import T0, freeze


def _reminders() -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(Notification.kind == "reminder")))


def test_booking_confirmed_inside_both_windows_gets_only_the_latest(app: Any) -> None:
    booking = factories.make_booking(status=BookingStatus.APPROVED, start=T0)
    db.session.commit()
    freeze(T0 - dt.timedelta(minutes=30))
    assert run_job("reminders") == {"sent": 1, "skipped": 1}
    assert run_job("reminders") == {"sent": 0, "skipped": 0}
    [note] = _reminders()
    assert note.dedupe_key.startswith(f"reminder:{booking.id}:1h:")
    outcomes = dict(db.session.execute(select(JobMarker.key, JobMarker.outcome)).tuples().all())
    assert outcomes == {
        f"reminder:{booking.id}:24h": "skipped",
        f"reminder:{booking.id}:1h": "done",
    }


def test_a_late_run_still_sends_a_due_reminder(app: Any) -> None:
    """Not "due exactly this minute": a scheduler down for hours catches up."""
    factories.make_booking(status=BookingStatus.APPROVED, start=T0)
    db.session.commit()
    freeze(T0 - dt.timedelta(hours=24, minutes=1))
    assert run_job("reminders")["sent"] == 0  # not due yet
    freeze(T0 - dt.timedelta(hours=7, minutes=13))  # 17 hours late
    assert run_job("reminders")["sent"] == 1


def test_no_reminder_for_bookings_not_approved_or_started(app: Any) -> None:
    for status in (BookingStatus.PENDING, BookingStatus.CANCELLED, BookingStatus.REJECTED):
        factories.make_booking(status=status, start=T0)
    factories.make_booking(status=BookingStatus.APPROVED, start=T0 - dt.timedelta(hours=1))
    db.session.commit()
    freeze(T0 - dt.timedelta(minutes=10))
    assert run_job("reminders")["sent"] == 0
    assert _reminders() == []


def test_pending_requests_nudge_staff_once(app: Any) -> None:
    institute = factories.make_institute()
    instrument = factories.make_instrument(institute=institute)
    staff = factories.make_user(Role.STAFF, institute=institute)
    factories.make_user(Role.STAFF, institute=institute, active=False)
    other_staff = factories.make_user(Role.STAFF)  # another institute
    freeze(T0 - dt.timedelta(days=5))
    old = factories.make_booking(resource=instrument, start=T0)
    freeze(T0 - dt.timedelta(days=4, hours=12))
    factories.make_booking(resource=instrument, start=T0 + dt.timedelta(hours=3))  # too new
    db.session.commit()

    freeze(T0 - dt.timedelta(days=4))
    assert run_job("pending-nudges") == {"bookings": 1, "messages": 1}
    assert run_job("pending-nudges") == {"bookings": 0, "messages": 0}
    [note] = db.session.scalars(select(Notification).where(Notification.kind == "pending_nudge"))
    assert note.user_id == staff.id and note.user_id != other_staff.id
    assert f"/bookings/{old.id}" in note.body_text
    # Twelve hours later the second one is old enough: only it is nudged.
    freeze(T0 - dt.timedelta(days=3, hours=12))
    assert run_job("pending-nudges") == {"bookings": 1, "messages": 1}
