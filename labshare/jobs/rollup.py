"""The ``rollup`` job: upkeep for the statistics, never their source.

Campaign figures are counted from the bookings and usage records when they are asked
for (``services/stats.py``), so there is nothing to roll up and nothing that could go
stale. The job keeps its name (schedules and scripts call it) and refreshes what the
query planner knows about the tables the figures read, so the statistics queries keep
their index plans as the tables grow. Running it any number of times changes no data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from labshare.database import is_sqlite
from labshare.extensions import db

#: The tables the statistics read.
STATS_TABLES = ("booking", "usage_record")


def rollup() -> dict[str, Any]:
    """Refresh the planner's statistics of the tables the figures are counted from."""
    if is_sqlite():
        # Cheap: SQLite analyses only what changed enough since it last looked.
        db.session.execute(text("PRAGMA optimize"))
    else:
        for table in STATS_TABLES:
            db.session.execute(text(f"ANALYZE {table}"))
    return {"analyzed": list(STATS_TABLES)}
