"""One instrument or sample of a service order, and its result and certificate."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import Field, ItemResult, OrderServiceType, str_enum

if TYPE_CHECKING:
    from labshare.models.service_offering import ServiceOffering
    from labshare.models.service_order import ServiceOrder


class ServiceOrderItem(Base):
    __tablename__ = "service_order_item"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("fee >= 0", name="fee_nonnegative"),
        CheckConstraint("fee_waived >= 0 AND fee_waived <= fee", name="waiver_within_fee"),
        Index("ix_service_order_item_order", "order_id", "position"),
        Index("ix_service_order_item_due", "due_date", "reminded_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("service_order.id", ondelete="CASCADE"))
    position: Mapped[int]
    offering_id: Mapped[int] = mapped_column(ForeignKey("service_offering.id"), index=True)
    #: Copied from the offering when ordered, so statistics need no join and a later
    #: change of the catalogue does not rewrite history.
    service_type: Mapped[OrderServiceType] = mapped_column(
        str_enum(OrderServiceType, "item_service_type")
    )
    field: Mapped[Field] = mapped_column(str_enum(Field, "item_field"))
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(100))
    serial_number: Mapped[str | None] = mapped_column(String(100))
    measuring_range: Mapped[str | None] = mapped_column(String(200))
    accuracy_class: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(default=1)
    procedure: Mapped[str | None] = mapped_column(String(100))
    fee: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    fee_waived: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    condition_note: Mapped[str | None] = mapped_column(String(500))
    result: Mapped[ItemResult | None] = mapped_column(str_enum(ItemResult, "item_result"))
    certificate_number: Mapped[str | None] = mapped_column(String(100), unique=True)
    verification_code: Mapped[str | None] = mapped_column(String(32))
    #: Key of the PDF in the certificate store (labshare/orders/storage.py), never a
    #: name the uploader chose.
    certificate_key: Mapped[str | None] = mapped_column(String(100))
    certificate_sha256: Mapped[str | None] = mapped_column(String(64))
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    interval_months: Mapped[int | None]
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    order: Mapped[ServiceOrder] = relationship(back_populates="items")
    offering: Mapped[ServiceOffering] = relationship()
