"""What an institute offers for items sent to it: the service catalogue of orders."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import Field, OrderServiceType, str_enum
from labshare.timeutil import utcnow


class ServiceOffering(Base):
    """One service an institute performs on items sent to it, in one measurement
    field, with its typical turnaround and fee per item (before the SME waiver)."""

    __tablename__ = "service_offering"
    __table_args__ = (
        CheckConstraint("fee >= 0", name="fee_nonnegative"),
        CheckConstraint(
            "fee_waiver_percent >= 0 AND fee_waiver_percent <= 100", name="waiver_percent"
        ),
        CheckConstraint("turnaround_days >= 0", name="turnaround_nonnegative"),
        Index("ix_service_offering_institute_field", "institute_id", "field"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    institute_id: Mapped[int] = mapped_column(ForeignKey("institute.id"))
    field: Mapped[Field] = mapped_column(str_enum(Field, "offering_field"))
    service_type: Mapped[OrderServiceType] = mapped_column(
        str_enum(OrderServiceType, "offering_service_type")
    )
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    #: The usual procedure, e.g. a JJG or JJF number.
    procedure: Mapped[str | None] = mapped_column(String(100))
    turnaround_days: Mapped[int] = mapped_column(default=7)
    fee: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    fee_waiver_percent: Mapped[int] = mapped_column(default=0)
    #: Months until a calibrated or verified item is due again (None: not applicable).
    interval_months: Mapped[int | None]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
