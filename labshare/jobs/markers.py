"""Claiming a piece of scheduled work once, across runs and processes."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from labshare.extensions import db
from labshare.models import JobMarker
from labshare.timeutil import utcnow


def claim(key: str, job: str, outcome: str = "done") -> bool:
    """Insert the marker ``key``; True when this call inserted it (the work is ours).

    ``INSERT ... ON CONFLICT DO NOTHING``: a concurrent claimer on PostgreSQL waits
    for ours to commit and then inserts nothing; on SQLite the jobs are single
    writers (``begin_write``). Lives and dies with the caller's transaction.
    """
    values = {"key": key[:200], "job": job, "outcome": outcome, "created_at": utcnow()}
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = cast(Table, JobMarker.__table__)
    stmt = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(table.c.id)
    )
    return db.session.execute(stmt).scalar() is not None


def is_claimed(key: str) -> bool:
    return db.session.scalar(select(JobMarker.id).where(JobMarker.key == key)) is not None
