"""The in-app side of the outbox: a user's notifications, read or unread."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from labshare.errors import NotFound
from labshare.extensions import db
from labshare.models import Notification, User
from labshare.timeutil import utcnow

PAGE_SIZE = 50

#: Mailed only: their secret links (password reset, e-mail verification) must not be
#: readable by whoever holds a session (accounts/passwords.py).
MAIL_ONLY_KINDS = ("password_reset", "verify_email", "account_exists")


def list_notifications(user: User, *, page: int = 1) -> tuple[list[Notification], int]:
    """The user's notifications, newest first, and how many there are in all."""
    total = db.session.scalar(
        select(func.count(Notification.id)).where(
            Notification.user_id == user.id, Notification.kind.not_in(MAIL_ONLY_KINDS)
        )
    )
    rows = db.session.scalars(
        select(Notification)
        .where(Notification.user_id == user.id, Notification.kind.not_in(MAIL_ONLY_KINDS))
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(PAGE_SIZE)
        .offset((max(page, 1) - 1) * PAGE_SIZE)
    ).all()
    return list(rows), int(total or 0)


def unread_count(user: User) -> int:
    return int(
        db.session.scalar(
            select(func.count(Notification.id)).where(
                Notification.user_id == user.id,
                Notification.read_at.is_(None),
                Notification.kind.not_in(MAIL_ONLY_KINDS),
            )
        )
        or 0
    )


def mark_read(user: User, notification_id: int) -> Notification:
    """Mark one of ``user``'s notifications read; another user's is NotFound."""
    notification = db.session.get(Notification, notification_id)
    if (
        notification is None
        or notification.user_id != user.id
        or notification.kind in MAIL_ONLY_KINDS
    ):
        raise NotFound(_l("No such notification."))
    if notification.read_at is None:
        notification.read_at = utcnow()
        db.session.flush()
    return notification


def mark_all_read(user: User) -> int:
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
