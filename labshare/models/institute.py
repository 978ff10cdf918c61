from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import InstituteKind, str_enum
from labshare.timeutil import utcnow

if TYPE_CHECKING:
    from labshare.models.resource import Resource


class Institute(Base):
    """A metrology institute or industrial metrology test centre."""

    __tablename__ = "institute"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[InstituteKind] = mapped_column(str_enum(InstituteKind, "institute_kind"))
    province_code: Mapped[str] = mapped_column(String(6), index=True)
    province: Mapped[str] = mapped_column(String(50))
    city: Mapped[str | None] = mapped_column(String(50))
    address: Mapped[str | None] = mapped_column(String(300))
    contact_phone: Mapped[str | None] = mapped_column(String(50))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    active: Mapped[bool] = mapped_column(default=True)
    #: Whether its labs close on public holidays and open on make-up workdays.
    follows_holidays: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    resources: Mapped[list[Resource]] = relationship(back_populates="institute")

    def __repr__(self) -> str:
        return f"<Institute {self.code}>"
