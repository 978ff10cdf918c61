"""A service order: items an SME sends to one institute for verification,
calibration or testing, tracked to the certificate (labshare/orders/)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import DeliveryMethod, OrderStatus, str_enum
from labshare.timeutil import utcnow

if TYPE_CHECKING:
    from labshare.models.company import Company
    from labshare.models.institute import Institute
    from labshare.models.service_order_item import ServiceOrderItem
    from labshare.models.user import User


class ServiceOrder(Base):
    __tablename__ = "service_order"
    __table_args__ = (
        CheckConstraint("fee >= 0", name="fee_nonnegative"),
        CheckConstraint("fee_waived >= 0 AND fee_waived <= fee", name="waiver_within_fee"),
        Index("ix_service_order_institute_status", "institute_id", "status", "created_at"),
        Index("ix_service_order_company_created", "company_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    institute_id: Mapped[int] = mapped_column(ForeignKey("institute.id"))
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    status: Mapped[OrderStatus] = mapped_column(str_enum(OrderStatus, "order_status"))
    delivery: Mapped[DeliveryMethod] = mapped_column(str_enum(DeliveryMethod, "order_delivery"))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)
    fee: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    fee_waived: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    promised_date: Mapped[dt.date | None] = mapped_column(Date)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    received_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    company: Mapped[Company] = relationship()
    institute: Mapped[Institute] = relationship()
    user: Mapped[User] = relationship(foreign_keys=[user_id])
    items: Mapped[list[ServiceOrderItem]] = relationship(
        back_populates="order", order_by="ServiceOrderItem.position"
    )
