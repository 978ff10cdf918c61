from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Index, Numeric
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base

#: The additive counters of one institute's UTC day (``stats_daily``), in this order.
STATS_DAILY_COUNTS: tuple[str, ...] = (
    "bookings_total",
    "pending",
    "approved",
    "rejected",
    "cancelled",
    "completed",
    "no_show",
    "usage_minutes",
    "verification",
    "calibration",
    "testing",
    "training",
    "consultation",
    "problems_solved",
)


#: Upper edges (exclusive) of the decision-wait buckets, in microseconds; the last
#: bucket is open.
WAIT_EDGES_US: tuple[int, ...] = tuple(
    s * 1_000_000 for s in (1, 60, 61, 300, 900, 3600, 14400, 43200, 86400, 259200, 604800)
)
WAIT_BUCKETS = len(WAIT_EDGES_US) + 1


class StatsDaily(Base):
    """The campaign counters of the bookings of one institute that start on one local
    day (its zone), as ``services/stats.py`` counts them. Only trusted while no
    ``stats_dirty`` row of the institute names the UTC day before, on or after it:
    triggers (migration 0011) add one in the same transaction as any change."""

    __tablename__ = "stats_daily"
    __table_args__ = (Index("ix_stats_daily_institute_day", "institute_id", "day"),)

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    institute_id: Mapped[int] = mapped_column(primary_key=True)
    bookings_total: Mapped[int] = mapped_column(default=0)
    pending: Mapped[int] = mapped_column(default=0)
    approved: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    cancelled: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    no_show: Mapped[int] = mapped_column(default=0)
    usage_minutes: Mapped[int] = mapped_column(default=0)
    verification: Mapped[int] = mapped_column(default=0)
    calibration: Mapped[int] = mapped_column(default=0)
    testing: Mapped[int] = mapped_column(default=0)
    training: Mapped[int] = mapped_column(default=0)
    consultation: Mapped[int] = mapped_column(default=0)
    problems_solved: Mapped[int] = mapped_column(default=0)
    fees: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    fees_waived: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    #: bookings with a decision (the median decision time's count)
    decided: Mapped[int] = mapped_column(default=0)
    # The decided bookings' waits (decided - created, whole microseconds) by bucket
    # (``WAIT_EDGES_US``): how many, the least and the greatest; the median finds its
    # bucket from these and reads the bookings only when the bucket's waits differ.
    wait_n_0: Mapped[int] = mapped_column(default=0)
    wait_n_1: Mapped[int] = mapped_column(default=0)
    wait_n_2: Mapped[int] = mapped_column(default=0)
    wait_n_3: Mapped[int] = mapped_column(default=0)
    wait_n_4: Mapped[int] = mapped_column(default=0)
    wait_n_5: Mapped[int] = mapped_column(default=0)
    wait_n_6: Mapped[int] = mapped_column(default=0)
    wait_n_7: Mapped[int] = mapped_column(default=0)
    wait_n_8: Mapped[int] = mapped_column(default=0)
    wait_n_9: Mapped[int] = mapped_column(default=0)
    wait_n_10: Mapped[int] = mapped_column(default=0)
    wait_n_11: Mapped[int] = mapped_column(default=0)
    wait_min_0: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_1: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_2: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_3: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_4: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_5: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_6: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_7: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_8: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_9: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_10: Mapped[int | None] = mapped_column(BigInteger)
    wait_min_11: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_0: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_1: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_2: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_3: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_4: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_5: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_6: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_7: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_8: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_9: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_10: Mapped[int | None] = mapped_column(BigInteger)
    wait_max_11: Mapped[int | None] = mapped_column(BigInteger)


class StatsDirty(Base):
    """A (resource, UTC day) whose bookings or usage records changed since
    ``stats_daily`` was last computed for its institute's local days around it. Written only by
    triggers (insert, or bump ``n`` to hold the row's lock until commit); removed
    by the ``rollup`` job when it recomputes the day."""

    __tablename__ = "stats_dirty"
    __table_args__ = (Index("ix_stats_dirty_day_institute", "day", "institute_id"),)

    resource_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    institute_id: Mapped[int]
    n: Mapped[int] = mapped_column(default=1)
