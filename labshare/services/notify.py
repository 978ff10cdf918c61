"""Writing messages to the outbox (the ``notification`` table).

A message is queued inside the business transaction that caused it, under a
unique ``dedupe_key``; it is delivered by the ``deliver`` job after the commit,
so nobody hears of a change that was rolled back, and nothing is queued twice.
"""

from __future__ import annotations

from sqlalchemy import select

from labshare.extensions import db
from labshare.models import Booking, Notification, User


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


#: Who hears of each booking event: the booker, or the institute's staff.
BOOKING_EVENTS = {
    "requested": "staff",  # a new request waits for approval
    "received": "booker",  # the booker's copy of a pending request
    "confirmed": "booker",  # auto-approved or approved
    "rejected": "booker",
    "cancelled": "both",
    "completed": "booker",
    "no_show": "booker",
}


def booking_event(booking: Booking, event: str) -> list[Notification]:
    """Queue the messages for one booking event, each in its recipient's language.

    The dedupe key (booking, event, recipient) makes the event's messages at most
    once, even when the code path runs twice.
    """
    from flask_babel import force_locale
    from flask_babel import gettext as _

    from labshare.models import Role

    audience = BOOKING_EVENTS[event]
    recipients: list[User] = []
    if audience in ("booker", "both"):
        recipients.append(booking.user)
    if audience in ("staff", "both"):
        recipients.extend(
            db.session.scalars(
                select(User).where(
                    User.institute_id == booking.institute_id,
                    User.role == Role.STAFF,
                    User.active.is_(True),
                )
            )
        )
    queued: list[Notification] = []
    for user in recipients:
        with force_locale(user.locale):
            subject = _("Booking %(id)s: %(event)s", id=booking.id, event=_(event))
            body = _(
                "Booking %(id)s of %(resource)s is now %(status)s.",
                id=booking.id,
                resource=booking.resource.name,
                status=_(str(booking.status)),
            )
        note = enqueue(
            user,
            f"booking_{event}",
            subject=subject,
            body_text=body,
            booking=booking,
            dedupe_key=f"booking:{booking.id}:{event}:{user.id}",
        )
        if note is not None:
            queued.append(note)
    return queued
