from __future__ import annotations

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base


class CatalogueVersion(Base):
    """One row whose ``version`` changes (to a random value) in the same transaction
    as any change to what a search without a time window answers: resources, labs,
    instruments, institutes, booking rules, search tokens. Database triggers do it
    (migration 0023), so no write path can forget; a change of only
    ``resource.calendar_version`` (every booking) does not count. The search's
    result cache (labshare/catalogue/search_cache.py) serves an entry only at the
    version it was computed at. A missing row means: do not cache."""

    __tablename__ = "catalogue_version"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
