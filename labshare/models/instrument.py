from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.enums import ResourceKind
from labshare.models.lab import Lab
from labshare.models.resource import Resource


class Instrument(Resource):
    """A shared measuring instrument, in one lab, with a structured capability."""

    __tablename__ = "instrument"

    id: Mapped[int] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"), primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"), index=True)
    model: Mapped[str | None] = mapped_column(String(100))
    manufacturer: Mapped[str | None] = mapped_column(String(200))
    serial_number: Mapped[str | None] = mapped_column(String(100))
    asset_number: Mapped[str | None] = mapped_column(String(100))

    # Capability, as the metrologist writes it ...
    measurand: Mapped[str] = mapped_column(String(64), index=True)
    unit: Mapped[str] = mapped_column(String(32))
    range_min: Mapped[float] = mapped_column(Float)
    range_max: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[str | None] = mapped_column(String(200))
    # ... and normalised to the measurand's base unit, for capability search.
    range_min_base: Mapped[float | None] = mapped_column(Float)
    range_max_base: Mapped[float | None] = mapped_column(Float)

    calibration_valid_until: Mapped[dt.date | None] = mapped_column(Date)
    certificate_number: Mapped[str | None] = mapped_column(String(100))
    #: "Booked together": instruments of one lab with the same non-empty bundle name
    #: are always booked as one group (booking/policies/groups.py; migration 0010).
    bundle: Mapped[str | None] = mapped_column(String(50))

    lab: Mapped[Lab] = relationship(foreign_keys=[lab_id], lazy="joined")

    __mapper_args__ = {
        "polymorphic_identity": ResourceKind.INSTRUMENT,
        "inherit_condition": id == Resource.id,
    }


# Capability search: measurand = ? AND range_min_base <= ? AND range_max_base >= ?
Index(
    "ix_instrument_capability",
    Instrument.measurand,
    Instrument.range_min_base,
    Instrument.range_max_base,
)

# Text search: trigram GIN indexes on PostgreSQL, plain ones on SQLite (migrations 0004, 0005).
for _column in ("model", "manufacturer", "measurand"):
    Index(
        f"ix_instrument_{_column}_trgm",
        getattr(Instrument, _column),
        postgresql_using="gin",
        postgresql_ops={_column: "gin_trgm_ops"},
    )
