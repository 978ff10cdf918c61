from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import str_enum
from labshare.timeutil import utcnow

if TYPE_CHECKING:
    from labshare.models.booking import Booking
    from labshare.models.company import Company
    from labshare.models.resource import Resource
    from labshare.models.user import User


class WaitlistStatus(enum.StrEnum):
    WAITING = "waiting"  # in line for the slot
    OFFERED = "offered"  # the freed slot is held for this entry until offer_expires_at
    BOOKED = "booked"  # the offer was taken: booking_id
    EXPIRED = "expired"  # the offer (or the slot itself) ran out
    DECLINED = "declined"  # the offer was turned down
    LEFT = "left"  # the company left the line


#: An entry still in line or holding an offer.
OPEN_WAITLIST_STATUSES = (WaitlistStatus.WAITING, WaitlistStatus.OFFERED)


class WaitlistEntry(Base):
    """A company's place in the line for a taken slot of a resource. Position is
    the order of joining (``created_at``, then ``id``) among the resource's entries.

    An ``offered`` entry holds its slot until ``offer_expires_at``: nobody else can
    book an overlapping slot meanwhile (``booking.policies.waitlist.check_offers``).
    """

    __tablename__ = "waitlist_entry"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="end_after_start"),
        Index("ix_waitlist_entry_resource_status_start", "resource_id", "status", "start_at"),
        Index("ix_waitlist_entry_company_status", "company_id", "status"),
        Index("ix_waitlist_entry_status_expires", "status", "offer_expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    purpose: Mapped[str] = mapped_column(String(500))
    status: Mapped[WaitlistStatus] = mapped_column(
        str_enum(WaitlistStatus, "waitlist_status"), default=WaitlistStatus.WAITING
    )
    offered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    offer_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    resource: Mapped[Resource] = relationship(lazy="joined")
    company: Mapped[Company] = relationship()
    user: Mapped[User] = relationship()
    booking: Mapped[Booking | None] = relationship()
