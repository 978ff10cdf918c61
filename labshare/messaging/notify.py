"""Writing messages to the outbox (the ``notification`` table).

A message is queued inside the business transaction that caused it, under a
unique ``dedupe_key``; it is delivered by the ``deliver`` job after the commit,
so nobody hears of a change that was rolled back, and nothing is queued twice.

Messages are rendered in the recipient's language (``User.locale``) from
``templates/email/<name>.txt`` and ``.html``; booking times are shown in the
institute's zone. The row is also the user's in-app notification.

Booking events are queued as *event rows* (kind, booking, recipient, locale) and
rendered only when read or sent (``render_event``), so a booking's transaction
renders no template. The other messages are rendered here, once, when queued;
the sender and the inbox handle both styles alike (``Notification.rendered``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from babel.dates import format_date
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import delete, select

from labshare.extensions import db
from labshare.labels import label
from labshare.models import (
    Booking,
    BookingSeries,
    BookingStatus,
    Instrument,
    Lab,
    Notification,
    NotificationStatus,
    Resource,
    Role,
    User,
)
from labshare.models import notification as notification_model
from labshare.timeutil import to_local, utcnow


def enqueue(
    user: User,
    kind: str,
    *,
    subject: str,
    body_text: str,
    body_html: str | None = None,
    booking: Booking | None = None,
    dedupe_key: str,
) -> Notification | None:
    """Queue one message to ``user``. Returns None when ``dedupe_key`` was already
    queued (in this transaction or before)."""
    for pending in db.session.new:
        if isinstance(pending, Notification) and pending.dedupe_key == dedupe_key:
            return None
    exists = db.session.scalar(select(Notification.id).where(Notification.dedupe_key == dedupe_key))
    if exists is not None:
        return None
    notification = Notification(
        user_id=user.id,
        kind=kind,
        subject=subject[:300],
        body_text=body_text,
        body_html=body_html,
        booking_id=booking.id if booking is not None else None,
        dedupe_key=dedupe_key,
    )
    db.session.add(notification)
    return notification


# --- formatting at the edge: the recipient's language, the institute's zone ----------


def _locale_of(user: User) -> str:
    languages = current_app.config.get("LANGUAGES", ["zh_CN", "en"])
    return user.locale if user.locale in languages else str(languages[0])


def format_local(value: dt.datetime, tz: str, locale: str) -> str:
    """``Monday, January 7, 2030 09:00`` / ``2030年1月7日星期一 09:00`` in zone ``tz``."""
    local = to_local(value, tz)
    return f"{format_date(local.date(), 'full', locale=locale)} {local:%H:%M}"


def format_span(start: dt.datetime, end: dt.datetime, tz: str, locale: str) -> str:
    """A booking's time in the institute's zone, with the zone and its UTC offset."""
    local_start = to_local(start, tz)
    local_end = to_local(end, tz)
    offset = local_start.strftime("%z")
    zone_label = f"{tz}, UTC{offset[:3]}:{offset[3:]}"
    if local_end.date() == local_start.date():
        span = f"{format_local(start, tz, locale)}–{local_end:%H:%M}"
    else:
        span = f"{format_local(start, tz, locale)} – {format_local(end, tz, locale)}"
    return f"{span} ({zone_label})"


def resource_name(resource: Resource, locale: str) -> str:
    if locale.startswith("en") and resource.name_en:
        return resource.name_en
    return resource.name


def locale_of(user: User) -> str:
    """The language ``user``'s messages are written in."""
    return _locale_of(user)


def render_for(template: str, user: User, /, **context: Any) -> tuple[str, str]:
    """Text and HTML of ``templates/email/<template>``; the caller holds force_locale."""
    return _render(template, user, **context)


def _render(template: str, user: User, /, **context: Any) -> tuple[str, str]:
    """Render ``templates/email/<template>.txt`` and ``.html``; the caller holds force_locale."""
    env = current_app.jinja_env
    context.setdefault("user", user)
    context.setdefault("base_url", str(current_app.config.get("PUBLIC_BASE_URL", "")).rstrip("/"))
    text = env.get_template(f"email/{template}.txt").render(**context)
    html = env.get_template(f"email/{template}.html").render(**context)
    return text, html


def _booking_context(booking: Booking, locale: str) -> dict[str, Any]:
    institute = booking.resource.institute
    return {
        "booking": booking,
        "resource_name": resource_name(booking.resource, locale),
        "institute_name": institute.name_en
        if locale.startswith("en") and institute.name_en
        else institute.name,
        "when": format_span(booking.start_at, booking.end_at, institute.timezone, locale),
        "timezone": institute.timezone,
    }


def _staff_of(institute_id: int) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .where(
                User.institute_id == institute_id,
                User.role == Role.STAFF,
                User.active.is_(True),
            )
            .order_by(User.id)
        )
    )


# --- booking events ---------------------------------------------------------------

#: Who hears of each booking event: the booker, or the institute's staff.
BOOKING_EVENTS = {
    "requested": "staff",  # a new request waits for approval
    "received": "booker",  # the booker's copy of a pending request
    "confirmed": "booker",  # auto-approved or approved
    "rejected": "booker",
    "cancelled": "both",
    "completed": "booker",
    "no_show": "booker",
    "moved": "both",  # booking/move.py: the new time, approved or as it was
    "moved_pending": "both",  # the new time waits for approval
}


def _event_subject(event: str, booking_id: int, name: str) -> str:
    subjects = {
        "requested": _("New booking request %(id)s: %(name)s", id=booking_id, name=name),
        "received": _("Booking request %(id)s received: %(name)s", id=booking_id, name=name),
        "confirmed": _("Booking %(id)s confirmed: %(name)s", id=booking_id, name=name),
        "rejected": _("Booking %(id)s rejected: %(name)s", id=booking_id, name=name),
        "cancelled": _("Booking %(id)s cancelled: %(name)s", id=booking_id, name=name),
        "completed": _("Booking %(id)s completed: %(name)s", id=booking_id, name=name),
        "no_show": _("Booking %(id)s marked as no-show: %(name)s", id=booking_id, name=name),
        "moved": _("Booking %(id)s moved: %(name)s", id=booking_id, name=name),
        "moved_pending": _(
            "Booking %(id)s moved, waiting for approval: %(name)s", id=booking_id, name=name
        ),
    }
    return subjects[event]


def booking_event(booking: Booking, event: str) -> list[Notification]:
    """Queue the messages for one booking event, each in its recipient's language.

    The dedupe key (booking, event, recipient) makes the event's messages at most
    once, even when the code path runs twice.
    """
    collector = _series_collector.get()  # recurring series: one message per series
    if collector is not None:
        collector.append((booking, event))
        return []
    audience = BOOKING_EVENTS[event]
    recipients: list[User] = []
    if audience in ("booker", "both"):
        recipients.append(booking.user)
    if audience in ("staff", "both"):
        recipients.extend(u for u in _staff_of(booking.institute_id) if u not in recipients)
    queued: list[Notification] = []
    for user in recipients:
        note = enqueue_event(user, booking, event)
        if note is not None:
            queued.append(note)
    return queued


def enqueue_event(user: User, booking: Booking, event: str) -> Notification | None:
    """Queue booking ``event`` for ``user`` as an event row (rendered when read or
    sent). None when it was queued already. A moved booking's events are keyed by
    its move too, so each move is told (and what follows it, once more)."""
    dedupe_key = f"booking:{booking.id}:{event}:{user.id}"
    if booking.moves:
        dedupe_key = f"booking:{booking.id}:m{booking.moves}:{event}:{user.id}"
    return _event_row(user, booking, f"booking_{event}", dedupe_key)


def _event_row(user: User, booking: Booking, kind: str, dedupe_key: str) -> Notification | None:
    for pending in db.session.new:
        if isinstance(pending, Notification) and pending.dedupe_key == dedupe_key:
            return None
    exists = db.session.scalar(select(Notification.id).where(Notification.dedupe_key == dedupe_key))
    if exists is not None:
        return None
    note = Notification(
        user_id=user.id,
        kind=kind,
        booking_id=booking.id,
        locale=_locale_of(user),
        dedupe_key=dedupe_key,
    )
    db.session.add(note)
    return note


#: The booking's status when each event happened. The message is rendered when it is
#: sent or read, so it shows the booking as it is then (time, resource, status) and,
#: where the status has changed since, says that the event is a record of the past.
EVENT_STATUS = {
    "requested": "pending",
    "received": "pending",
    "confirmed": "approved",
    "rejected": "rejected",
    "cancelled": "cancelled",
    "completed": "completed",
    "no_show": "no_show",
    "moved": "approved",
    "moved_pending": "pending",
}


def render_event(note: Notification) -> tuple[str, str, str | None]:
    """Subject, text and HTML of an event row (a booking event or a reminder), in the
    locale it was queued with, showing the booking as it is now."""
    event = note.kind.removeprefix("booking_")
    user = db.session.get(User, note.user_id)
    booking = db.session.get(Booking, note.booking_id) if note.booking_id is not None else None
    if user is None or booking is None or (event not in EVENT_STATUS and event != REMINDER_KIND):
        raise LookupError(f"notification {note.id}: {note.kind} cannot be rendered")
    languages = current_app.config.get("LANGUAGES", ["zh_CN", "en"])
    locale = note.locale if note.locale and note.locale in languages else _locale_of(user)
    with force_locale(locale):
        context = _booking_context(booking, locale)
        if event == REMINDER_KIND:
            subject = _(
                "Reminder: %(name)s, %(when)s",
                name=context["resource_name"],
                when=format_local(booking.start_at, context["timezone"], locale),
            )
            text, html = _render(
                "reminder", user, status=label(BookingStatus(booking.status)), **context
            )
            return subject[:300], text, html
        subject = _event_subject(event, booking.id, context["resource_name"])
        now_status = str(booking.status)
        text, html = _render(
            "booking_event",
            user,
            event=event,
            for_staff=user.role == Role.STAFF,
            status=label(BookingStatus(now_status)),
            changed_since=now_status != EVENT_STATUS[event],
            event_on=format_local(note.created_at or utcnow(), context["timezone"], locale),
            together=[resource_name(b.resource, locale) for b in _others_of_group(booking)],
            **context,
        )
    return subject[:300], text, html


def _others_of_group(booking: Booking) -> list[Booking]:
    """The other bookings made together with ``booking`` (a booking group)."""
    if booking.group_id is None:
        return []
    return list(
        db.session.scalars(
            select(Booking)
            .where(Booking.group_id == booking.group_id, Booking.id != booking.id)
            .order_by(Booking.resource_id)
        )
    )


notification_model.renderer[:] = [render_event]


# --- recurring series (one message per series event, not one per occurrence) -------

_series_collector: ContextVar[list[tuple[Booking, str]] | None] = ContextVar(
    "series_collector", default=None
)


@contextmanager
def collect_booking_events() -> Iterator[list[tuple[Booking, str]]]:
    """Inside the block, ``booking_event`` queues nothing and records (booking,
    event) instead; the series code then sends one ``series_event`` per event."""
    events: list[tuple[Booking, str]] = []
    token = _series_collector.set(events)
    try:
        yield events
    finally:
        _series_collector.reset(token)


def series_event(
    series: BookingSeries, events: Sequence[tuple[Booking, str]]
) -> list[Notification]:
    """One message per (event, recipient) listing the series' occurrences the event
    concerns; a single occurrence gets the ordinary booking message."""
    by_event: dict[str, list[Booking]] = {}
    for booking, event in events:
        by_event.setdefault(event, []).append(booking)
    queued: list[Notification] = []
    for event, bookings in by_event.items():
        if len(bookings) == 1:
            queued.extend(booking_event(bookings[0], event))
            continue
        audience = BOOKING_EVENTS[event]
        recipients: list[User] = []
        if audience in ("booker", "both"):
            recipients.append(bookings[0].user)
        if audience in ("staff", "both"):
            recipients.extend(u for u in _staff_of(series.institute_id) if u not in recipients)
        digest = _digest(sorted(b.id for b in bookings))
        for user in recipients:
            locale = _locale_of(user)
            with force_locale(locale):
                items = [_booking_context(b, locale) for b in bookings]
                subject = _(
                    "Series %(id)s (%(count)s bookings) %(event)s: %(name)s",
                    id=series.id,
                    count=len(bookings),
                    event=_series_event_label(event),
                    name=items[0]["resource_name"],
                )
                text, html = _render(
                    "series_event",
                    user,
                    series=series,
                    event=event,
                    items=items,
                    for_staff=user.role == Role.STAFF,
                )
            note = enqueue(
                user,
                f"series_{event}",
                subject=subject,
                body_text=text,
                body_html=html,
                booking=bookings[0],
                dedupe_key=f"series:{series.id}:{event}:{user.id}:{digest}",
            )
            if note is not None:
                queued.append(note)
    return queued


def _series_event_label(event: str) -> str:
    labels = {
        "requested": _("requested"),
        "received": _("received"),
        "confirmed": _("confirmed"),
        "rejected": _("rejected"),
        "cancelled": _("cancelled"),
        "completed": _("completed"),
        "no_show": _("no-show"),
    }
    return labels.get(event, event)


# --- scheduled messages ---------------------------------------------------------------

REMINDER_KIND = "reminder"


def reminder(booking: Booking, hours: int) -> Notification | None:
    """Queue the reminder ``hours`` before the start, to the booker, as an event row:
    rendered when sent or read, it shows the booking's time and resource as they are
    then (an .ics is attached at delivery, see ``booking_ics``). One queued before a
    move or a cancellation is not sent (``reminder_applies``)."""
    user = booking.user
    return _event_row(user, booking, REMINDER_KIND, f"reminder:{booking.id}:{hours}h:{user.id}")


#: The mark a reminder's key gets when its booking moves after it was queued
#: (``booking/move.py``): it was for the old time.
MOVED_MARK = ":moved"


def reminder_applies(note_id: int, now: dt.datetime) -> bool:
    """Whether the reminder row ``note_id`` may still be sent: its booking is approved and
    ahead, and has not moved since the reminder was queued."""
    # One statement reads the booking and the row's key: a move updates both in one
    # transaction, so on PostgreSQL (a fresh snapshot per statement) two reads could
    # see the booking moved and the key not yet marked, and send a second reminder.
    row = db.session.execute(
        select(Booking, Notification.dedupe_key)
        .join(Notification, Notification.booking_id == Booking.id)
        .where(Notification.id == note_id)
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        return False
    booking, dedupe_key = row
    return (
        booking.status == BookingStatus.APPROVED
        and booking.start_at > now
        and MOVED_MARK not in dedupe_key
    )


def drop_unsent_reminders(booking_ids: Sequence[int]) -> int:
    """Delete the reminders of these bookings not yet taken for sending, in one
    statement: they no longer apply (it moved, or stopped holding its time). The
    reminder job's markers decide whether a new one is queued."""
    result = db.session.execute(
        delete(Notification)
        .where(
            Notification.booking_id.in_(list(booking_ids)),
            Notification.kind == REMINDER_KIND,
            Notification.status == NotificationStatus.PENDING,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def reminders_follow_status(booking: Booking, *, before: str, after: str, **_kw: Any) -> None:
    """``signals.status_changed``: a booking that is no longer approved loses its
    unsent reminders."""
    if after != BookingStatus.APPROVED:
        drop_unsent_reminders([booking.id])


def reminders_follow_statuses(bookings: Sequence[Booking], *, after: str, **_kw: Any) -> None:
    """``signals.statuses_changed``: ``reminders_follow_status`` of a bulk move."""
    if after != BookingStatus.APPROVED and bookings:
        drop_unsent_reminders([b.id for b in bookings])


def _digest(ids: Sequence[int]) -> str:
    return hashlib.sha256(",".join(str(i) for i in ids).encode()).hexdigest()[:24]


def booking_ics(booking: Booking) -> bytes:
    """An iCalendar event for the booking; its UID is stable, so a calendar that
    receives it twice (two reminders) updates one event rather than adding two."""
    from icalendar import Calendar, Event

    resource = booking.resource
    institute = resource.institute
    cal = Calendar()
    cal.add("prodid", "-//LabShare//Booking reminder//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"booking-{booking.id}@labshare")
    event.add("dtstamp", booking.updated_at or booking.created_at)
    event.add("dtstart", booking.start_at)
    event.add("dtend", booking.end_at)
    event.add("summary", f"{resource.name} ({institute.name})")
    place = resource.location if isinstance(resource, Lab) else None
    if isinstance(resource, Instrument):
        place = resource.lab.location
    location = ", ".join(p for p in (institute.name, place or institute.address) if p)
    event.add("location", location)
    event.add("description", booking.purpose)
    event.add("status", "CONFIRMED")
    cal.add_component(event)
    return bytes(cal.to_ical())
