from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base, UTCDateTime
from labshare.timeutil import utcnow

if TYPE_CHECKING:
    from labshare.models.booking import Booking
    from labshare.models.lab import Lab
    from labshare.models.user import User


class BookingGroup(Base):
    """Several resources of one lab booked together, all or nothing
    (booking/policies/groups.py). Each member is an ordinary ``Booking`` with ``group_id``
    set; the group's members move through their life cycle together.

    ``institute_id`` and ``company_id`` copy the members' for tenancy filters.
    """

    __tablename__ = "booking_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"), index=True)
    institute_id: Mapped[int] = mapped_column(ForeignKey("institute.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    purpose: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    lab: Mapped[Lab] = relationship(foreign_keys=[lab_id])
    user: Mapped[User] = relationship(foreign_keys=[user_id])
    members: Mapped[list[Booking]] = relationship(
        order_by="Booking.resource_id", viewonly=True, lazy="selectin"
    )
