from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Numeric
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base, UTCDateTime
from labshare.timeutil import utcnow


class UsageDaily(Base):
    """The nightly roll-up: one row per local day (the institute's zone) and resource,
    plus one institute total per day (``resource_id`` NULL), for campaign statistics.

    Bookings are counted on the local day they start. Recomputing a day replaces its
    rows, so the roll-up can run any number of times.
    """

    __tablename__ = "usage_daily"
    __table_args__ = (
        Index("ix_usage_daily_day_institute_resource", "day", "institute_id", "resource_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)
    institute_id: Mapped[int] = mapped_column(ForeignKey("institute.id", ondelete="CASCADE"))
    resource_id: Mapped[int | None] = mapped_column(
        ForeignKey("resource.id", ondelete="CASCADE"), index=True
    )
    bookings_total: Mapped[int] = mapped_column(default=0)
    pending: Mapped[int] = mapped_column(default=0)
    approved: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    cancelled: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    no_show: Mapped[int] = mapped_column(default=0)
    usage_minutes: Mapped[int] = mapped_column(default=0)
    companies_served: Mapped[int] = mapped_column(default=0)
    verification: Mapped[int] = mapped_column(default=0)
    calibration: Mapped[int] = mapped_column(default=0)
    testing: Mapped[int] = mapped_column(default=0)
    training: Mapped[int] = mapped_column(default=0)
    consultation: Mapped[int] = mapped_column(default=0)
    problems_solved: Mapped[int] = mapped_column(default=0)
    fees: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    fees_waived: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
