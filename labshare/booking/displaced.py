"""Bookings that time newly closed displaces: a closure of a resource or a lab, a public
holiday added to the calendar. One service for both, over a list of bookings and the
closed window each falls in:

- ``settle``: cancel them (as the institute's staff would, their standard notice
  replaced by this one), or put the approved ones back to pending (audited): they keep
  their time for the company to move or cancel, and approval re-runs the creation
  checks, which refuse closed time, so nothing inside closed time is approved again;
- ``tell``: each booker gets one message (in-app and mail through the outbox, the
  caller's dedupe key) listing their bookings, each with the nearest free alternatives:
  its own resource after the closed window, then equivalent instruments (same
  measurand, a range that covers the booked one's, available), the same institute first.

The caller has locked the bookings' resources (the one lock order: resources, then
bookings) and checked who may close the time.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, select

from labshare.booking import availability
from labshare.booking.permissions import is_staff_of
from labshare.booking.rules import (
    Rules,
    Span,
    clip,
    effective_rules,
    institute_zone,
    merge,
    subtract,
)
from labshare.booking.transitions import cancel_booking, cancel_displaced
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    Booking,
    BookingStatus,
    Instrument,
    Resource,
    ResourceStatus,
    User,
)
from labshare.ops import audit
from labshare.timeutil import isoformat_local, utcnow, zone

MESSAGE_MAX = 500
ALTERNATIVES = 3
SEARCH_DAYS = 14
KIND = "closure_notice"


class OnBookings(enum.StrEnum):
    CANCEL = "cancel"
    ASK_MOVE = "ask_move"


def parse_choice(value: Any) -> OnBookings | None:
    """``on_bookings`` as given (None or '' when not given); 422 naming the field."""
    if value is None or value == "":
        return None
    try:
        return OnBookings(value)
    except ValueError:
        raise ValidationFailed(_l("Choose cancel or ask_move."), field="on_bookings") from None


def parse_message(value: Any) -> str | None:
    """The message to the companies: stripped, at most ``MESSAGE_MAX`` characters."""
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ValidationFailed(_l("The message must be text."), field="message")
    text = value.strip() or None
    if text is not None and len(text) > MESSAGE_MAX:
        raise ValidationFailed(
            _l("At most %(n)d characters are allowed.", n=MESSAGE_MAX), field="message"
        )
    return text


@dataclass(frozen=True)
class Displaced:
    """A holding booking and the closed window [start, end) it touches."""

    booking: Booking
    closed: Span


@dataclass(frozen=True)
class Alternative:
    resource: Resource
    start: dt.datetime
    end: dt.datetime


#: The windows closed on a resource that the calendar may not show yet (the new
#: closure, a new holiday's day): alternatives avoid them.
ClosedOn = Callable[[Resource, dt.datetime, dt.datetime], list[Span]]


def no_closed(_resource: Resource, _start: dt.datetime, _end: dt.datetime) -> list[Span]:
    return []


@dataclass(frozen=True)
class Notice:
    """How one caller words its message: ``headline(bookings, locale)`` and
    ``subject(bookings, locale)`` (called in the reader's language, for the bookings of
    one booker); ``dedupe(user)`` is the outbox key."""

    headline: Callable[[Sequence[Booking], str], str]
    subject: Callable[[Sequence[Booking], str], str]
    dedupe: Callable[[User], str]
    closed_on: ClosedOn = field(default=no_closed)


def booking_brief(booking: Booking) -> dict[str, Any]:
    tz = institute_zone(booking.resource)
    return {
        "id": booking.id,
        "resource_id": booking.resource_id,
        "company_id": booking.company_id,
        "company_name": booking.company.name,
        "start": isoformat_local(booking.start_at, tz),
        "end": isoformat_local(booking.end_at, tz),
        "status": str(booking.status),
    }


# -- what happens to the bookings ----------------------------------------------------------


def settle(
    actor: User | None,
    displaced: Sequence[Displaced],
    action: OnBookings,
    *,
    text: str | None,
    cancel_reason: str,
    hold_action: str,
    hold_data: Mapping[str, Any],
) -> list[Booking]:
    """Cancel the bookings, or put the approved ones back to pending (``hold_action``
    audited with ``hold_data``). Returns the bookings whose state changed. A booking
    that has already begun cannot be cancelled (``windows``): the whole change fails."""
    changed: list[Booking] = []
    for item in displaced:
        booking = item.booking
        if action is OnBookings.CANCEL:
            if booking.status not in (BookingStatus.PENDING, BookingStatus.APPROVED):
                continue
            with notify.collect_booking_events():  # this service's own message replaces it
                if actor is not None and is_staff_of(actor, booking.institute_id):
                    cancel_booking(booking, actor, text or cancel_reason)
                else:  # an admin or the command line closing time for everyone
                    cancel_displaced(booking, actor, text or cancel_reason)
            changed.append(booking)
        elif booking.status == BookingStatus.APPROVED:
            booking.status = BookingStatus.PENDING
            booking.decision_reason = text
            audit.record(
                hold_action,
                booking,
                actor=actor,
                from_state=BookingStatus.APPROVED,
                to_state=BookingStatus.PENDING,
                reason=text,
                data=dict(hold_data),
            )
            changed.append(booking)
    db.session.flush()
    return changed


# -- alternatives -------------------------------------------------------------------------


def _grid_start(value: dt.datetime, slot_minutes: int, tz: str) -> dt.datetime:
    local = value.astimezone(zone(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = (local - midnight).total_seconds() / 60
    steps = -(-minutes // slot_minutes)
    return (midnight + dt.timedelta(minutes=steps * slot_minutes)).astimezone(dt.UTC)


class Search:
    """The free time and the equivalents of each resource, read once per message run
    (a holiday may displace thousands of bookings on the same resources): free time is
    read per resource over whole UTC days around the asked start, then cut to the
    asked window, so bookings of one day share one read."""

    def __init__(self, closed_on: ClosedOn = no_closed) -> None:
        self.closed_on = closed_on
        self._free: dict[tuple[int, dt.datetime, dt.datetime], list[Span]] = {}
        self._equivalents: dict[int, list[Instrument]] = {}
        self._rules: dict[int, Rules] = {}

    def rules(self, resource: Resource) -> Rules:
        if resource.id not in self._rules:
            self._rules[resource.id] = effective_rules(resource)
        return self._rules[resource.id]

    def free(self, resource: Resource, start: dt.datetime, end: dt.datetime) -> list[Span]:
        day = start.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        window = (day, max(end, day + dt.timedelta(days=SEARCH_DAYS + 1)))
        key = (resource.id, *window)
        if key not in self._free:
            spans = [(f.start, f.end) for f in availability.availability(resource, *window).free]
            closed = merge(self.closed_on(resource, *window))
            self._free[key] = subtract(spans, closed) if closed else spans
        return clip(self._free[key], start, end)

    def equivalents(self, resource: Resource) -> list[Instrument]:
        if resource.id not in self._equivalents:
            self._equivalents[resource.id] = equivalents(resource)
        return self._equivalents[resource.id]

    def first_fit(
        self, resource: Resource, after: dt.datetime, length: dt.timedelta
    ) -> Alternative | None:
        """The first free slot of ``length`` on ``resource``'s grid at or after
        ``after``, within its lead time and horizon, outside what ``closed_on`` names."""
        rules = self.rules(resource)
        now = utcnow()
        start = max(after, now + dt.timedelta(hours=rules.lead_time_hours))
        end = min(
            start + dt.timedelta(days=SEARCH_DAYS), now + dt.timedelta(days=rules.horizon_days)
        )
        if start >= end:
            return None
        tz = institute_zone(resource)
        for span_start, span_end in self.free(resource, start, end):
            begin = _grid_start(span_start, rules.slot_minutes, tz)
            if begin + length <= span_end:
                return Alternative(resource, begin, begin + length)
        return None


def equivalents(resource: Resource, limit: int = 5) -> list[Instrument]:
    """Instruments that measure the same quantity over at least the same range,
    available, the same institute first."""
    if not isinstance(resource, Instrument) or resource.range_min_base is None:
        return []
    same_institute = case((Instrument.institute_id == resource.institute_id, 0), else_=1)
    return list(
        db.session.scalars(
            select(Instrument)
            .where(
                Instrument.id != resource.id,
                Instrument.measurand == resource.measurand,
                Instrument.range_min_base <= resource.range_min_base,
                Instrument.range_max_base >= resource.range_max_base,
                Instrument.status == ResourceStatus.AVAILABLE,
            )
            .order_by(same_institute, Instrument.id)
            .limit(limit)
        )
    )


def alternatives(item: Displaced, search: Search | None = None) -> list[Alternative]:
    """The nearest free alternatives to a displaced booking: its own resource after the
    closed window, then equivalent instruments from the booking's own time on."""
    search = search or Search()
    booking = item.booking
    length = booking.end_at - booking.start_at
    found: list[Alternative] = []
    own = search.first_fit(booking.resource, item.closed[1], length)
    if own is not None:
        found.append(own)
    for other in search.equivalents(booking.resource):
        if len(found) >= ALTERNATIVES:
            break
        alt = search.first_fit(other, booking.start_at, length)
        if alt is not None:
            found.append(alt)
    return found


# -- the message ---------------------------------------------------------------------------


def tell(
    displaced: Iterable[Displaced], notice: Notice, *, cancelled: bool, text: str | None
) -> int:
    """One message per booker listing their displaced bookings with alternatives; the
    number queued (a message already queued under its dedupe key is not queued again)."""
    by_booker: dict[int, list[Displaced]] = defaultdict(list)
    for item in displaced:
        by_booker[item.booking.user_id].append(item)
    search = Search(notice.closed_on)
    queued = 0
    for items in by_booker.values():
        user = items[0].booking.user
        booked = [i.booking for i in items]
        locale = notify.locale_of(user)
        with force_locale(locale):
            context = [
                {
                    "booking": i.booking,
                    "resource_name": notify.resource_name(i.booking.resource, locale),
                    "when": notify.format_span(
                        i.booking.start_at,
                        i.booking.end_at,
                        institute_zone(i.booking.resource),
                        locale,
                    ),
                    "alternatives": [
                        {
                            "name": notify.resource_name(a.resource, locale),
                            "resource_id": a.resource.id,
                            "when": notify.format_span(
                                a.start, a.end, institute_zone(a.resource), locale
                            ),
                        }
                        for a in alternatives(i, search)
                    ],
                }
                for i in items
            ]
            subject = notice.subject(booked, locale)
            body_text, body_html = notify.render_for(
                KIND,
                user,
                headline=notice.headline(booked, locale),
                cancelled=cancelled,
                message=text,
                items=context,
            )
        if (
            notify.enqueue(
                user,
                KIND,
                subject=subject,
                body_text=body_text,
                body_html=body_html,
                booking=booked[0],
                dedupe_key=notice.dedupe(user),
            )
            is not None
        ):
            queued += 1
    return queued
