"""Engine set-up and the write-transaction discipline.

SQLite: Python's sqlite3 driver would not begin a transaction before a SELECT, so
two writers could both pass a check-then-insert. We take over BEGIN ourselves
(SQLAlchemy's documented recipe) and start write transactions with
``BEGIN IMMEDIATE``, which takes the database's write lock up front; WAL lets
readers go on meanwhile, and ``busy_timeout`` makes a second writer wait instead
of failing with "database is locked".

Writers also queue on a lock of their own before ``BEGIN IMMEDIATE``
(``SQLiteWriteLock``: ``flock`` on ``<database>-writer.lock`` across processes, a
mutex across threads), released right after COMMIT or ROLLBACK. SQLite's busy
handler polls with sleeps of up to 100 ms, so a waiting writer slept on well after
the lock was free, and a worker that took the lock again at once kept the other
one waiting (two sync workers booked no faster than one). A writer blocked in
``flock`` wakes the moment the lock is released. ``busy_timeout`` stays, for
writers that do not queue (a transaction that writes without ``begin_write``,
another program).

PostgreSQL: a write transaction locks the row it is about to change
(``SELECT ... FOR UPDATE``), see ``lock_resource``.

Pooled connections (PostgreSQL) are not pinged on every checkout
(``pool_pre_ping`` costs a round trip per request): only one that has been idle
in the pool for ``IDLE_PING_SECONDS`` or more, the case where a firewall, a
server restart or ``idle_session_timeout`` may have dropped it unnoticed. A dead
one is replaced before use. A connection that dies while in steady use fails one
statement; SQLAlchemy then invalidates the pool, so the next checkouts get fresh
connections. ``pool_recycle`` (config.py) bounds every connection's age.

Lock order and retries (docs/architecture.md): every writer locks resources in id
order, then bookings; a deadlock or serialization failure that still happens (say,
a trigger of an admin change touching many resources) is retried whole by
``retrying`` (jobs, also under `flask jobs run`) or ``labshare.retry`` (requests).
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError

from labshare.extensions import db
from labshare.sqlite_lock import (
    SQLITE_AUTOCHECKPOINT_BACKSTOP,
    SQLITE_BUSY_TIMEOUT_MS,
    SQLiteWriteLock,
    install_write_lock,
    write_lock_of,
    write_lock_path,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_state = threading.local()
_WRITER = "labshare_write_txn"  # Connection.info key: this transaction holds the write lock
_READS = {"SELECT", "PRAGMA", "BEGIN", "COMMIT", "ROLLBA", "SAVEPO", "RELEAS", "EXPLAI"}
#: A statement that changes rows, wherever it stands in a ``WITH`` (a column such as
#: ``updated_at`` is not one: the word must end there).
_CHANGES = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
IDLE_PING_SECONDS = 30.0
_IDLE_SINCE = "labshare_idle_since"  # ConnectionRecord.info key (cleared on reconnect)
_IMMEDIATE = "labshare_immediate_txn"  # Connection.info key: begun with BEGIN IMMEDIATE
#: Connection.info key: begun by begin_read_first, no SQLite transaction open yet.
_NOT_BEGUN = "labshare_not_begun"
_GUARDED: set[int] = set()  # id() of engines where a write outside begin_write() raises
#: Execution option (SQLite): a connection that only reads, each statement on its own
#: (no BEGIN, so no snapshot held between statements and no ROLLBACK to send).
AUTOCOMMIT_READS = "labshare_autocommit_reads"
#: PostgreSQL's serialization_failure, deadlock_detected and lock_not_available (a
#: row asked for with NOWAIT that another transaction holds): the transaction lost a
#: race and may simply be run again.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
#: How many times a unit of work runs at most before the caller gives up (a 503).
DEFAULT_ATTEMPTS = 4


def _reads_only(statement: str) -> bool:
    """Whether ``statement`` only reads (a ``WITH`` that changes nothing reads)."""
    head = statement.lstrip()[:6].upper()
    if head.startswith("WITH"):
        return _CHANGES.search(statement) is None
    return head in _READS


class WriteOutsideLock(RuntimeError):
    """A statement that writes ran in a SQLite transaction not begun by begin_write()."""


def configure_engine(engine: Engine, *, write_lock: bool = True) -> None:
    if engine.dialect.name != "sqlite":
        _ping_after_idle(engine)
        if engine.dialect.driver == "psycopg":
            _lazy_descriptions(engine)
        return
    lock_path = write_lock_path(engine) if write_lock else None
    lock = SQLiteWriteLock(lock_path) if lock_path else None
    if lock is not None:
        install_write_lock(engine, lock)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA journal_mode = WAL")  # an in-memory database just says "memory"
        if lock is not None:  # checkpoints run after the lock's release instead
            cursor.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT_BACKSTOP}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.info[_NOT_BEGUN] = False
        if conn.get_execution_options().get(AUTOCOMMIT_READS) or getattr(_state, "late", False):
            # The driver is in autocommit mode (isolation_level None): each
            # statement reads the latest committed state, as one of PostgreSQL's
            # autocommit connections does; _on_execute refuses any write on it.
            # A late writer's (begin_read_first) becomes a writer's in begin_write.
            conn.info[_WRITER] = conn.info[_IMMEDIATE] = False
            conn.info[_NOT_BEGUN] = not conn.get_execution_options().get(AUTOCOMMIT_READS)
            return
        immediate = bool(getattr(_state, "immediate", False))
        if not immediate:
            conn.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(conn, lock)
        conn.info[_WRITER] = immediate
        conn.info[_IMMEDIATE] = immediate

    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # A transaction that has written holds SQLite's write lock until it ends:
        # it is a writer already, and must not be rolled back by begin_write().
        if not conn.info.get(_WRITER) and not _reads_only(statement):
            if conn.get_execution_options().get(AUTOCOMMIT_READS) or conn.info.get(_NOT_BEGUN):
                raise WriteOutsideLock(f"write on a read-only connection: {statement[:60]}")
            conn.info[_WRITER] = True
        if (
            id(engine) in _GUARDED
            and not conn.info.get(_IMMEDIATE)
            and conn.in_transaction()
            and statement.lstrip()[:6].upper() in {"INSERT", "UPDATE", "DELETE"}
        ):
            raise WriteOutsideLock(f"write outside begin_write(): {statement[:60]} {_caller()}")


def _begin_immediate(conn: Any, lock: SQLiteWriteLock | None) -> None:
    """BEGIN IMMEDIATE on ``conn``, after taking the writers' lock (if any)."""
    if lock is None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return
    raw = conn.connection.dbapi_connection
    lock.acquire(raw)
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        lock.release(raw)
        raise


def _caller() -> str:
    """Where in labshare the offending write came from (the services' frames first)."""
    import traceback

    frames = [
        f"{f.filename.split('labshare/', 1)[1]}:{f.lineno} {f.name}"
        for f in traceback.extract_stack()
        if "/labshare/" in f.filename and not f.filename.endswith("database.py")
    ]
    return " < ".join(reversed(frames[-4:]))


def guard_writes(engine: Engine, on: bool = True) -> None:
    """SQLite (tests): make any INSERT, UPDATE or DELETE in a transaction that
    ``begin_write()`` did not begin raise ``WriteOutsideLock``. Such a write takes
    the write lock only when it reaches the database, and fails with "database is
    locked" when another writer got there since its first read."""
    if on:
        _GUARDED.add(id(engine))
    else:
        _GUARDED.discard(id(engine))


def _lazy_descriptions(engine: Engine) -> None:
    """Its connections' cursors build ``description`` only when it is read
    (labshare/pg_cursor.py): SQLAlchemy reads it only for a statement's first run."""
    import psycopg

    from labshare.pg_cursor import LazyDescriptionCursor

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection.cursor_factory is psycopg.Cursor:  # not one a URL asked for
            dbapi_connection.cursor_factory = LazyDescriptionCursor


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
        conn = session.connection()
        if conn.info.get(_WRITER):
            return
        raw: Any = conn.connection.dbapi_connection
        if conn.info.get(_NOT_BEGUN) and not raw.in_transaction:
            # begin_read_first: only autocommit reads so far (a SAVEPOINT would have
            # opened a transaction: that one is rolled back below, as any reader's)
            conn.info[_NOT_BEGUN] = False  # BEGIN IMMEDIATE may go through _on_execute
            try:
                _begin_immediate(conn, write_lock_of(conn.engine))
            except BaseException:
                conn.info[_NOT_BEGUN] = True
                raise
            conn.info[_WRITER] = conn.info[_IMMEDIATE] = True
            return
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("begin_write() called with unflushed changes pending")
        session.rollback()
    _state.immediate = True
    try:
        session.connection()  # begins now, with BEGIN IMMEDIATE
    finally:
        _state.immediate = False


def begin_read_first() -> None:
    """On SQLite, begin the session's transaction as a late writer's: no BEGIN, its
    reads run each on their own (autocommit, the latest committed state, as a
    PostgreSQL transaction's statements read) and outside the write lock, until
    ``begin_write()`` takes the lock and begins the write transaction with BEGIN
    IMMEDIATE on the same connection, keeping what was loaded (no rollback: there
    was no snapshot to go stale). Only for a unit of work whose reads before
    ``begin_write()`` may be a moment old, as on PostgreSQL (a request's token and
    user); everything a write depends on is read after it. A write before it
    raises ``WriteOutsideLock``. Nothing to do on PostgreSQL or when the session's
    transaction has begun already."""
    if not is_sqlite():
        return
    session = db.session()
    if session.in_transaction():
        return
    _state.late = True
    try:
        session.connection()  # begins now, without BEGIN
    finally:
        _state.late = False


# -- lost races: retry, then give up cleanly ----------------------------------------------


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, the driver's error it wraps, and so on down its causes."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in out):
        out.append(current)
        if isinstance(current, DBAPIError) and isinstance(current.orig, BaseException):
            out.append(current.orig)
        current = current.__cause__ or current.__context__
    return out


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure (PostgreSQL), or a SQLite transaction whose
    snapshot went stale before it could write (SQLITE_BUSY_SNAPSHOT, answered at once):
    the transaction lost a race with another one, nothing of it was kept, and running
    the whole unit of work again is safe."""
    for cause in _causes(exc):
        if getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
        if getattr(cause, "sqlite_errorname", None) == "SQLITE_BUSY_SNAPSHOT":
            return True
    return False


def is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked" after ``busy_timeout``: another writer held the
    lock all that time. Not worth running again at once (it waited already); the
    client gets a 503 and tries later."""
    return any(
        isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause)
        for cause in _causes(exc)
    )


def retry_pause(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential, with full jitter so
    that the two losers of a deadlock do not meet again."""
    return random.uniform(0, 0.05 * 2**attempt)  # noqa: S311 - jitter, not secrecy


def retrying(work: Callable[[], T], *, attempts: int = DEFAULT_ATTEMPTS, what: str = "") -> T:
    """Run ``work`` and commit, as one unit: rolled back and run again (at most
    ``attempts`` times in all) when it loses a race (``is_retryable``); any other
    error rolls back and propagates. For jobs; requests use
    ``labshare.retry``."""
    for attempt in range(attempts):
        try:
            result = work()
            db.session.commit()
            return result
        except Exception as exc:
            db.session.rollback()
            if not is_retryable(exc) or attempt + 1 >= attempts:
                raise
            log.warning("%s lost a race (%s); retry %d", what or "unit of work", exc, attempt + 1)
            time.sleep(retry_pause(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
