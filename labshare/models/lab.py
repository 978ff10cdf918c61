from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, SmallInteger, String, Time, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base
from labshare.models.enums import ResourceKind
from labshare.models.resource import Resource


class Lab(Resource):
    """An open laboratory, bookable as a whole by up to ``capacity`` companies at once."""

    __tablename__ = "lab"
    __table_args__: tuple[CheckConstraint, ...] = (
        CheckConstraint("capacity >= 1", name="capacity_positive"),
    )

    id: Mapped[int] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"), primary_key=True)
    location: Mapped[str | None] = mapped_column(String(300))
    capacity: Mapped[int] = mapped_column(default=1)
    #: False: the lab works through public holidays (its institute may follow them).
    follows_holidays: Mapped[bool] = mapped_column(default=True, server_default=true())

    opening_periods: Mapped[list[OpeningPeriod]] = relationship(
        back_populates="lab",
        cascade="all, delete-orphan",
        order_by="(OpeningPeriod.weekday, OpeningPeriod.opens)",
    )

    __mapper_args__ = {"polymorphic_identity": ResourceKind.LAB}


class OpeningPeriod(Base):
    """One weekly opening period of a lab: the half-open local interval [opens,
    closes) from its weekday on, in the institute's zone. ``closes <= opens`` closes
    on the next day: 00:00 is 24:00, 22:00-06:00 runs overnight (and 00:00-00:00 is
    the whole day)."""

    __tablename__ = "opening_period"
    __table_args__ = (CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # Monday = 0
    opens: Mapped[dt.time] = mapped_column(Time)
    closes: Mapped[dt.time] = mapped_column(Time)

    lab: Mapped[Lab] = relationship(back_populates="opening_periods")
