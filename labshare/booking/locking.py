"""The write lock. Every life-cycle move takes it before it reads what its
decision depends on, so that check and write are one atomic step: on SQLite the
database's (BEGIN IMMEDIATE), on PostgreSQL the resource's row, then the
booking's. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from labshare.database import begin_write, is_sqlite
from labshare.errors import SlotTaken
from labshare.extensions import db
from labshare.models import Booking, Resource


def _lock_resource(resource_id: int) -> None:
    """Take the write lock for ``resource_id``: on SQLite the database's (BEGIN
    IMMEDIATE), on PostgreSQL the resource's row. Callers re-read after this."""
    begin_write()
    db.session.execute(select(Resource.id).where(Resource.id == resource_id).with_for_update())


def _lock_booking(booking: Booking) -> None:
    """Lock the booking's resource, then the booking (always in this order, so two
    transitions cannot deadlock), and re-read the booking."""
    booking_id, resource_id = booking.id, booking.resource_id
    _lock_resource(resource_id)
    db.session.execute(select(Booking.id).where(Booking.id == booking_id).with_for_update())
    db.session.refresh(booking)


#: Ids per statement when many resources are locked at once (a public holiday's).
LOCK_CHUNK = 5000


def lock_resources(resource_ids: Sequence[int], *, nowait: bool = False) -> None:
    """Take the write lock for several resources, in id order (so two requests
    that lock overlapping sets cannot deadlock): on PostgreSQL one statement per
    ``LOCK_CHUNK`` ids, each ``ORDER BY id`` (the rows are locked in that order).
    ``nowait``: a row another transaction holds fails at once (SQLSTATE 55P03, a lost
    race that ``database.is_retryable`` runs again) instead of waiting, for a caller
    that holds a lock taken later in the order."""
    ids = sorted(set(resource_ids))
    if not ids:
        return
    begin_write()
    if is_sqlite():  # BEGIN IMMEDIATE holds the whole database already
        return
    for first in range(0, len(ids), LOCK_CHUNK):
        chunk = ids[first : first + LOCK_CHUNK]
        stmt = select(Resource.id).where(Resource.id.in_(chunk)).order_by(Resource.id)
        db.session.execute(stmt.with_for_update(nowait=nowait))


def _insert_or_conflict(booking: Booking) -> None:
    """Insert ``booking``. On PostgreSQL the exclusion constraint may still refuse
    an overlap (SQLSTATE 23P01): that is the same conflict as the check's, never a
    500. The insert runs in a savepoint, so the caller's transaction stays usable."""
    if is_sqlite():
        db.session.add(booking)
        db.session.flush()
        return
    try:
        with db.session.begin_nested():
            db.session.add(booking)
            db.session.flush()
    except IntegrityError as exc:
        if booking in db.session:
            db.session.expunge(booking)
        if getattr(exc.orig, "sqlstate", None) == "23P01":
            raise SlotTaken(_l("This time has just been booked by someone else.")) from exc
        raise
