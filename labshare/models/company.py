from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import CompanySize, str_enum
from labshare.timeutil import utcnow


class Company(Base):
    """An SME, identified by its Unified Social Credit Code (GB 32100-2015)."""

    __tablename__ = "company"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    province: Mapped[str | None] = mapped_column(String(50), index=True)
    industry: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[CompanySize | None] = mapped_column(str_enum(CompanySize, "company_size"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
