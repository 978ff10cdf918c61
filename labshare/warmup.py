"""Warming a new worker before it takes its first request.

A fresh gunicorn worker used to answer its first booking in about a second (ten
times a warm one): the database connection was opened, SQLAlchemy configured its
mappers and compiled every statement of the path, Babel loaded its locale data and
some modules were imported on first use, all inside that request. ``warm`` does
that work once, in ``post_worker_init`` (gunicorn.conf.py), before the worker
accepts a connection. It writes nothing: every read is rolled back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import Any

log = logging.getLogger(__name__)


def warm(app: Any) -> None:
    """Open the pool's connection and compile the hot paths' statements. Any
    failure is logged and ignored: a cold worker still serves correctly."""
    if "sqlalchemy" not in getattr(app, "extensions", {}):
        return  # not LabShare (the bench's hello world reads the same gunicorn.conf.py)
    try:
        with app.app_context():
            _warm()
            # the text index's first snapshot, read in its own thread: the worker's
            # first text searches are the database's only for the second it takes
            from labshare.catalogue import text_index

            store = text_index.index()
            if store is not None:
                store.refresh()
        # The request machinery itself (hooks, the limiter, the API's error path):
        # a health check and a refused booking (no valid token: nothing written).
        client = app.test_client()
        client.get("/healthz")
        client.post("/api/v1/bookings", json={}, headers={"Authorization": "Bearer warm-up"})
    except Exception:
        log.warning("worker warm-up failed", exc_info=True)


def _warm() -> None:
    from babel.dates import format_date
    from sqlalchemy.orm import configure_mappers

    from labshare.accounts.tokens import user_for_token
    from labshare.booking import booking_path
    from labshare.booking.calendar_cache import calendar_document
    from labshare.booking.rules import DEFAULT
    from labshare.errors import DomainError
    from labshare.extensions import db
    from labshare.models import Instrument, User

    configure_mappers()
    for locale in ("zh_CN", "en"):
        format_date(dt.date(2030, 1, 7), "full", locale=locale)
    try:
        with contextlib.suppress(DomainError):
            user_for_token("warm-up")
        booking_path.lock_and_load(-1, queue=False)  # no row: locks nothing, writes nothing
        probe = Instrument(id=-1, lab_id=-1, institute_id=-1)
        policy = booking_path.load_policy(probe, -1)
        policy.rules = DEFAULT
        start = dt.datetime(2030, 1, 7, 1, tzinfo=dt.UTC)
        booking_path.read_around(
            probe,
            -1,
            start,
            start + dt.timedelta(hours=1),
            start,
            policy,
            "Asia/Shanghai",
        )
        with contextlib.suppress(DomainError):
            calendar_document(-1, start, start + dt.timedelta(days=7))
        db.session.get(User, -1)
    finally:
        db.session.rollback()
        db.session.expunge_all()
        db.session.remove()
