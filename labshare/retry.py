"""Requests that lose a race are run again.

PostgreSQL aborts one transaction of a deadlock (SQLSTATE 40P01) or of a
serialization failure (40001); SQLite refuses a write whose read snapshot went
stale (SQLITE_BUSY_SNAPSHOT). Nothing of that transaction was kept, so the view
is simply run again, from the start, a bounded number of times
(``DB_RETRY_ATTEMPTS``, default 4) with a jittered pause. A view that already
committed part of its work is not run again. When the attempts are used up the
answer is a 503 with ``Retry-After`` (``ServiceBusy``: the API's error shape, an
HTML page on the site), never a 500; so is SQLite's "database is locked" after
its busy timeout, without a retry (it waited already).

On SQLite a request that may write (POST, PUT, PATCH, DELETE) takes the write lock
(``begin_write``) before its view reads anything, so no write path of a request
can meet "database is locked" by upgrading a read transaction late; services
called from jobs and the CLI take it themselves. A view marked ``LOCKS_LATE``
(booking creation) reads its token outside the lock, each read on its own
(``begin_read_first``), and takes the lock itself before the reads its writes
depend on: the writers' queue is held for less time.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Engine

from labshare.database import (
    DEFAULT_ATTEMPTS,
    begin_read_first,
    begin_write,
    is_busy,
    is_retryable,
    is_sqlite,
    retry_pause,
)
from labshare.errors import ServiceBusy
from labshare.extensions import db

log = logging.getLogger(__name__)
_COMMITS = "labshare_commits"  # flask.g: commits made by this request so far
_installed = False
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


#: A view's attribute: it takes SQLite's write lock itself (``begin_write``) after
#: the reads that need not hold it, the request's token and user (``LOCKS_LATE``).
LOCKS_LATE = "labshare_locks_late"


def _write_lock_first(view: Callable[..., Any]) -> None:
    if request.method in WRITE_METHODS and is_sqlite():
        session = db.session()
        if not (session.new or session.dirty or session.deleted):
            if getattr(view, LOCKS_LATE, False):
                begin_read_first()  # its token's lookup outside the lock
            else:
                begin_write()


def _count_commit(_conn: Any) -> None:
    if has_request_context():
        setattr(g, _COMMITS, g.get(_COMMITS, 0) + 1)


def retrying_view(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def run(*args: Any, **kwargs: Any) -> Any:
        attempts = int(current_app.config.get("DB_RETRY_ATTEMPTS", DEFAULT_ATTEMPTS))
        for attempt in range(max(attempts, 1)):
            commits = g.get(_COMMITS, 0)
            try:
                _write_lock_first(view)
                return view(*args, **kwargs)
            except Exception as exc:
                if not is_retryable(exc):
                    if is_busy(exc):
                        db.session.rollback()
                        log.warning("request found the database busy: %s", exc)
                        raise ServiceBusy() from exc
                    raise
                db.session.rollback()
                if g.get(_COMMITS, 0) != commits:
                    log.warning("request lost a race after a commit; not retried: %s", exc)
                    raise ServiceBusy() from exc
                if attempt + 1 >= attempts:
                    log.warning("request lost a race %d times; giving up: %s", attempts, exc)
                    raise ServiceBusy() from exc
                log.info("request lost a race (%s); retry %d", exc, attempt + 1)
                time.sleep(retry_pause(attempt))
        raise ServiceBusy()

    return run


def install(app: Flask) -> None:
    """Wrap every view of ``app`` (call after the blueprints are registered)."""
    global _installed
    if not _installed:
        # The connection's COMMIT, not the session's: a savepoint is no commit.
        event.listen(Engine, "commit", _count_commit)
        _installed = True
    for endpoint, view in list(app.view_functions.items()):
        if endpoint != "static":
            app.view_functions[endpoint] = retrying_view(view)
