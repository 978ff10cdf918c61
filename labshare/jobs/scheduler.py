"""Where the scheduler runs, and the election that makes it run in one process only.

APScheduler 3's job store cannot be shared by processes, so every process that
starts a scheduler would run every job. Instead each candidate process runs a
``SchedulerRunner``: it tries to become leader every ``retry_seconds`` and only the
leader starts the ``BackgroundScheduler``.

- PostgreSQL: the leader holds a **session-level** ``pg_try_advisory_lock`` on a
  dedicated connection (its own engine, outside the pool) for as long as it leads.
  When the process dies its connection closes and the server frees the lock; a
  standby takes over at its next try. The leader checks its connection at every
  interval and steps down when it is gone.
- SQLite (embedded): an exclusive ``fcntl.flock`` on ``instance/scheduler.lock``,
  freed by the kernel when the process dies.

Even so, the jobs themselves are idempotent: a stale leader that has not noticed yet
changes nothing twice.

Layouts: inside the web process (``start_in_web_process``, from ``create_app``),
in gunicorn workers (``post_worker_init`` hook), or as its own process
(``flask scheduler run``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Protocol

import click
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool
from werkzeug.serving import is_running_from_reloader

from labshare.jobs import JOBS, run_job

log = logging.getLogger(__name__)

#: The advisory lock's key ("LabS" + 1): one scheduler leader per database.
LEADER_LOCK_KEY = 0x4C616253_0001
DEFAULT_RETRY_SECONDS = 15


class LeaderLock(Protocol):
    def acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class PostgresAdvisoryLock:
    """A session-level advisory lock held on a dedicated connection."""

    def __init__(self, url: str, key: int = LEADER_LOCK_KEY) -> None:
        self.key = key
        self.engine: Engine = create_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT", pool_pre_ping=False
        )
        self.conn: Connection | None = None

    def acquire(self) -> bool:
        if self.conn is not None:
            return self.still_held()
        try:
            conn = self.engine.connect()
        except Exception:  # database unreachable: try again later
            log.warning("scheduler election: database unreachable", exc_info=True)
            return False
        try:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            )
        except Exception:  # noqa: BLE001
            conn.close()
            return False
        if got:
            self.conn = conn
            return True
        conn.close()
        return False

    def still_held(self) -> bool:
        if self.conn is None:
            return False
        try:
            held = self.conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND granted "
                    "AND ((classid::bigint << 32) | objid::bigint) = :k"
                ),
                {"k": self.key},
            ).scalar()
        except Exception:  # noqa: BLE001 - the connection is gone, and the lock with it
            self._drop()
            return False
        if not held:
            self._drop()
        return bool(held)

    def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # already broken
                self.conn.close()
            self.conn = None

    def release(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # closing frees it anyway
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        self._drop()
        self.engine.dispose()


class FileLock:
    """An exclusive ``flock`` on a file: one holder per machine, freed at process exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        if self.fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def still_held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def make_lock(app: Flask) -> LeaderLock:
    url = str(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.startswith("postgresql"):
        return PostgresAdvisoryLock(url)
    return FileLock(Path(app.config["INSTANCE_DIR"]) / "scheduler.lock")


def _run_in_app(app: Flask, name: str) -> None:
    with app.app_context():
        try:
            run_job(name)
        except Exception:
            log.exception("job %s failed", name)


def add_jobs(scheduler: BackgroundScheduler, app: Flask) -> None:
    """Register every job of ``labshare.jobs.JOBS``: explicit ids, replace_existing,
    coalesce (a backlog runs once), one instance at a time, and a misfire grace
    chosen per job (APScheduler's 1-second default would skip a late daily run)."""
    for job in JOBS.values():
        kind, args = job.trigger
        scheduler.add_job(
            _run_in_app,
            kind,
            args=[app, job.name],
            id=job.name,
            name=job.name,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=job.misfire_grace_time,
            **args,
        )


class SchedulerRunner:
    """Campaigns for leadership every ``retry_seconds``; runs the jobs while leading."""

    def __init__(
        self, app: Flask, lock: LeaderLock | None = None, retry_seconds: float | None = None
    ) -> None:
        self.app = app
        self.lock = lock or make_lock(app)
        self.retry_seconds = float(
            retry_seconds
            if retry_seconds is not None
            else app.config.get("SCHEDULER_LEADER_RETRY_SECONDS") or DEFAULT_RETRY_SECONDS
        )
        self.scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.became_leader = threading.Event()

    @property
    def is_leader(self) -> bool:
        return self.scheduler is not None

    def step(self) -> bool:
        """One round of the election; True while leading."""
        if self.scheduler is None:
            if self.lock.acquire():
                self._lead()
        elif not self.lock.still_held():
            log.warning("scheduler: lost the leader lock; standing by")
            self._stand_down()
        return self.scheduler is not None

    def _lead(self) -> None:
        timezone = str(self.app.config.get("DEFAULT_TIMEZONE", "Asia/Shanghai"))
        scheduler = BackgroundScheduler(timezone=timezone)
        add_jobs(scheduler, self.app)
        scheduler.start()
        self.scheduler = scheduler
        self.became_leader.set()
        log.info("scheduler: this process (pid %s) is the leader", os.getpid())

    def _stand_down(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        self.became_leader.clear()

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("scheduler election failed; retrying")
            self._stop.wait(self.retry_seconds)
        self._stand_down()
        self.lock.release()

    def start(self) -> SchedulerRunner:
        self._thread = threading.Thread(
            target=self.run_forever, name="labshare-scheduler", daemon=True
        )
        self._thread.start()
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        else:
            self._stand_down()
            self.lock.release()


def _under_gunicorn() -> bool:
    return "gunicorn.arbiter" in sys.modules


def _serving_command() -> bool:
    """True unless we are inside a CLI command other than ``flask run`` (no scheduler
    during ``flask db upgrade``, ``flask shell``, ``flask jobs run`` ...)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True  # a WSGI server imported the app
    return ctx.command.name == "run"


def start_in_web_process(app: Flask) -> SchedulerRunner | None:
    """Layout (a): the scheduler inside the web process, started by ``create_app``.

    Not when disabled, not in the debug reloader's watching parent (only its serving
    child), not during other CLI commands, and not under gunicorn (there the
    ``post_worker_init`` hook below starts it, after the fork).
    """
    if not app.config.get("SCHEDULER_ENABLED") or app.config.get("TESTING"):
        return None
    if _under_gunicorn() or not _serving_command():
        return None
    if app.debug and not is_running_from_reloader():
        return None
    return _start(app)


def post_worker_init(worker: Any) -> None:
    """Layout (b): gunicorn's ``post_worker_init`` hook. Every worker campaigns; the
    advisory lock elects one leader, a standby takes over when it dies.

    In ``gunicorn.conf.py``: ``from labshare.jobs.scheduler import post_worker_init``.
    """
    app = getattr(worker, "wsgi", None)
    if isinstance(app, Flask) and app.config.get("SCHEDULER_ENABLED"):
        _start(app)


_runner: SchedulerRunner | None = None


def _start(app: Flask) -> SchedulerRunner:
    global _runner
    if _runner is None:
        _runner = SchedulerRunner(app).start()
    return _runner
