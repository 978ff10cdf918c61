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

import contextlib
import fcntl
import logging
import os
import random
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError

from labshare.extensions import db

log = logging.getLogger(__name__)
T = TypeVar("T")

_state = threading.local()
_WRITER = "labshare_write_txn"  # Connection.info key: this transaction holds the write lock
_READS = {"SELECT", "PRAGMA", "BEGIN", "COMMIT", "ROLLBA", "SAVEPO", "RELEAS", "WITH", "EXPLAI"}
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: How long a writer waits for ``SQLiteWriteLock`` before it gives up as SQLite
#: would after ``busy_timeout`` ("database is locked": a 503).
SQLITE_WRITE_LOCK_TIMEOUT = SQLITE_BUSY_TIMEOUT_MS / 1000
#: With the writers' lock, WAL pages between the checkpoints run after a commit
#: (SQLite's own default for ``wal_autocheckpoint``), and SQLite's automatic
#: checkpoint kept only as a backstop for writers that do not queue, at ten times that.
SQLITE_CHECKPOINT_PAGES = 1000
SQLITE_AUTOCHECKPOINT_BACKSTOP = 10 * SQLITE_CHECKPOINT_PAGES
IDLE_PING_SECONDS = 30.0
_IDLE_SINCE = "labshare_idle_since"  # ConnectionRecord.info key (cleared on reconnect)
_IMMEDIATE = "labshare_immediate_txn"  # Connection.info key: begun with BEGIN IMMEDIATE
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


class WriteOutsideLock(RuntimeError):
    """A statement that writes ran in a SQLite transaction not begun by begin_write()."""


class SQLiteWriteLock:
    """The writers' queue of one SQLite database file: taken before ``BEGIN
    IMMEDIATE``, released after the transaction's COMMIT or ROLLBACK (or when its
    connection is closed), whatever ended it.

    Across processes an exclusive ``flock`` on ``path`` (freed by the kernel when
    a process dies); within a process a mutex first, since ``flock`` on one open
    file lets every thread of the process through. A waiter wakes as soon as the
    holder releases, instead of sleeping in SQLite's busy handler. Waiting is
    bounded by ``timeout``, after which ``acquire`` raises SQLite's own "database
    is locked" (``is_busy``: a 503).

    A thread that already holds it and begins a second write transaction on
    another connection is not made to wait for itself: that transaction goes on
    to ``BEGIN IMMEDIATE`` and SQLite's busy timeout, as it did without the lock.
    """

    def __init__(self, path: str, timeout: float = SQLITE_WRITE_LOCK_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self._pid = -1
        self._warned = False  # the lock file could not be used (logged once)
        self._fresh_process()
        _LOCKS.add(self)

    def _after_fork_in_child(self) -> None:
        # The child closes its copies of the parent's descriptors (never unlocking
        # them: that would free the parent's lock). A copy kept open would keep a lock
        # the parent holds alive after the parent's death, for as long as the child lives.
        for fd in {self._fd, self._held_fd}:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fresh_process()

    def _fresh_process(self) -> None:
        # After a fork the child starts empty: the parent's descriptor is shared with
        # the parent (unlocking it would free the parent's lock), its mutex may be held.
        self._pid = os.getpid()
        self._mutex = threading.Lock()
        self._guard = threading.Lock()  # the holder fields below
        self._fd: int | None = None  # this process's descriptor of ``path``
        self._held_fd: int | None = None
        self._holder: Any = None  # the DBAPI connection whose transaction holds it
        self._thread: int | None = None
        self._commits = 0  # queued writers' commits since the last checkpoint
        self._every = 8  # commits between checkpoints (adjusted)

    def _open(self) -> int:
        """A descriptor of ``path``. Created with the database file's permission bits
        (and, by root, its owner), so that whoever writes first (a CLI run as root,
        say) does not lock the web server's user out of it."""
        while True:
            try:
                return os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                pass
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue  # another process created it meanwhile
            try:
                database = os.stat(self.path.removesuffix("-writer.lock"))
            except OSError:
                return fd
            try:
                if os.geteuid() == 0:
                    os.fchown(fd, database.st_uid, database.st_gid)
                os.fchmod(fd, stat.S_IMODE(database.st_mode) & 0o666)  # not the umask's
            except OSError:
                log.warning("could not give %s the database file's owner/mode", self.path)
            return fd

    def _lock_file(self, deadline: float) -> int | None:
        """Take the ``flock``: the descriptor that holds it, or None when the lock file
        cannot be used (writers of this process still queue on the mutex; across
        processes BEGIN IMMEDIATE and ``busy_timeout`` order them, as without it)."""
        try:
            if self._fd is None:
                self._fd = self._open()
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return self._fd
        except BlockingIOError:
            pass
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "SQLite writers' lock file %s unusable (%s): writers do not queue on it",
                    self.path,
                    exc,
                )
            return None
        return self._wait(deadline - time.monotonic())

    def acquire(self, holder: Any) -> bool:
        """Take the lock for ``holder``'s transaction; False when this thread holds
        it already (for another connection) and it was not taken."""
        if self._pid != os.getpid():
            self._fresh_process()
        if self._thread == threading.get_ident():
            return False
        deadline = time.monotonic() + self.timeout
        if not self._mutex.acquire(timeout=self.timeout):
            raise _locked()
        try:
            fd = self._lock_file(deadline)
        except BaseException:
            self._mutex.release()
            raise
        with self._guard:
            self._held_fd, self._holder, self._thread = fd, holder, threading.get_ident()
        return True

    def _wait(self, seconds: float) -> int:
        """Block in ``flock`` (on a descriptor of its own, in a helper thread, so that
        the wait can end at ``seconds``); the descriptor that holds the lock."""
        fd = self._open()
        got = threading.Event()
        state = {"abandoned": False}
        done = threading.Lock()

        def wait() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                os.close(fd)
                return
            with done:
                if not state["abandoned"]:
                    got.set()
                    return
            _unlock_and_close(fd)  # the waiter gave up meanwhile

        def give_up() -> bool:
            """Whether the helper got the lock; if not, it frees what it gets later."""
            with done:
                if not got.is_set():
                    state["abandoned"] = True
                return got.is_set()

        threading.Thread(target=wait, name="sqlite-write-lock", daemon=True).start()
        try:
            got.wait(max(seconds, 0.0))
        except BaseException:  # interrupted (KeyboardInterrupt, a timeout's signal)
            if give_up():
                _unlock_and_close(fd)
            raise
        if give_up():
            return fd
        raise _locked()

    def release(self, holder: Any) -> bool:
        """Release it if ``holder``'s transaction holds it; whether it did."""
        with self._guard:
            if holder is None or self._holder is not holder or self._pid != os.getpid():
                return False
            fd, self._held_fd, self._holder, self._thread = self._held_fd, None, None, None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                if fd != self._fd:
                    os.close(fd)
        finally:
            self._mutex.release()
        return True

    def checkpoint_after_commit(self, connection: Any) -> None:
        """Checkpoint the WAL now and then, after a queued writer's COMMIT and the
        lock's release (``wal_autocheckpoint`` would run it inside the COMMIT, so
        inside the lock, the next writer waiting for its copying and fsyncs). About
        every ``SQLITE_CHECKPOINT_PAGES`` pages: the commits between checkpoints are
        adjusted from the pages the last one found. Never fails the commit."""
        self._commits += 1
        if self._commits < self._every:
            return
        self._commits = 0
        try:
            row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            log.warning("WAL checkpoint failed", exc_info=True)
            return
        pages = int(row[1]) if row and row[1] and row[1] > 0 else 0
        if pages:
            every = round(self._every * SQLITE_CHECKPOINT_PAGES / pages)
            self._every = max(1, min(every, 1000))

    def held(self) -> bool:
        """Whether a transaction of this process holds it."""
        return self._holder is not None and self._pid == os.getpid()


#: Every SQLiteWriteLock of this process, for the fork handler below.
_LOCKS: weakref.WeakSet[SQLiteWriteLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _unlock_and_close(fd: int) -> None:
    # Unlocked explicitly: a copy of the descriptor in a forked child would keep it.
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _locked() -> sqlite3.OperationalError:
    return sqlite3.OperationalError("database is locked (waited for the writers' lock)")


def write_lock_path(engine: Engine) -> str | None:
    """``<database file>-writer.lock``, or None for an in-memory database (nothing
    to share with other processes) or a dialect other than SQLite."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    if database in ("", ":memory:") or "mode=memory" in database:
        return None
    if database.startswith("file:"):
        database = database[5:].split("?", 1)[0]
    return f"{database}-writer.lock"


#: Engine attribute: its ``SQLiteWriteLock`` (absent: writers do not queue).
WRITE_LOCK_ATTR = "labshare_write_lock"


def write_lock_of(engine: Engine) -> SQLiteWriteLock | None:
    return getattr(engine, WRITE_LOCK_ATTR, None)


def _install_write_lock(engine: Engine, lock: SQLiteWriteLock) -> None:
    """Release ``lock`` right after the DBAPI's COMMIT or ROLLBACK (also the pool's
    rollback of a connection returned with its transaction open) and when the
    connection is closed or invalidated, whatever raised."""
    setattr(engine, WRITE_LOCK_ATTR, lock)
    dialect = engine.dialect

    def releasing(name: str) -> None:
        original = getattr(dialect, name)

        def run(connection: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(connection, *args, **kwargs)
            finally:
                lock.release(getattr(connection, "dbapi_connection", connection))

        setattr(dialect, name, run)

    for name in ("do_rollback", "do_close", "do_terminate"):
        releasing(name)

    original_commit = dialect.do_commit

    def commit(connection: Any) -> None:
        raw = getattr(connection, "dbapi_connection", connection)
        try:
            original_commit(connection)
        except BaseException:
            # A COMMIT that failed may leave the transaction open (a deferred foreign
            # key, an I/O error): SQLite's write lock is still held, so is ours, until
            # the ROLLBACK (do_rollback releases it).
            if not _in_transaction(raw):
                lock.release(raw)
            raise
        if lock.release(raw):
            lock.checkpoint_after_commit(raw)

    setattr(dialect, "do_commit", commit)  # noqa: B010 - on this engine's dialect only


def _in_transaction(raw: Any) -> bool:
    try:
        return bool(raw.in_transaction)
    except (sqlite3.Error, AttributeError):  # closed: no transaction left
        return False


def configure_engine(engine: Engine, *, write_lock: bool = True) -> None:
    if engine.dialect.name != "sqlite":
        _ping_after_idle(engine)
        return
    lock_path = write_lock_path(engine) if write_lock else None
    lock = SQLiteWriteLock(lock_path) if lock_path else None
    if lock is not None:
        _install_write_lock(engine, lock)

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
        if conn.get_execution_options().get(AUTOCOMMIT_READS):
            # The driver is in autocommit mode (isolation_level None): each
            # statement reads the latest committed state, as one of PostgreSQL's
            # autocommit connections does; _on_execute refuses any write on it.
            conn.info[_WRITER] = conn.info[_IMMEDIATE] = False
            return
        immediate = bool(getattr(_state, "immediate", False))
        if not immediate:
            conn.exec_driver_sql("BEGIN")
        elif lock is None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            raw = conn.connection.dbapi_connection
            lock.acquire(raw)
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                lock.release(raw)
                raise
        conn.info[_WRITER] = immediate
        conn.info[_IMMEDIATE] = immediate

    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # A transaction that has written holds SQLite's write lock until it ends:
        # it is a writer already, and must not be rolled back by begin_write().
        if not conn.info.get(_WRITER) and statement.lstrip()[:6].upper() not in _READS:
            if conn.get_execution_options().get(AUTOCOMMIT_READS):
                raise WriteOutsideLock(f"write on a read-only connection: {statement[:60]}")
            conn.info[_WRITER] = True
        if (
            id(engine) in _GUARDED
            and not conn.info.get(_IMMEDIATE)
            and conn.in_transaction()
            and statement.lstrip()[:6].upper() in {"INSERT", "UPDATE", "DELETE"}
        ):
            raise WriteOutsideLock(f"write outside begin_write(): {statement[:60]} {_caller()}")


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
