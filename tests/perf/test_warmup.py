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
def test_warming_does_not_wait_for_sqlite_writers(
    app: Any, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another thread holds SQLite's write lock (a long write) while a worker warms:
    the warm-up reads only, so it never queues for the lock, and does not fail."""
    import threading

    from labshare.database import begin_write
    from labshare.sqlite_lock import SQLiteWriteLock, write_lock_of

    lock = write_lock_of(db.engine)
    assert lock is not None
    held, done = threading.Event(), threading.Event()
    warming = threading.current_thread()
    queued: list[str] = []
    acquire = SQLiteWriteLock.acquire

    def counted(self: SQLiteWriteLock, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is warming:
            queued.append("acquire")
        return acquire(self, *args, **kwargs)

    def writer() -> None:
        with app.app_context():
            begin_write()
            held.set()
            done.wait(20)
            db.session.rollback()
            db.session.remove()

    thread = threading.Thread(target=writer)
    thread.start()
    monkeypatch.setattr(SQLiteWriteLock, "acquire", counted)
    monkeypatch.setattr(lock, "timeout", 2.0)  # a queued warm-up gives up after 2 s
    try:
        assert held.wait(10)
        warm(app)
    finally:
        done.set()
        thread.join(20)
    assert queued == []
    assert "warm-up failed" not in caplog.text


def test_warming_starts_reading_the_text_index(
    app: Any, monkeypatch: pytest.MonkeyPatch, make_lab: Any, make_instrument: Any
) -> None:
    from labshare.catalogue import text_index
    from tests.helpers import threads_started

    make_instrument(lab=make_lab(name="力学实验室"), name="压力计", model=None)
    db.session.commit()
    started = threads_started(monkeypatch)
    monkeypatch.setitem(app.config, "TEXT_INDEX", True)
    warm(app)
    readers = [t for t in started if t.name == "labshare-text-index"]
    assert len(readers) == 1
    readers[0].join(30)
    store = text_index.index_of(app)
    assert store.snapshot is not None and store.snapshot.resources == 2  # the lab too
    # off: nothing read
    started.clear()
    store.clear()
    monkeypatch.setitem(app.config, "TEXT_INDEX", False)
    warm(app)
    assert not [t for t in started if t.name == "labshare-text-index"]
