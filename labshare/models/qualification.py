from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base, UTCDateTime
from labshare.timeutil import utcnow


class Qualification(Base):
    """A user cleared by institute staff to use an instrument that requires training."""

    __tablename__ = "qualification"
    __table_args__ = (
        UniqueConstraint("user_id", "resource_id", name="uq_qualification_user_resource"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    valid_until: Mapped[dt.date | None]
