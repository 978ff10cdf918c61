from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base, UTCDateTime
from labshare.timeutil import utcnow


class LoginThrottle(Base):
    """Failed logins of one e-mail address from one client address
    (accounts/accounts.py): the delay grows per pair, so a stranger elsewhere can
    slow down only their own attempts, never the owner's. Rows exist for unknown
    addresses too, so an account that exists behaves like one that does not."""

    __tablename__ = "login_throttle"
    __table_args__ = (
        UniqueConstraint("email", "address"),
        Index("ix_login_throttle_last_failure_at", "last_failure_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(default=0)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
