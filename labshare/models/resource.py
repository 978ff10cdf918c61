from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Numeric, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import Field, ResourceKind, ResourceStatus, str_enum
from labshare.timeutil import utcnow

if TYPE_CHECKING:
    from labshare.models.booking_rules import BookingRules
    from labshare.models.institute import Institute


class Resource(Base):
    """Anything bookable: a lab (bench/visit slot) or an instrument.

    Labs and instruments share one id space so the API can address both as
    ``/resources/{id}`` and one bookings table (and one exclusion constraint)
    covers both.
    """

    __tablename__ = "resource"
    __table_args__: tuple[CheckConstraint | Index, ...] = (
        CheckConstraint("fee_per_hour >= 0", name="fee_nonnegative"),
        CheckConstraint(
            "fee_waiver_percent >= 0 AND fee_waiver_percent <= 100", name="waiver_percent"
        ),
        # A LIMS finds its instruments again by its own id, unique within the institute.
        Index("uq_resource_institute_external", "institute_id", "external_id", unique=True),
        # The statistics' open labs: the available labs, without a scan of every
        # resource.
        Index("ix_resource_kind_status", "kind", "status", "institute_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ResourceKind] = mapped_column(str_enum(ResourceKind, "resource_kind"))
    institute_id: Mapped[int] = mapped_column(ForeignKey("institute.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    field: Mapped[Field] = mapped_column(str_enum(Field, "measurement_field"), index=True)
    status: Mapped[ResourceStatus] = mapped_column(
        str_enum(ResourceStatus, "resource_status"), default=ResourceStatus.AVAILABLE
    )
    requires_qualification: Mapped[bool] = mapped_column(default=False)
    fee_per_hour: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    fee_waiver_percent: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The institute's own id of this lab or instrument (its LIMS key, an asset number).
    external_id: Mapped[str | None] = mapped_column(String(100))
    #: Changed by database triggers (migration 0004) in the same transaction as
    #: anything that changes this resource's availability; read by the calendar
    #: cache (labshare/booking/calendar_cache.py). Never written by the application.
    calendar_version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))

    institute: Mapped[Institute] = relationship(back_populates="resources", lazy="joined")
    rules: Mapped[BookingRules | None] = relationship(
        back_populates="resource", uselist=False, cascade="all, delete-orphan"
    )

    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_abstract": True}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.name}>"


# Text search (catalogue/search.py): trigram GIN indexes on PostgreSQL, so that
# ILIKE '%term%' is an index scan; plain indexes on SQLite (migration 0004).
for _column in ("name", "name_en"):
    Index(
        f"ix_resource_{_column}_trgm",
        getattr(Resource, _column),
        postgresql_using="gin",
        postgresql_ops={_column: "gin_trgm_ops"},
    )
