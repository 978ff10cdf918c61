from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import ClosureKind, str_enum


class Closure(Base):
    """A period when a lab (and so all its instruments) or one instrument is not bookable."""

    __tablename__ = "closure"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="end_after_start"),
        Index("ix_closure_resource_start", "resource_id", "start_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    kind: Mapped[ClosureKind] = mapped_column(
        str_enum(ClosureKind, "closure_kind"), default=ClosureKind.OTHER
    )
    note: Mapped[str | None] = mapped_column(String(300))
