from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String, Text
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import BookingStatus, ResourceKind, str_enum
from labshare.timeutil import utcnow

if TYPE_CHECKING:
    from labshare.models.company import Company
    from labshare.models.resource import Resource
    from labshare.models.usage_record import UsageRecord
    from labshare.models.user import User


class Booking(Base):
    """A request for, or a hold on, a resource's time. Times are UTC.

    ``resource_kind`` and ``institute_id`` copy the resource's, so that the
    PostgreSQL exclusion constraint can apply to instruments only (labs hold
    ``capacity`` bookings at once) and tenancy filters need no join.
    """

    __tablename__ = "booking"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="end_after_start"),
        CheckConstraint("fee >= 0", name="fee_nonnegative"),
        CheckConstraint("fee_waived >= 0 AND fee_waived <= fee", name="waiver_within_fee"),
        Index("ix_booking_resource_start", "resource_id", "start_at"),
        Index("ix_booking_company_start", "company_id", "start_at"),
        Index("ix_booking_status_start", "status", "start_at"),
        Index("ix_booking_institute_start", "institute_id", "start_at"),
        # Covers every column the statistics read (campaign/stats.py), so a period's
        # figures come from the index alone (migration 0011).
        Index(
            "ix_booking_stats",
            "start_at",
            "institute_id",
            "resource_id",
            "status",
            "late_cancellation",
            "company_id",
            "resource_kind",
            "fee",
            "fee_waived",
            "created_at",
            "decided_at",
            "id",
        ),
        Index(
            "ix_booking_company_stats",
            "company_id",
            "status",
            "start_at",
            "institute_id",
            "resource_id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"))
    resource_kind: Mapped[ResourceKind] = mapped_column(
        str_enum(ResourceKind, "booking_resource_kind")
    )
    institute_id: Mapped[int] = mapped_column(ForeignKey("institute.id"))
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    status: Mapped[BookingStatus] = mapped_column(str_enum(BookingStatus, "booking_status"))
    purpose: Mapped[str] = mapped_column(String(500))
    samples: Mapped[str | None] = mapped_column(Text)
    fee: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    fee_waived: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    #: Staff who made the booking for the company (on the phone, say); None: the
    #: booker (``user_id``, a member of the company) made it. No foreign key: SQLite
    #: cannot drop a column that has one without rebuilding this table (and its
    #: triggers); accounts are deactivated, never deleted.
    booked_by_id: Mapped[int | None]
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: Cancelled by its company within the rules' ``late_cancel_hours`` before the
    #: start: counted as a no-show in statistics and the company's record (0006).
    late_cancellation: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    # -- check-in --
    #: When someone checked in for this booking (staff or the company, on the
    #: resource's check-in page); None: nobody has.
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    checked_in_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # -- end check-in --
    #: The recurring series this booking is an occurrence of, if any (0007).
    series_id: Mapped[int | None] = mapped_column(ForeignKey("booking_series.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    #: How many times the booking was moved to another time (booking/move.py): the
    #: calendar feed's SEQUENCE and the move's message keys grow with it (0021).
    moves: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Booked together with other resources (booking/policies/groups.py; migration 0010).
    group_id: Mapped[int | None] = mapped_column(ForeignKey("booking_group.id"), index=True)

    resource: Mapped[Resource] = relationship(lazy="joined")
    company: Mapped[Company] = relationship()
    user: Mapped[User] = relationship(foreign_keys=[user_id])
    usage: Mapped[UsageRecord | None] = relationship(back_populates="booking", uselist=False)

    @property
    def holds_time(self) -> bool:
        return self.status in (BookingStatus.PENDING, BookingStatus.APPROVED)
