"""The ``rollup`` job: recompute the dirty days of the statistics' pre-aggregate.

``stats_daily`` keeps the campaign counters per institute and UTC day; triggers mark
a (resource, UTC day) dirty in the same transaction as any change of a booking or
usage record, and the figures count dirty days live (``campaign/stored.py``), so they
are right whether this job ever runs or not: it only makes them cheaper to read. It
recomputes each dirty (institute, day) in its own transaction (so a writer waits at
most for one day's count), then refreshes the planner's statistics.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from labshare.campaign import stats_store
from labshare.database import is_sqlite
from labshare.extensions import db

#: The tables the statistics read.
STATS_TABLES = (
    "booking",
    "usage_record",
    "stats_daily",
    "stats_dirty",
    "stats_first_use",
    "stats_wait",
    "stats_used",
)


def rollup() -> dict[str, Any]:
    """Clean every dirty day, then refresh the planner's statistics."""
    cleaned = stats_store.clean()
    if is_sqlite():
        # Cheap: SQLite analyses only what changed enough since it last looked.
        db.session.execute(text("PRAGMA optimize"))
    else:
        for table in STATS_TABLES:
            db.session.execute(text(f"ANALYZE {table}"))
    return {"cleaned": cleaned, "analyzed": list(STATS_TABLES)}
