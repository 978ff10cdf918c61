"""SQLite's writers' queue: ``SQLiteWriteLock``.

Writers queue on a lock of their own before ``BEGIN IMMEDIATE`` (``flock`` on
``<database>-writer.lock`` across processes, a mutex across threads), released right
after COMMIT or ROLLBACK. SQLite's busy handler polls with sleeps of up to 100 ms, so
a waiting writer slept on well after the lock was free, and a worker that took the
lock again at once kept the other one waiting (two sync workers booked no faster
than one). A writer blocked in ``flock`` wakes the moment the lock is released.
``labshare.database.configure_engine`` installs it on a SQLite engine.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import stat
import threading
import time
import weakref
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: How long a writer waits for ``SQLiteWriteLock`` before it gives up as SQLite
#: would after ``busy_timeout`` ("database is locked": a 503).
SQLITE_WRITE_LOCK_TIMEOUT = SQLITE_BUSY_TIMEOUT_MS / 1000
#: With the writers' lock, WAL pages between the checkpoints run after a commit
#: (SQLite's own default for ``wal_autocheckpoint``), and SQLite's automatic
#: checkpoint kept only as a backstop for writers that do not queue, at ten times that.
SQLITE_CHECKPOINT_PAGES = 1000
SQLITE_AUTOCHECKPOINT_BACKSTOP = 10 * SQLITE_CHECKPOINT_PAGES


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


def install_write_lock(engine: Engine, lock: SQLiteWriteLock) -> None:
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
