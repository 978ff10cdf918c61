"""Quotas per period: at most so many hours or bookings per company per
day, week, month or year, for one resource or a whole institute."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base, UTCDateTime
from labshare.timeutil import utcnow

if TYPE_CHECKING:
    from labshare.models.resource import Resource


class QuotaPeriod(enum.StrEnum):
    """Calendar periods in the institute's zone; weeks start on Monday."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class BookingQuota(Base):
    """A limit on one company's bookings per period.

    ``resource_id`` set: a lab's quota covers the lab and all its instruments, an
    instrument's just itself. ``resource_id`` NULL: the whole institute. At least
    one of ``max_hours`` and ``max_bookings`` is set.
    """

    __tablename__ = "booking_quota"
    __table_args__ = (
        CheckConstraint("period IN ('day', 'week', 'month', 'year')", name="quota_period"),
        CheckConstraint(
            "max_hours IS NOT NULL OR max_bookings IS NOT NULL", name="quota_has_limit"
        ),
        CheckConstraint("max_hours IS NULL OR max_hours > 0", name="quota_hours_positive"),
        CheckConstraint("max_bookings IS NULL OR max_bookings > 0", name="quota_bookings_positive"),
        Index("ix_booking_quota_institute", "institute_id"),
        Index("ix_booking_quota_resource", "resource_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    institute_id: Mapped[int] = mapped_column(ForeignKey("institute.id", ondelete="CASCADE"))
    resource_id: Mapped[int | None] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(8))
    max_hours: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    max_bookings: Mapped[int | None]
    count_completed: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    resource: Mapped[Resource | None] = relationship()
