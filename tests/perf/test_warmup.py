"""A new worker warms itself before its first request, writing nothing, and a
failure while warming never stops it."""

from __future__ import annotations

from typing import Any

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
