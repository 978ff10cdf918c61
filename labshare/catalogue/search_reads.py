"""The search's reads without a transaction of their own.

A search only reads, and every statement it sends reads the latest committed state
anyway: PostgreSQL's READ COMMITTED takes a snapshot per statement, and the
catalogue's version is read first (labshare/catalogue/search_cache.py), so the
data read after it is at least as new, with or without a transaction around them.
The transaction cost PostgreSQL two more round trips per search (BEGIN before the
first statement, ROLLBACK when the request's session closed), each a wake-up of
the server and of the worker (most of the database's CPU of a capability search).
So on PostgreSQL the search's session reads on a connection in the driver's
autocommit (given back to the pool as it was: SQLAlchemy resets the isolation
level on release). SQLite's BEGIN and ROLLBACK cost no round trip: the search
keeps its transaction there.

The session's transaction is ended at the end (its connection back to the pool,
in its usual mode; nothing to roll back), so that whatever the same session does
next (a test, a view that goes on) begins a transaction as usual. A session
already in a transaction (a browser's session cookie loaded its user) or holding
changes not yet flushed (which the search's first query would flush) is left as
it is: its search then reads inside its transaction, as before.

The fast path (labshare/fastpath.py) computes a search in an application context
of its own, where no session is in use yet: there ``kept_session`` gives the search
a session on one of the kept autocommit connections the calendar readers use
(labshare/booking/calendar_cache.py) for the whole search, which spares the pool's
checkout and check-in and the switches of the isolation level, a fifth of an
uncached search's CPU; its ``connection()`` is that connection, without a session
transaction joining the connection's (``ReaderSession``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import CoreExecuteOptionsParameter
from sqlalchemy.orm import Session

from labshare.booking import calendar_cache
from labshare.extensions import db

#: ``Session.info`` key: the session reads on a kept autocommit connection.
KEPT = "labshare_kept_reader"


@contextlib.contextmanager
def autocommit_reads() -> Iterator[None]:
    """Within, on PostgreSQL, the session reads on an autocommit connection, released
    at the end (see the module docstring); unchanged when in a transaction already."""
    session = db.session()
    if db.engine.dialect.name != "postgresql" or session.info.get(KEPT):
        yield
        return
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        yield
        return
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        yield
    finally:
        session.rollback()  # no transaction to undo: gives the connection back


class ReaderSession(Session):
    """A session on one kept autocommit connection (``kept_session``), whose
    ``connection()`` is that connection itself. The search's reads go through it
    (the capability and text pages, the window's stamps), and the usual
    ``connection()`` began a session transaction to join the connection's, only to
    end it when the session closed: there is none to track (the driver commits each
    statement), and that bookkeeping was a tenth of a window search's CPU. What asks
    for options (or the ORM's execution) goes the usual way."""

    def connection(
        self,
        bind_arguments: dict[str, Any] | None = None,
        execution_options: CoreExecuteOptionsParameter | None = None,
    ) -> Connection:
        if bind_arguments is None and execution_options is None:
            assert isinstance(self.bind, Connection)
            return self.bind
        return super().connection(bind_arguments, execution_options)


@contextlib.contextmanager
def kept_session() -> Iterator[None]:
    """Within, on PostgreSQL, ``db.session`` is a session on a kept autocommit
    connection, closed at the end (the connection kept again, or dropped after an
    error). For an application context whose session is not in use (the fast
    path's own); elsewhere, and on SQLite, nothing changes."""
    engine = db.engine
    if engine.dialect.name != "postgresql" or db.session.registry.has():
        yield
        return
    with calendar_cache.cache().kept.reader(engine) as conn:
        # SQLAlchemy's own Session: Flask-SQLAlchemy's would pick the engine over bind
        db.session.registry.set(ReaderSession(bind=conn, info={KEPT: True}))  # type: ignore[arg-type]
        try:
            yield
        finally:
            db.session.remove()


__all__ = ["KEPT", "ReaderSession", "autocommit_reads", "kept_session"]
