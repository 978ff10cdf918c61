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

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, insert, select, update
from sqlalchemy.orm.attributes import set_committed_value

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
from labshare.booking.transitions import cancel_booking, cancel_displaced, cancel_displaced_many
from labshare.booking.windows import Move
from labshare.booking.windows import check as check_window
from labshare.errors import InvalidTransition, ValidationFailed
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    Booking,
    BookingStatus,
    Instrument,
    Notification,
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


def _no_facts(_booking: Booking) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Notice:
    """What one caller's message is about, stored with it and worded when it is read
    or sent (``displaced_notice``): ``source`` (JSON: what closed the time),
    ``about(booking)`` (JSON facts of one booking, e.g. the holiday it falls on);
    ``dedupe(user_id)`` is the outbox key."""

    source: dict[str, Any]
    dedupe: Callable[[int], str]
    about: Callable[[Booking], dict[str, Any]] = field(default=_no_facts)


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
    that has already begun can be neither cancelled nor asked to move (``windows``):
    the whole change fails."""
    if action is OnBookings.CANCEL:
        return _cancel_all(actor, displaced, text or cancel_reason)
    return _hold_all(actor, displaced, text, hold_action, hold_data)


def _cancel_all(actor: User | None, displaced: Sequence[Displaced], reason: str) -> list[Booking]:
    """Cancelled as the institute's staff would (the caller checked that ``actor`` may
    close the time), this service's own message replacing the standard notice: in bulk,
    but a group's booking (its staff cancel the whole group) and one already begun
    (refused) one by one."""
    now = utcnow()
    holding = [
        b
        for b in {i.booking.id: i.booking for i in displaced}.values()
        if b.status in (BookingStatus.PENDING, BookingStatus.APPROVED)
    ]
    special = [b for b in holding if b.group_id is not None or b.start_at <= now]
    with notify.collect_booking_events():
        for booking in special:
            if booking.status not in (BookingStatus.PENDING, BookingStatus.APPROVED):
                continue  # cancelled with a member of its group just before
            if actor is not None and is_staff_of(actor, booking.institute_id):
                cancel_booking(booking, actor, reason)
            else:  # an admin or the command line closing time for everyone
                cancel_displaced(booking, actor, reason)
        rest = [b for b in holding if b not in special]
        changed = special + cancel_displaced_many(rest, actor, reason)
    db.session.flush()
    return changed


def _hold_all(
    actor: User | None,
    displaced: Sequence[Displaced],
    text: str | None,
    hold_action: str,
    hold_data: Mapping[str, Any],
) -> list[Booking]:
    """approved -> pending in one UPDATE and one audit INSERT, whatever their number:
    the caller holds the bookings' rows (or their resources), so none changes under it."""
    held = sorted(
        {
            i.booking.id: i.booking for i in displaced if i.booking.status == BookingStatus.APPROVED
        }.values(),
        key=lambda b: b.id,
    )
    if not held:
        return []
    now = utcnow()
    for booking in held:
        if booking.start_at <= now:
            # Asking the company to move a visit in progress would put it back to
            # pending, where it expires undecided: like a cancel, refused whole.
            try:
                check_window(
                    Move.MOVE_BY_STAFF,
                    booking.start_at,
                    booking.end_at,
                    effective_rules(booking.resource),
                    now,
                    institute_zone(booking.resource),
                )
            except InvalidTransition as refused:  # which visit: staff settle it first
                refused.details.update(booking_id=booking.id, resource_id=booking.resource_id)
                raise
    db.session.flush()
    db.session.execute(
        update(Booking)
        .where(Booking.id.in_([b.id for b in held]), Booking.status == BookingStatus.APPROVED)
        .values(status=BookingStatus.PENDING, decision_reason=text),
        execution_options={"synchronize_session": False},
    )
    for booking in held:  # the loaded rows say what the UPDATE wrote, without a re-read
        set_committed_value(booking, "status", BookingStatus.PENDING)
        set_committed_value(booking, "decision_reason", text)
    audit.record_many(
        hold_action,
        held,
        actor=actor,
        from_state=BookingStatus.APPROVED,
        to_state=BookingStatus.PENDING,
        reason=text,
        data=dict(hold_data),
    )
    return held


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
    """One message per booker listing their displaced bookings, queued as its facts
    (rendered with its alternatives when read or sent: ``displaced_notice``); the
    number queued (a message already queued under its dedupe key is not queued again).
    Three statements whatever the number of bookings and bookers."""
    by_booker: dict[int, list[Displaced]] = defaultdict(list)
    for item in displaced:
        by_booker[item.booking.user_id].append(item)
    if not by_booker:
        return 0
    keys = {user_id: notice.dedupe(user_id) for user_id in by_booker}
    taken = set(
        db.session.scalars(
            select(Notification.dedupe_key).where(Notification.dedupe_key.in_(keys.values()))
        )
    )
    taken |= {n.dedupe_key for n in db.session.new if isinstance(n, Notification)}
    languages = current_app.config.get("LANGUAGES", ["zh_CN", "en"])
    wanted = [user_id for user_id, key in keys.items() if key not in taken]
    locales = dict(
        db.session.execute(select(User.id, User.locale).where(User.id.in_(wanted))).tuples().all()
    )
    rows = [
        {
            "user_id": user_id,
            "kind": KIND,
            "booking_id": by_booker[user_id][0].booking.id,
            "locale": locales.get(user_id) if locales.get(user_id) in languages else languages[0],
            "dedupe_key": keys[user_id],
            "data": {
                "source": notice.source,
                "cancelled": cancelled,
                "message": text,
                "items": [
                    {
                        "id": i.booking.id,
                        "closed": [i.closed[0].isoformat(), i.closed[1].isoformat()],
                        **notice.about(i.booking),
                    }
                    for i in by_booker[user_id]
                ],
            },
        }
        for user_id in wanted
        if user_id in locales
    ]
    if rows:
        db.session.execute(insert(Notification), rows)
    return len(rows)
