"""Engine set-up and the write-transaction discipline.

SQLite: Python's sqlite3 driver would not begin a transaction before a SELECT, so
two writers could both pass a check-then-insert. We take over BEGIN ourselves
(SQLAlchemy's documented recipe) and start write transactions with
``BEGIN IMMEDIATE``, which takes the database's write lock up front; WAL lets
readers go on meanwhile, and ``busy_timeout`` makes a second writer wait instead
of failing with "database is locked".

PostgreSQL: a write transaction locks the row it is about to change
(``SELECT ... FOR UPDATE``), see ``lock_resource``.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from labshare.extensions import db

_state = threading.local()
SQLITE_BUSY_TIMEOUT_MS = 30_000


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA journal_mode = WAL")  # an in-memory database just says "memory"
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if getattr(_state, "immediate", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def is_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


def begin_write() -> None:
    """Make sure the session's current transaction is a writer's.

    On SQLite a transaction that only read so far is ended and a new one begun
    with BEGIN IMMEDIATE. Call it before the reads that a write depends on.
    On PostgreSQL nothing is needed here: callers lock rows explicitly.
    """
    session = db.session()
    if not is_sqlite():
        return
    if session.in_transaction():
        if getattr(_state, "in_write", False):
            return
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("begin_write() called with unflushed changes pending")
        session.rollback()
    _state.immediate = True
    try:
        session.connection()  # begins now, with BEGIN IMMEDIATE
    finally:
        _state.immediate = False
    _state.in_write = True

    @event.listens_for(session, "after_transaction_end", once=True)
    def _done(*_args: Any) -> None:
        _state.in_write = False
