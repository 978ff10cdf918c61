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
