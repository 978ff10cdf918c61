from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base

if TYPE_CHECKING:
    from labshare.models.resource import Resource

#: Defaults for a resource without rules of its own (nor its lab's).
DEFAULT_RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 24,
    "horizon_days": 90,
    "requires_approval": True,
    "max_active_per_company": 5,
    "cancel_deadline_hours": 24,
    # -- waitlist
    "waitlist_enabled": True,
    "waitlist_offer_minutes": 120,
    # -- end waitlist
    # -- booking policies: buffer, late cancellation, no-show threshold
    "buffer_minutes": 0,
    "late_cancel_hours": 0,
    "no_show_approval_threshold": None,
    # -- end booking policies
    # -- check-in
    "checkin_required": False,
    "checkin_opens_minutes": 15,
    "checkin_release_minutes": 15,
    # -- end check-in
}


class BookingRules(Base):
    """Booking rules of one lab or instrument. An instrument without a row uses its
    lab's; a lab without one uses ``DEFAULT_RULES``."""

    __tablename__ = "booking_rules"
    __table_args__ = (
        CheckConstraint("slot_minutes > 0 AND slot_minutes <= 1440", name="slot_range"),
        CheckConstraint("min_minutes > 0", name="min_positive"),
        CheckConstraint("max_minutes >= min_minutes", name="max_ge_min"),
        CheckConstraint("lead_time_hours >= 0", name="lead_nonnegative"),
        CheckConstraint("horizon_days > 0", name="horizon_positive"),
        CheckConstraint("max_active_per_company > 0", name="quota_positive"),
        CheckConstraint("cancel_deadline_hours >= 0", name="cancel_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(
        ForeignKey("resource.id", ondelete="CASCADE"), unique=True
    )
    slot_minutes: Mapped[int] = mapped_column(default=DEFAULT_RULES["slot_minutes"])
    min_minutes: Mapped[int] = mapped_column(default=DEFAULT_RULES["min_minutes"])
    max_minutes: Mapped[int] = mapped_column(default=DEFAULT_RULES["max_minutes"])
    lead_time_hours: Mapped[int] = mapped_column(default=DEFAULT_RULES["lead_time_hours"])
    horizon_days: Mapped[int] = mapped_column(default=DEFAULT_RULES["horizon_days"])
    requires_approval: Mapped[bool] = mapped_column(default=True)
    max_active_per_company: Mapped[int] = mapped_column(
        default=DEFAULT_RULES["max_active_per_company"]
    )
    cancel_deadline_hours: Mapped[int] = mapped_column(
        default=DEFAULT_RULES["cancel_deadline_hours"]
    )

    # -- booking policies --
    #: Minutes kept free before and after each booking of an instrument (0: none).
    buffer_minutes: Mapped[int] = mapped_column(default=0, server_default="0")
    #: A company's cancellation less than this many hours before the start is late
    #: (counted as a no-show); 0: off.
    late_cancel_hours: Mapped[int] = mapped_column(default=0, server_default="0")
    #: A company with at least this many no-shows (late cancellations included) has
    #: its new bookings wait for approval; None: off.
    no_show_approval_threshold: Mapped[int | None] = mapped_column(default=None)
    # -- end booking policies --

    # -- waitlist --
    #: SMEs may queue for a taken slot of this resource.
    waitlist_enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    #: How long a freed slot is held for the first in line before it passes on.
    waitlist_offer_minutes: Mapped[int] = mapped_column(default=120, server_default="120")
    # -- end waitlist --

    # -- check-in --
    #: Bookings of this resource nobody checked into are released (no-show).
    checkin_required: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Check-in opens this many minutes before the start.
    checkin_opens_minutes: Mapped[int] = mapped_column(default=15, server_default="15")
    #: An unchecked booking is released this many minutes after its start.
    checkin_release_minutes: Mapped[int] = mapped_column(default=15, server_default="15")
    # -- end check-in --

    resource: Mapped[Resource] = relationship(back_populates="rules")
