"""The message to a booker whose bookings a closure or a new public holiday displaced,
rendered when it is read or sent, not when the time is closed.

``displaced.tell`` queues one event row per booker (``Notification.data``: the
bookings, the closed window each falls in, cancelled or on hold, the staff's message,
what closed the time); here, in the reader's language, the nearest free alternatives
are computed as the calendar stands then (they avoid the closed windows and every
holiday the resource follows, and are free at that time) and the text is rendered.
The outbox delivers the row once (its claim), and the inbox renders it when shown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from labshare.booking import displaced, workdays
from labshare.booking.permissions import can_view_booking
from labshare.booking.rules import Span, institute_zone
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import Booking, Notification, Resource, User
from labshare.models import notification as notification_model


def _when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _holidays_on(resource: Resource, start: dt.datetime, end: dt.datetime) -> list[Span]:
    """Every holiday ``resource`` follows, as the calendar stands now."""
    days = workdays.days_of_resource(resource)
    return [
        span for _day, span in workdays.holidays_between(days, institute_zone(resource), start, end)
    ]


def _closed_on(source: dict[str, Any]) -> displaced.ClosedOn:
    """What alternatives avoid: the holidays always; a closure's window on the
    resources it closes too (it may have been lifted since: the message still says it)."""
    window: Span | None = None
    closed_ids: set[int] = set()
    if source.get("type") == "closure":
        window = (_when(source["start"]), _when(source["end"]))
        closed_ids = set(source.get("closed_ids", []))

    def closed_on(resource: Resource, start: dt.datetime, end: dt.datetime) -> list[Span]:
        spans = _holidays_on(resource, start, end)
        if window is not None and resource.id in closed_ids:
            spans.append(window)
        return spans

    return closed_on


def _day_label(day: dict[str, Any], locale: str) -> str:
    if locale.startswith("en") and day.get("name_en"):
        return str(day["name_en"])
    return str(day.get("name", ""))


def _wording(
    source: dict[str, Any], items: Sequence[dict[str, Any]], locale: str
) -> tuple[str, str]:
    """(subject, headline) in ``locale`` (the caller holds force_locale)."""
    if source.get("type") == "closure":
        resource = db.session.get(Resource, source["resource_id"])
        name = notify.resource_name(resource, locale) if resource is not None else ""
        tz = institute_zone(resource) if resource is not None else "UTC"
        when = notify.format_span(_when(source["start"]), _when(source["end"]), tz, locale)
        return (
            _("%(name)s is closed: your bookings need attention", name=name),
            _("%(resource)s is closed %(when)s.", resource=name, when=when),
        )
    days = {i["day"]["day"]: i["day"] for i in items if i.get("day")}
    listed = ", ".join(f"{d} {_day_label(days[d], locale)}" for d in sorted(days))
    return (
        _("A public holiday closes the lab: your bookings need attention"),
        _(
            "A public holiday was added to the calendar (%(days)s): the labs that follow "
            "it are closed that day.",
            days=listed,
        ),
    )


def render(note: Notification) -> tuple[str, str, str | None]:
    """Subject, text and HTML of a displaced-bookings row, alternatives as of now."""
    data = note.data or {}
    user = db.session.get(User, note.user_id)
    if user is None or not data.get("items"):
        raise LookupError(f"notification {note.id}: {note.kind} cannot be rendered")
    items: list[dict[str, Any]] = data["items"]
    ids = [int(i["id"]) for i in items]
    loaded = {b.id: b for b in db.session.scalars(select(Booking).where(Booking.id.in_(ids)))}
    languages = current_app.config.get("LANGUAGES", ["zh_CN", "en"])
    locale = note.locale if note.locale and note.locale in languages else notify.locale_of(user)
    source: dict[str, Any] = data.get("source", {})
    search = displaced.Search(_closed_on(source))
    with force_locale(locale):
        context = []
        for item in items:
            booking = loaded.get(int(item["id"]))
            # deleted, or no longer the reader's to see (they left the company)
            if booking is None or not can_view_booking(user, booking):
                continue
            closed = (_when(item["closed"][0]), _when(item["closed"][1]))
            found = displaced.alternatives(displaced.Displaced(booking, closed), search)
            context.append(
                {
                    "booking": booking,
                    "resource_name": notify.resource_name(booking.resource, locale),
                    "when": notify.format_span(
                        booking.start_at, booking.end_at, institute_zone(booking.resource), locale
                    ),
                    "alternatives": [
                        {
                            "name": notify.resource_name(a.resource, locale),
                            "resource_id": a.resource.id,
                            "when": notify.format_span(
                                a.start, a.end, institute_zone(a.resource), locale
                            ),
                        }
                        for a in found
                    ],
                }
            )
        subject, headline = _wording(source, items, locale)
        text, html = notify.render_for(
            displaced.KIND,
            user,
            headline=headline,
            cancelled=bool(data.get("cancelled")),
            message=data.get("message"),
            items=context,
        )
    return subject[:300], text, html


def register() -> None:
    """The outbox and the inbox render these rows here."""
    notification_model.kind_renderers[displaced.KIND] = render
