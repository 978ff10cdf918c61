from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import ServiceType, str_enum
from labshare.timeutil import utcnow

if TYPE_CHECKING:
    from labshare.models.booking import Booking


class UsageRecord(Base):
    """What actually happened in a booking, recorded by institute staff."""

    __tablename__ = "usage_record"
    __table_args__ = (
        CheckConstraint("checked_out_at > checked_in_at", name="out_after_in"),
        CheckConstraint("samples_count >= 0", name="samples_nonnegative"),
        # The statistics' join from a booking to its usage, from the index alone (0011).
        Index(
            "ix_usage_record_stats",
            "booking_id",
            "service_type",
            "problem_solved",
            "checked_in_at",
            "checked_out_at",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id"), unique=True)
    checked_in_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    checked_out_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    service_type: Mapped[ServiceType] = mapped_column(str_enum(ServiceType, "service_type"))
    samples_count: Mapped[int] = mapped_column(default=0)
    problem_solved: Mapped[bool] = mapped_column(default=False)
    notes: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    booking: Mapped[Booking] = relationship(back_populates="usage")
