from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base, UTCDateTime
from labshare.timeutil import utcnow


class CalendarDay(Base):
    """A day of the national (or a province's) working calendar that is not what its
    weekday says: a public holiday (``kind='holiday'``: labs that follow the calendar
    are closed the whole local day) or a make-up workday (``kind='workday'``, 调休: a
    Saturday or Sunday worked, with the opening hours of weekday ``works_as``).

    Rows are never updated, only deleted and inserted (``labshare.booking.workdays``),
    and every change writes a new ``CalendarState.token`` in the same transaction: the
    in-process copy of the calendar is keyed by that token."""

    __tablename__ = "calendar_day"
    __table_args__ = (
        UniqueConstraint("region", "day", name="uq_calendar_day_region_day"),
        CheckConstraint("kind IN ('holiday', 'workday')", name="calendar_day_kind"),
        CheckConstraint(
            "works_as IS NULL OR (works_as >= 0 AND works_as <= 6)", name="works_as_range"
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: '' for the national calendar, else a province code (``institute.province_code``).
    region: Mapped[str] = mapped_column(String(6), default="")
    day: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(100))
    works_as: Mapped[int | None] = mapped_column(SmallInteger)
    #: 'library' (chinese-calendar), 'file' (labshare/data/holidays_cn.json) or 'admin'.
    source: Mapped[str] = mapped_column(String(10), default="admin")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CalendarState(Base):
    """One row: a random token written with every change of ``calendar_day``."""

    __tablename__ = "calendar_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32))
