from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import NotificationStatus, str_enum
from labshare.timeutil import utcnow


class Notification(Base):
    """The outbox: one row per message to one user, written in the transaction that
    caused it. ``dedupe_key`` is unique, so a message is queued at most once; the
    row is also the user's in-app notification."""

    __tablename__ = "notification"
    __table_args__ = (
        Index("ix_notification_status_next", "status", "next_attempt_at"),
        Index("ix_notification_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id"))
    kind: Mapped[str] = mapped_column(String(50))
    # Set for a message to someone without an account yet (an invitation): the mail
    # goes there, and ``user_id`` (the sender) keeps the in-app copy.
    to_email: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    status: Mapped[NotificationStatus] = mapped_column(
        str_enum(NotificationStatus, "notification_status"), default=NotificationStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))
    message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
