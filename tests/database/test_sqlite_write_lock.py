"""SQLite's writers queue on ``SQLiteWriteLock`` (a ``flock`` next to the database
file, a mutex within the process) before ``BEGIN IMMEDIATE``.

The busy timeout is set to 0 where it matters below: without the queue two writers
that meet fail at once with "database is locked"; with it they take turns. The lock
is released however the transaction ends, and never makes a thread wait for itself.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from config import TestingConfig
from labshare import create_app
from labshare import database as database_module
from labshare import sqlite_lock as lock_module
from labshare.database import begin_write, is_busy
from labshare.extensions import db as _db
from labshare.sqlite_lock import SQLiteWriteLock, write_lock_of, write_lock_path
from tests.serverutil import ROOT

TABLE = "CREATE TABLE IF NOT EXISTS lock_probe (id INTEGER PRIMARY KEY, who TEXT NOT NULL)"


@pytest.fixture
def sqlite_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """An app on a SQLite file of its own, whose connections never wait in SQLite's
    busy handler (busy_timeout 0)."""
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 0)
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'lock.db'}",
        INSTANCE_DIR=str(tmp_path),
    )
    with app.app_context():
        _db.session.execute(text(TABLE))
        _db.session.commit()
        yield app
        _db.session.remove()
        _db.engine.dispose()


def _free(app: Flask) -> bool:
    """Whether another process could take the lock now (a descriptor of its own)."""
    lock = write_lock_of(_db.engine)
    assert lock is not None
    fd = os.open(lock.path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return not lock.held()


def _write(who: str) -> None:
    begin_write()
    _db.session.execute(text("INSERT INTO lock_probe (who) VALUES (:w)"), {"w": who})


def test_the_lock_file_lies_next_to_the_database(sqlite_app: Flask, tmp_path: Path) -> None:
    assert write_lock_path(_db.engine) == f"{tmp_path / 'lock.db'}-writer.lock"
    _write("a")
    assert not _free(sqlite_app)
    _db.session.commit()
    assert _free(sqlite_app)
    assert (tmp_path / "lock.db-writer.lock").exists()


def test_released_after_rollback_error_invalidation_and_close(sqlite_app: Flask) -> None:
    _write("rolled back")
    assert not _free(sqlite_app)
    _db.session.rollback()
    assert _free(sqlite_app)

    _write("first")
    _db.session.commit()
    _write("error")
    with pytest.raises(IntegrityError):  # the statement fails inside the write
        _db.session.execute(text("INSERT INTO lock_probe (id, who) VALUES (1, 'dup')"))
    assert not _free(sqlite_app)
    _db.session.rollback()
    assert _free(sqlite_app)

    _write("invalidated")
    _db.session.connection().invalidate()  # the connection is closed under it
    assert _free(sqlite_app)
    _db.session.rollback()

    _write("closed")  # returned to the pool with its transaction open
    _db.session.close()
    assert _free(sqlite_app)
    assert _db.session.scalar(text("SELECT count(*) FROM lock_probe")) == 1


def test_released_when_begin_immediate_fails(sqlite_app: Flask, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "lock.db", isolation_level=None)  # does not queue
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError) as failed:
            _write("refused")
        assert is_busy(failed.value)
        _db.session.rollback()
        assert _free(sqlite_app)
    finally:
        other.execute("ROLLBACK")
        other.close()
    _write("after")
    _db.session.commit()


def test_a_second_connection_in_the_writing_thread_does_not_wait_for_itself(
    sqlite_app: Flask,
) -> None:
    _write("outer")
    lock = write_lock_of(_db.engine)
    assert lock is not None
    # Reads on another connection go on; a second write transaction of the same
    # thread is not queued behind its own lock (SQLite's busy timeout decides).
    with _db.engine.connect() as second:
        assert second.execute(text("SELECT count(*) FROM lock_probe")).scalar() == 0
        assert lock.acquire(second.connection.dbapi_connection) is False
    _db.session.commit()
    assert _free(sqlite_app)


def test_a_waiter_gives_up_like_sqlite_and_leaves_the_lock_usable(
    sqlite_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = write_lock_of(_db.engine)
    assert lock is not None
    monkeypatch.setattr(lock, "timeout", 0.2)
    other = os.open(lock.path, os.O_RDWR | os.O_CREAT)  # another holder, its own open file
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with pytest.raises(sqlite3.OperationalError) as failed:
            _write("waited")
        assert is_busy(failed.value)  # the request's answer: a 503
        _db.session.rollback()
    finally:
        os.close(other)
    _write("then")
    _db.session.commit()
    assert _free(sqlite_app)


def test_threads_take_turns(sqlite_app: Flask) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(n: int) -> None:
        with sqlite_app.app_context():
            try:
                start.wait()
                for _ in range(15):
                    _write(f"thread {n}")
                    time.sleep(0.001)  # hold it a little while the others queue
                    _db.session.commit()
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert _db.session.scalar(text("SELECT count(*) FROM lock_probe")) == 60


# Each child writes ROUNDS rows, one transaction each, holding the lock a moment;
# SQLite's busy timeout is 0, so a write that did not queue fails at once.
CHILD = """
import sys, time
from pathlib import Path
from sqlalchemy import text
from config import TestingConfig
from labshare import create_app, database
from labshare.extensions import db

url, name, folder, rounds = sys.argv[1:]
database.SQLITE_BUSY_TIMEOUT_MS = 0
app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=folder)
with app.app_context():
    db.session.execute(text("SELECT 1"))
    db.session.rollback()
    (Path(folder) / f"ready-{name}").touch()
    while not (Path(folder) / "go").exists():
        time.sleep(0.01)
    for _ in range(int(rounds)):
        database.begin_write()
        db.session.execute(text("INSERT INTO lock_probe (who) VALUES (:w)"), {"w": name})
        time.sleep(0.002)
        db.session.commit()
print("DONE", name, flush=True)
"""


def test_two_processes_writing_at_once_both_succeed(sqlite_app: Flask, tmp_path: Path) -> None:
    url = str(_db.engine.url)
    rounds = 40
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, name, str(tmp_path), str(rounds)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{n}").exists() for n in ("one", "two")):
            assert time.monotonic() < deadline, "children did not start"
            assert all(c.poll() is None for c in children), [c.communicate() for c in children]
            time.sleep(0.05)
        (tmp_path / "go").touch()
        outputs = [c.communicate(timeout=120) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-3000:]
        assert "database is locked" not in err
        assert out.startswith("DONE")
    _db.session.rollback()
    counts = dict(
        _db.session.execute(text("SELECT who, count(*) FROM lock_probe GROUP BY who")).all()
    )
    assert counts == {"one": rounds, "two": rounds}


def test_in_memory_databases_have_no_lock_file(tmp_path: Path) -> None:
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://", INSTANCE_DIR=str(tmp_path))
    with app.app_context():
        assert write_lock_of(_db.engine) is None
        _db.engine.dispose()


def test_switched_off_by_configuration(tmp_path: Path) -> None:
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'off.db'}",
        INSTANCE_DIR=str(tmp_path),
        SQLITE_WRITE_LOCK=False,
    )
    with app.app_context():
        assert write_lock_of(_db.engine) is None
        begin_write()
        _db.session.rollback()
        _db.engine.dispose()


@pytest.mark.postgresql_only
def test_postgresql_has_no_write_lock(app: Flask) -> None:
    with app.app_context():
        assert _db.engine.dialect.name == "postgresql"
        assert write_lock_of(_db.engine) is None
        assert write_lock_path(_db.engine) is None


def test_a_lock_of_its_own_path(tmp_path: Path) -> None:
    """The lock alone: one holder at a time per open file; release by another
    connection than the holder's does nothing."""
    lock = SQLiteWriteLock(str(tmp_path / "x-writer.lock"), timeout=0.2)
    holder: Any = object()
    assert lock.acquire(holder) is True
    lock.release(object())
    assert lock.held()
    lock.release(holder)
    assert not lock.held()
    assert lock.acquire(holder) is True
    lock.release(holder)


def test_checkpoints_run_after_the_release_and_bound_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's automatic checkpoint would copy the WAL into the database inside a
    COMMIT, so inside the lock; LabShare's runs right after the release instead,
    about every ``SQLITE_CHECKPOINT_PAGES`` pages."""
    monkeypatch.setattr(lock_module, "SQLITE_CHECKPOINT_PAGES", 8)
    monkeypatch.setattr(database_module, "SQLITE_AUTOCHECKPOINT_BACKSTOP", 100_000)
    path = tmp_path / "wal.db"
    app = create_app(
        TestingConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}", INSTANCE_DIR=str(tmp_path)
    )
    with app.app_context():
        _db.session.execute(text(TABLE))
        _db.session.commit()
        assert _db.session.scalar(text("PRAGMA wal_autocheckpoint")) == 100_000
        lock = write_lock_of(_db.engine)
        assert lock is not None
        free_when_run: list[bool] = []
        checkpoint = lock.checkpoint_after_commit

        def spy(connection: Any) -> None:
            free_when_run.append(not lock.held())
            checkpoint(connection)

        monkeypatch.setattr(lock, "checkpoint_after_commit", spy)
        for n in range(200):
            _write("x" * 3000 + str(n))  # a page or more of WAL each
            _db.session.commit()
        _db.session.remove()
        assert len(free_when_run) == 200 and all(free_when_run)
        # Without them the WAL would hold every page of the 200 commits (> 0.8 MB).
        assert (tmp_path / "wal.db-wal").stat().st_size < 60 * 4120
        _db.engine.dispose()


def test_the_lock_file_takes_the_database_files_mode_and_owner(
    sqlite_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever writes first creates it (a CLI run as root, say): the web server's user
    must still be able to open it."""
    lock = write_lock_of(_db.engine)
    assert lock is not None
    database = tmp_path / "lock.db"
    database.chmod(0o660)  # not what the umask (022) leaves of the old 0600
    chowned: list[tuple[int, int]] = []
    monkeypatch.setattr(lock_module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(lock_module.os, "fchown", lambda _fd, u, g: chowned.append((u, g)))
    fresh = SQLiteWriteLock(str(tmp_path / "lock.db-writer.lock"), timeout=1)
    Path(fresh.path).unlink(missing_ok=True)
    holder: Any = object()
    assert fresh.acquire(holder) is True
    fresh.release(holder)
    assert (os.stat(fresh.path).st_mode & 0o777) == 0o660
    owner = database.stat()
    assert chowned == [(owner.st_uid, owner.st_gid)]
    assert lock.path == fresh.path


def test_an_unusable_lock_file_does_not_fail_writes(
    sqlite_app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Opening the lock file fails (another user's file, mode 0600): writes go on
    without queueing on it, and the operator is told once."""
    lock = write_lock_of(_db.engine)
    assert lock is not None
    if lock._fd is not None:
        os.close(lock._fd)
        lock._fd = None

    def refused() -> int:
        raise PermissionError(13, "Permission denied", lock.path)

    monkeypatch.setattr(lock, "_open", refused)
    with caplog.at_level("WARNING", logger="labshare.sqlite_lock"):
        for n in range(3):
            _write(f"unqueued {n}")
            _db.session.commit()
    assert _db.session.scalar(text("SELECT count(*) FROM lock_probe")) == 3
    assert not lock.held()
    warnings = [r for r in caplog.records if "lock file" in r.getMessage()]
    assert len(warnings) == 1


DEFERRED = (
    "CREATE TABLE IF NOT EXISTS lock_child (id INTEGER PRIMARY KEY, probe_id INTEGER"
    " REFERENCES lock_probe (id) DEFERRABLE INITIALLY DEFERRED)"
)


def test_a_failed_commit_keeps_the_lock_until_the_rollback(sqlite_app: Flask) -> None:
    """A deferred foreign key fails the COMMIT and leaves SQLite's transaction (and
    its write lock) open: another writer must not be let in before the ROLLBACK."""
    _db.session.execute(text(DEFERRED))
    _db.session.commit()
    begin_write()
    _db.session.execute(text("INSERT INTO lock_child (probe_id) VALUES (999)"))
    raw = _db.session.connection().connection.dbapi_connection
    with pytest.raises(IntegrityError):
        _db.session.commit()
    assert raw.in_transaction
    assert not _free(sqlite_app)
    _db.session.rollback()
    assert not raw.in_transaction
    assert _free(sqlite_app)
    _write("after")
    _db.session.commit()


class _Interrupt(BaseException):
    """What a signal handler raises (KeyboardInterrupt, a request timeout's)."""


def test_a_waiter_interrupted_leaves_the_lock_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper thread blocked in ``flock`` for an interrupted waiter must free
    the lock when it gets it later, not keep it for good."""
    path = str(tmp_path / "x-writer.lock")
    lock = SQLiteWriteLock(path, timeout=5)
    other = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)

    class Interrupted(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            raise _Interrupt

    threads = types.SimpleNamespace(**vars(threading))
    threads.Event = Interrupted
    monkeypatch.setattr(lock_module, "threading", threads)
    holder: Any = object()
    before = set(threading.enumerate())
    try:
        with pytest.raises(_Interrupt):
            lock.acquire(holder)
        # Found while ``other`` still holds the lock, so it is still blocked in flock
        # (once the lock is free it may finish before it could be looked up).
        (helper,) = [
            t for t in set(threading.enumerate()) - before if t.name == "sqlite-write-lock"
        ]
    finally:
        monkeypatch.undo()
        os.close(other)  # the helper now gets the lock, and must let it go
    helper.join(5)
    assert not helper.is_alive()
    assert not lock.held()
    fd = os.open(path, os.O_RDWR)  # another process, in effect
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: kept for good
    finally:
        os.close(fd)
    assert lock.acquire(holder) is True
    lock.release(holder)


def test_a_forked_child_closes_the_parents_descriptors(tmp_path: Path) -> None:
    lock = SQLiteWriteLock(str(tmp_path / "x-writer.lock"), timeout=1)
    holder: Any = object()
    assert lock.acquire(holder) is True
    fd = lock._fd
    assert fd is not None
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 when the descriptor is gone
        try:
            os.fstat(fd)
        except OSError:
            os._exit(0 if lock._fd is None and not lock.held() else 2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert lock.held()  # the parent's lock is untouched
    lock.release(holder)
