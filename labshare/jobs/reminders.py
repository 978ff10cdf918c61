"""Reminders before a booking starts, and nudges to staff about old requests."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from flask import current_app
from sqlalchemy import select

from labshare.booking.staff_days import StaffDays
from labshare.database import begin_write, is_sqlite
from labshare.extensions import db
from labshare.jobs.markers import claim, is_claimed
from labshare.messaging import notify, staff_notices
from labshare.models import Booking, BookingStatus, Role, User
from labshare.timeutil import utcnow


def reminder_hours() -> list[int]:
    hours = {int(h) for h in current_app.config.get("REMINDER_HOURS") or [] if int(h) > 0}
    return sorted(hours, reverse=True)


def send_reminders() -> dict[str, Any]:
    """Queue the reminders that are due and not yet sent.

    A reminder ``h`` hours before the start is due once that moment has passed and
    the booking, approved, has not started. Where several are due at once (a booking
    confirmed late, or a scheduler that was down) only the latest is sent and the
    earlier ones are marked skipped, so nobody gets two reminders at once.
    """
    hours = reminder_hours()
    if not hours:
        return {"sent": 0}
    begin_write()
    now = utcnow()
    stmt = (
        select(Booking)
        .where(
            Booking.status == BookingStatus.APPROVED,
            Booking.start_at > now,
            Booking.start_at <= now + dt.timedelta(hours=hours[0]),
        )
        .order_by(Booking.start_at, Booking.id)
    )
    if not is_sqlite():
        # A booking being moved (its row locked) waits for the next run: read now, its
        # old time would claim the marker the new time's reminder needs. Skipping,
        # never waiting, keeps this job out of every lock order.
        stmt = stmt.with_for_update(of=Booking, skip_locked=True)
    bookings = db.session.scalars(stmt)
    sent = skipped = 0
    for booking in bookings:
        due = [h for h in hours if booking.start_at - dt.timedelta(hours=h) <= now]
        if not due:
            continue
        latest = min(due)
        if (
            claim(f"reminder:{booking.id}:{latest}h", "reminders")
            and notify.reminder(booking, latest) is not None
        ):
            sent += 1
        for earlier in due:
            if earlier != latest and claim(
                f"reminder:{booking.id}:{earlier}h", "reminders", outcome="skipped"
            ):
                skipped += 1
    return {"sent": sent, "skipped": skipped}


def send_pending_nudges() -> dict[str, Any]:
    """Tell each institute's staff, once per request, about requests pending longer
    than ``PENDING_NUDGE_HOURS`` whose start is still ahead.

    Not on a holiday of the lab's institute (in its zone): such a request is left
    unclaimed, so the first run on the next working day nudges it, once."""
    threshold = dt.timedelta(hours=int(current_app.config.get("PENDING_NUDGE_HOURS", 24)))
    begin_write()
    now = utcnow()
    bookings = db.session.scalars(
        select(Booking)
        .where(
            Booking.status == BookingStatus.PENDING,
            Booking.created_at <= now - threshold,
            Booking.start_at > now,
        )
        .order_by(Booking.institute_id, Booking.start_at, Booking.id)
    )
    fresh: dict[int, list[Booking]] = defaultdict(list)
    staff_days = StaffDays()
    waiting = 0
    for booking in bookings:
        if staff_days.is_holiday(booking.resource, now):
            waiting += 0 if is_claimed(f"nudge:{booking.id}") else 1
            continue
        if claim(f"nudge:{booking.id}", "pending-nudges"):
            fresh[booking.institute_id].append(booking)
    messages = 0
    for institute_id, items in fresh.items():
        staff = db.session.scalars(
            select(User).where(
                User.institute_id == institute_id,
                User.role == Role.STAFF,
                User.active.is_(True),
            )
        )
        for member in staff:
            if staff_notices.pending_nudge(member, items) is not None:
                messages += 1
    out: dict[str, Any] = {
        "bookings": sum(len(v) for v in fresh.values()),
        "messages": messages,
    }
    if waiting:
        out["holiday"] = waiting
    return out
