"""Engine set-up and the write-transaction discipline.

SQLite: Python's sqlite3 driver would not begin a transaction before a SELECT, so
two writers could both pass a check-then-insert. We take over BEGIN ourselves
(SQLAlchemy's documented recipe) and start write transactions with
``BEGIN IMMEDIATE``, which takes the database's write lock up front; WAL lets
readers go on meanwhile, and ``busy_timeout`` makes a second writer wait instead
of failing with "database is locked".

PostgreSQL: a write transaction locks the row it is about to change
(``SELECT ... FOR UPDATE``), see ``lock_resource``.

Pooled connections (PostgreSQL) are not pinged on every checkout
(``pool_pre_ping`` costs a round trip per request): only one that has been idle
in the pool for ``IDLE_PING_SECONDS`` or more, the case where a firewall, a
server restart or ``idle_session_timeout`` may have dropped it unnoticed. A dead
one is replaced before use. A connection that dies while in steady use fails one
statement; SQLAlchemy then invalidates the pool, so the next checkouts get fresh
connections. ``pool_recycle`` (config.py) bounds every connection's age.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

from labshare.extensions import db

_state = threading.local()
_WRITER = "labshare_write_txn"  # Connection.info key: this transaction holds the write lock
_READS = {"SELECT", "PRAGMA", "BEGIN", "COMMIT", "ROLLBA", "SAVEPO", "RELEAS", "WITH", "EXPLAI"}
SQLITE_BUSY_TIMEOUT_MS = 30_000
IDLE_PING_SECONDS = 30.0
_IDLE_SINCE = "labshare_idle_since"  # ConnectionRecord.info key (cleared on reconnect)


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        _ping_after_idle(engine)
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
        immediate = bool(getattr(_state, "immediate", False))
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
        conn.info[_WRITER] = immediate

    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # A transaction that has written holds SQLite's write lock until it ends:
        # it is a writer already, and must not be rolled back by begin_write().
        if not conn.info.get(_WRITER) and statement.lstrip()[:6].upper() not in _READS:
            conn.info[_WRITER] = True


def _ping_after_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out another (a new one).
            raise DisconnectionError("pooled connection is dead") from exc


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
        if session.connection().info.get(_WRITER):
            return
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("begin_write() called with unflushed changes pending")
        session.rollback()
    _state.immediate = True
    try:
        session.connection()  # begins now, with BEGIN IMMEDIATE
    finally:
        _state.immediate = False
