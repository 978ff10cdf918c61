from __future__ import annotations

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base


class SearchDoc(Base):
    """The search tokens of one lab or instrument (labshare/catalogue/search_index.py).

    ``tokens`` holds every token; PostgreSQL searches it through a GIN index on the
    generated column ``tsv`` (made by the migration, not mapped), SQLite through
    the FTS5 table ``search_fts`` that triggers keep in step with this one (both
    made by migration 0018).
    ``name_tokens`` and ``measurand_tokens`` only rank the matches.
    """

    __tablename__ = "search_doc"

    resource_id: Mapped[int] = mapped_column(
        ForeignKey("resource.id", ondelete="CASCADE"), primary_key=True
    )
    tokens: Mapped[str] = mapped_column(Text)
    name_tokens: Mapped[str] = mapped_column(Text)
    measurand_tokens: Mapped[str] = mapped_column(Text)
