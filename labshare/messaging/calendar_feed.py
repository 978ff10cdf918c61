"""Each user's bookings as an iCalendar feed (RFC 5545) behind a secret link.

An SME member gets their own bookings, institute staff their institute's. Events
carry the resource's time zone (with its VTIMEZONE), a UID that never changes for
a booking, a SEQUENCE that grows with each change, and STATUS:CANCELLED for
cancelled and rejected ones so that calendar apps remove them.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask_babel import force_locale
from flask_babel import gettext as _
from icalendar import Calendar, Event
from sqlalchemy import ColumnElement, false, select

from labshare.booking.rules import institute_zone
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, Role, User
from labshare.timeutil import utcnow

#: How far back the feed reaches; calendar apps keep what they saw before.
HISTORY = dt.timedelta(days=180)
MAX_EVENTS = 2000

_STATUS = {
    BookingStatus.PENDING: "TENTATIVE",
    BookingStatus.APPROVED: "CONFIRMED",
    BookingStatus.COMPLETED: "CONFIRMED",
    BookingStatus.NO_SHOW: "CONFIRMED",
    BookingStatus.REJECTED: "CANCELLED",
    BookingStatus.CANCELLED: "CANCELLED",
}


def _scope(user: User) -> ColumnElement[bool]:
    if user.role == Role.STAFF and user.institute_id is not None:
        return Booking.institute_id == user.institute_id
    if user.role == Role.SME:
        return Booking.user_id == user.id
    return false()


def feed_bookings(user: User) -> list[Booking]:
    since = utcnow() - HISTORY
    return list(
        db.session.scalars(
            select(Booking)
            .where(_scope(user), Booking.end_at >= since)
            .order_by(Booking.start_at, Booking.id)
            .limit(MAX_EVENTS)
        ).unique()
    )


def uid_of(booking: Booking, domain: str) -> str:
    return f"booking-{booking.id}@{domain}"


def build_feed(user: User, *, domain: str) -> bytes:
    """The feed as bytes (CRLF line endings, folded lines)."""
    cal = Calendar()
    cal.add("prodid", "-//LabShare//Bookings//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    with force_locale(user.locale):
        cal.add("x-wr-calname", _("LabShare bookings"))
        for booking in feed_bookings(user):
            cal.add_component(_event(booking, domain=domain))
    cal.add_missing_timezones()
    return bytes(cal.to_ical())


def _event(booking: Booking, *, domain: str) -> Event:
    resource = booking.resource
    tz = ZoneInfo(institute_zone(resource))
    event = Event()
    event.add("uid", uid_of(booking, domain))
    event.add("dtstamp", booking.updated_at or booking.created_at)
    event.add("created", booking.created_at)
    event.add("last-modified", booking.updated_at or booking.created_at)
    event.add("dtstart", booking.start_at.astimezone(tz))
    event.add("dtend", booking.end_at.astimezone(tz))
    event.add("summary", f"{resource.name} ({_(str(booking.status))})")
    event.add("location", resource.institute.name)
    event.add("status", _STATUS[BookingStatus(booking.status)])
    event.add("sequence", _sequence(booking))
    description = [booking.purpose]
    if booking.samples:
        description.append(booking.samples)
    if booking.decision_reason:
        description.append(booking.decision_reason)
    event.add("description", "\n".join(description))
    return event


def _sequence(booking: Booking) -> int:
    """Grows with each change of state and each move, so clients replace their copy.
    A move adds 2: a company's move may send an approved booking (1) back to
    pending (0), and the moved event must still outrank every earlier copy."""
    return (
        2 * int(booking.moves or 0)
        + {
            BookingStatus.PENDING: 0,
            BookingStatus.APPROVED: 1,
            BookingStatus.REJECTED: 1,
            BookingStatus.CANCELLED: 2,
            BookingStatus.COMPLETED: 2,
            BookingStatus.NO_SHOW: 2,
        }[BookingStatus(booking.status)]
    )
