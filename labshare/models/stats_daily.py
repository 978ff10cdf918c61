from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Date, Index, Numeric
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


class StatsDaily(Base):
    """The campaign counters of the bookings of one institute that start on one local
    day (its zone), as ``campaign/stats.py`` counts them. Only trusted while no
    ``stats_dirty`` row of the institute names the UTC day before, on or after it:
    triggers (migration 0011) add one in the same transaction as any change."""

    __tablename__ = "stats_daily"
    __table_args__ = (
        Index("ix_stats_daily_institute_day", "institute_id", "day"),
        # SQLite: rows stored in key order, so a range of days is read without a
        # lookup per row.
        {"sqlite_with_rowid": False},
    )

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


#: ``stats_first_use.institute_id`` of a company's first day at any institute.
ANY_INSTITUTE = 0


class StatsFirstUse(Base):
    """The first local day (its institute's zone) on which a company had a completed
    booking at an institute, and (``institute_id`` = ``ANY_INSTITUTE``) the least of
    those over every institute: new SMEs become a range count. Kept like
    ``stats_daily``: recomputed by the ``rollup`` job for the companies of a dirty
    day, and only trusted for a company no ``stats_dirty`` marker names
    (``campaign/first_use.py``)."""

    __tablename__ = "stats_first_use"
    __table_args__ = (
        Index("ix_stats_first_use_institute_day", "institute_id", "day", "company_id"),
        {"sqlite_with_rowid": False},
    )

    company_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    institute_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    day: Mapped[dt.date] = mapped_column(Date)


class StatsWait(Base):
    """How many bookings of an institute starting on a local day (its zone) were
    decided after each whole number of minutes (``campaign/waits.py``); institute
    ``ANY_INSTITUTE`` holds the sum over every institute. Trusted, like
    ``stats_daily``, only for days no ``stats_dirty`` marker makes dirty."""

    __tablename__ = "stats_wait"
    __table_args__ = ({"sqlite_with_rowid": False},)

    institute_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    minutes: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(default=0)


class StatsUsed(Base):
    """A company served (``kind`` 1) or an instrument used (``kind`` 2) by a completed
    booking of an institute starting in a local month (its zone, ``month`` its first
    day); ``n`` such bookings. Institute ``ANY_INSTITUTE``: ``n`` institutes have the
    row. Trusted, like ``stats_daily``, only for months holding no day a
    ``stats_dirty`` marker makes dirty (``campaign/used.py``)."""

    __tablename__ = "stats_used"
    __table_args__ = ({"sqlite_with_rowid": False},)

    kind: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    institute_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    item_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(default=0)
