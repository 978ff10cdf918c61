from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from labshare.models.base import Base, UTCDateTime
from labshare.timeutil import utcnow


class JobMarker(Base):
    """A piece of scheduled work that has been done, under a unique key.

    Jobs claim work by inserting its key (``INSERT ... ON CONFLICT DO NOTHING``) in
    the same transaction as the work itself: whoever inserts the row does the work,
    a rerun or a second scheduler finds the key and does nothing. Keys name the work:
    ``reminder:<booking>:<hours>h``, ``nudge:<booking>``,
    ``calibration:<instrument>:<valid until>:<certificate>``, ``monthly-export:<YYYY-MM>``.
    """

    __tablename__ = "job_marker"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    job: Mapped[str] = mapped_column(String(50), index=True)
    #: "done", or "skipped" (superseded, e.g. an earlier reminder replaced by a later one)
    outcome: Mapped[str] = mapped_column(String(20), default="done")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
