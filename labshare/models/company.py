from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import CompanySize, CompanyStatus, str_enum
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
    # Only a self-registered company starts pending; one made by an admin (CLI,
    # demo data) is vouched for by whoever made it.
    status: Mapped[CompanyStatus] = mapped_column(
        str_enum(CompanyStatus, "company_status"),
        default=CompanyStatus.CONFIRMED,
        server_default=CompanyStatus.CONFIRMED.value,
        index=True,
    )
    # Who decided is in the audit log.
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    @property
    def confirmed(self) -> bool:
        return self.status == CompanyStatus.CONFIRMED
