"""A new worker warms itself before its first request, writing nothing, and a
failure while warming never stops it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.extensions import db
from labshare.models import AuditLog, Booking, Notification
from labshare.warmup import warm


def _rows() -> tuple[int, int, int]:
    return (
        int(db.session.scalar(select(func.count(Booking.id))) or 0),
        int(db.session.scalar(select(func.count(AuditLog.id))) or 0),
        int(db.session.scalar(select(func.count(Notification.id))) or 0),
    )


def test_warm_writes_nothing(app: Any) -> None:
    before = _rows()
    db.session.commit()
    warm(app)
    assert _rows() == before


def test_a_failure_while_warming_is_only_logged(app: Any, monkeypatch: Any, caplog: Any) -> None:
    from labshare import warmup

    def broken() -> None:
        raise RuntimeError("no database")

    monkeypatch.setattr(warmup, "_warm", broken)
    warm(app)
    assert "warm-up failed" in caplog.text


@pytest.mark.sqlite_only
def test_warming_does_not_wait_for_sqlite_writers(app: Any, caplog: Any) -> None:
    """Another thread holds SQLite's write lock (a long write) while a worker warms:
    the warm-up reads only, so it neither waits for the lock nor fails."""
    import threading
    import time

    from labshare.database import begin_write
    from labshare.sqlite_lock import write_lock_of

    lock = write_lock_of(db.engine)
    assert lock is not None
    held, done = threading.Event(), threading.Event()

    def writer() -> None:
        with app.app_context():
            begin_write()
            held.set()
            done.wait(20)
            db.session.rollback()
            db.session.remove()

    thread = threading.Thread(target=writer)
    thread.start()
    timeout, lock.timeout = lock.timeout, 2.0  # a queued warm-up would give up after 2 s
    try:
        assert held.wait(10)
        started = time.monotonic()
        warm(app)
        took = time.monotonic() - started
    finally:
        lock.timeout = timeout
        done.set()
        thread.join(20)
    assert "warm-up failed" not in caplog.text
    assert took < 2.0
