from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, synonym

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import NotificationStatus, str_enum
from labshare.timeutil import utcnow

#: Renders an event row: (subject, body_text, body_html). Set by messaging/notify.py,
#: so that the model does not import the templates and the services.
Renderer = Callable[["Notification"], tuple[str, str, str | None]]
renderer: list[Renderer] = []
#: Renderers of the event rows of other kinds than booking events, by ``kind`` (set by
#: the module that queues them).
kind_renderers: dict[str, Renderer] = {}


class Notification(Base):
    """The outbox: one row per message to one user, written in the transaction that
    caused it. ``dedupe_key`` is unique, so a message is queued at most once; the
    row is also the user's in-app notification.

    Two styles of row: a *rendered* row carries its subject and bodies; an *event*
    row (``body_text`` NULL) carries only the event (``kind``, ``booking_id``, the
    recipient and ``locale``) and is rendered when it is read or sent, so that the
    transaction that queues it renders no template. ``subject``, ``body_text`` and
    ``body_html`` read the same for both."""

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
    stored_subject: Mapped[str | None] = mapped_column("subject", String(300))
    stored_body_text: Mapped[str | None] = mapped_column("body_text", Text)
    stored_body_html: Mapped[str | None] = mapped_column("body_html", Text)
    # The recipient's language when the event was queued (event rows).
    locale: Mapped[str | None] = mapped_column(String(10))
    # An event row's facts beyond its booking (e.g. the bookings a closure displaced
    # and the closed windows), for the renderer of its ``kind``.
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
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

    @property
    def is_event(self) -> bool:
        """Whether the row holds an event to be rendered rather than a message."""
        return self.stored_body_text is None

    def rendered(self) -> tuple[str, str, str | None]:
        """(subject, body_text, body_html): the stored ones, or the event rendered
        once per loaded instance (never written back)."""
        if not self.is_event:
            return self.stored_subject or "", self.stored_body_text or "", self.stored_body_html
        cached: tuple[str, str, str | None] | None = self.__dict__.get("_rendered_cache")
        if cached is None:
            cached = kind_renderers.get(self.kind, renderer[0])(self)
            self.__dict__["_rendered_cache"] = cached
        return cached

    def _get_subject(self) -> str:
        return self.rendered()[0]

    def _set_subject(self, value: str | None) -> None:
        self.stored_subject = value

    def _get_body_text(self) -> str:
        return self.rendered()[1]

    def _set_body_text(self, value: str | None) -> None:
        self.stored_body_text = value

    def _get_body_html(self) -> str | None:
        return self.rendered()[2]

    def _set_body_html(self, value: str | None) -> None:
        self.stored_body_html = value

    subject = synonym("stored_subject", descriptor=property(_get_subject, _set_subject))
    body_text = synonym("stored_body_text", descriptor=property(_get_body_text, _set_body_text))
    body_html = synonym("stored_body_html", descriptor=property(_get_body_html, _set_body_html))
