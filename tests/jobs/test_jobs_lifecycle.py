"""End-of-booking jobs: no-show and completion, audited, notified, once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from labshare.booking.bookings import mark_no_show
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import (
    AuditLog,
    BookingStatus,
    Notification,
    Role,
    ServiceType,
    UsageRecord,
)
from tests import factories
from tests.jobsutil import T0, freeze

END = T0 + dt.timedelta(hours=2)


def _usage(booking: Any) -> UsageRecord:
    staff = factories.make_user(Role.STAFF, institute_id=booking.institute_id)
    usage = UsageRecord(
        booking_id=booking.id,
        checked_in_at=booking.start_at,
        checked_out_at=booking.end_at,
        service_type=ServiceType.CALIBRATION,
        samples_count=3,
        problem_solved=True,
        recorded_by_id=staff.id,
    )
    db.session.add(usage)
    db.session.flush()
    return usage


def _audits(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_no_show_after_end_plus_grace_once(app: Any) -> None:
    missed = factories.make_booking(status=BookingStatus.APPROVED, start=T0)
    attended = factories.make_booking(status=BookingStatus.APPROVED, start=T0)
    _usage(attended)
    pending = factories.make_booking(status=BookingStatus.PENDING, start=T0)
    db.session.commit()

    freeze(END + dt.timedelta(minutes=29))  # grace (30 min) not over yet
    assert run_job("no-shows")["no_show"] == 0
    freeze(END + dt.timedelta(minutes=30))
    assert run_job("no-shows")["ids"] == [missed.id]
    assert run_job("no-shows")["no_show"] == 0  # twice changes nothing more

    db.session.expire_all()
    assert missed.status == BookingStatus.NO_SHOW
    assert attended.status == BookingStatus.APPROVED
    assert pending.status == BookingStatus.PENDING
    [entry] = _audits("booking.no_show")
    assert (entry.object_id, entry.from_state, entry.to_state) == (missed.id, "approved", "no_show")
    assert entry.actor_id is None
    notes = db.session.scalars(select(Notification).where(Notification.kind == "booking_no_show"))
    assert [n.booking_id for n in notes] == [missed.id]


def test_grace_period_is_configurable(app: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "NO_SHOW_GRACE_MINUTES", 120)
    factories.make_booking(status=BookingStatus.APPROVED, start=T0)
    db.session.commit()
    freeze(END + dt.timedelta(minutes=90))
    assert run_job("no-shows")["no_show"] == 0
    freeze(END + dt.timedelta(minutes=120))
    assert run_job("no-shows")["no_show"] == 1


def test_no_show_service_changes_only_approved_bookings(app: Any) -> None:
    booking = factories.make_booking(status=BookingStatus.CANCELLED, start=T0)
    assert mark_no_show(booking, quiet=True) is False
    assert booking.status == BookingStatus.CANCELLED
    assert _audits("booking.no_show") == []
    assert db.session.scalars(select(Notification)).all() == []


def test_complete_where_usage_recorded_once(app: Any) -> None:
    used = factories.make_booking(status=BookingStatus.APPROVED, start=T0)
    _usage(used)
    unused = factories.make_booking(status=BookingStatus.APPROVED, start=T0)
    db.session.commit()

    freeze(END - dt.timedelta(minutes=1))  # not checked out yet
    assert run_job("complete")["completed"] == 0
    freeze(END)
    assert run_job("complete")["ids"] == [used.id]
    assert run_job("complete")["completed"] == 0
    # A completed booking is never a no-show afterwards.
    freeze(END + dt.timedelta(hours=1))
    assert run_job("no-shows")["ids"] == [unused.id]

    db.session.expire_all()
    assert used.status == BookingStatus.COMPLETED
    [entry] = _audits("booking.complete")
    assert (entry.object_id, entry.from_state, entry.to_state) == (
        used.id,
        "approved",
        "completed",
    )
    kinds = db.session.scalars(select(Notification.kind).order_by(Notification.id)).all()
    assert kinds == ["booking_completed", "booking_no_show"]
