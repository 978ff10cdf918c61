from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base, UTCDateTime
from labshare.timeutil import utcnow

if TYPE_CHECKING:
    from labshare.models.resource import Resource
    from labshare.models.user import User


class BookingSeries(Base):
    """A recurring booking: the rule that produced its occurrences. Each occurrence
    is an ordinary ``Booking`` row (``Booking.series_id``), so every rule, the
    conflict check, the calendar and the iCal feed apply to each one unchanged.

    The rule is kept as the user gave it: the first occurrence's start and end
    (UTC; expanded as wall-clock times in ``timezone``), ``freq``, ``interval``,
    ``weekdays`` (weekly only, Monday = 0, comma-separated) and exactly one of
    ``until`` (a local date, inclusive) and ``count``. ``institute_id`` and
    ``company_id`` copy the resource's and the booker's, for tenancy without a join.
    """

    __tablename__ = "booking_series"
    __table_args__ = (
        CheckConstraint("freq IN ('daily', 'weekly', 'monthly')", name="freq_known"),
        CheckConstraint("interval_n >= 1", name="interval_positive"),
        CheckConstraint(
            "(until_date IS NULL AND count_n IS NOT NULL) "
            "OR (until_date IS NOT NULL AND count_n IS NULL)",
            name="until_or_count",
        ),
        CheckConstraint("end_at > start_at", name="end_after_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), index=True)
    institute_id: Mapped[int] = mapped_column(ForeignKey("institute.id"), index=True)
    freq: Mapped[str] = mapped_column(String(16))
    interval_n: Mapped[int] = mapped_column(Integer, default=1)
    weekdays: Mapped[str | None] = mapped_column(String(20))
    until_date: Mapped[dt.date | None] = mapped_column(Date)
    count_n: Mapped[int | None] = mapped_column(Integer)
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    timezone: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(500))
    samples: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    resource: Mapped[Resource] = relationship(lazy="joined")
    user: Mapped[User] = relationship()

    @property
    def weekday_list(self) -> list[int]:
        return [int(d) for d in self.weekdays.split(",")] if self.weekdays else []
