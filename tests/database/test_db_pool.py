"""Pooled PostgreSQL connections (labshare/database.py): no ping on every checkout
(it cost a round trip per request), but one after the connection sat idle, so a
connection the server dropped meanwhile is replaced before use."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from config import Config
from labshare import database
from labshare.extensions import db as _db

pytestmark = pytest.mark.postgresql_only


def _terminate(app: Flask, pid: int | None = None) -> None:
    """Terminate one backend (``pid``) or every other one of the test database, and
    wait until it is gone: pg_terminate_backend only signals, and on a busy machine a
    backend may still answer a ping for a moment."""
    admin = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], isolation_level="AUTOCOMMIT")
    which = (
        "pid = :pid"
        if pid is not None
        else "datname = current_database() AND pid <> pg_backend_pid()"
    )
    with admin.connect() as conn:
        conn.execute(
            text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {which}"),
            {"pid": pid},
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = conn.execute(
                text(f"SELECT count(*) FROM pg_stat_activity WHERE {which}"),
                {"pid": pid},
            ).scalar_one()
            if not left:
                break
            time.sleep(0.05)
    admin.dispose()


def _pooled_backend(app: Flask) -> int:
    """Check a connection out and in again; its server pid. The pool is emptied
    first, so that this is its only idle connection and the next checkout gets it
    (after earlier tests the pool holds several, handed out oldest first)."""
    _db.session.remove()
    _db.engine.dispose()
    with _db.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_the_configuration_does_not_ping_every_checkout() -> None:
    assert not Config.SQLALCHEMY_ENGINE_OPTIONS.get("pool_pre_ping")
    assert Config.SQLALCHEMY_ENGINE_OPTIONS["pool_recycle"] > 0


def test_a_connection_dropped_while_idle_is_replaced(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _pooled_backend(app)
    _terminate(app, pid)
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # it has been idle "long"
    with _db.engine.connect() as conn:
        again = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    assert again != pid


def test_a_recently_used_connection_is_not_pinged(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the idle ping the dead connection is handed out: proof that a busy
    pool sends no ping per checkout. The failure invalidates the pool."""
    pid = _pooled_backend(app)
    _terminate(app, pid)
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 3600.0)
    with pytest.raises(OperationalError), _db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    with _db.engine.connect() as conn:  # the next checkout gets a live one
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_availability_survives_a_dropped_idle_connection(
    app: Flask, client: Any, make_instrument: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The calendar cache keeps connections checked out; one that sat idle goes
    back through the pool (and its ping) before the next read."""
    inst = make_instrument()
    db.session.commit()
    monday = dt.datetime(2030, 1, 7, tzinfo=dt.UTC)
    week = {"from": monday.isoformat(), "to": (monday + dt.timedelta(days=7)).isoformat()}
    url = f"/api/v1/resources/{inst.id}/availability"
    assert client.get(url, query_string=week).status_code == 200
    _db.session.remove()
    _terminate(app)  # every connection of the app's pool, the kept one included
    from labshare.booking import calendar_cache

    monkeypatch.setattr(calendar_cache._KeptConnections, "IDLE_SECONDS", 0.0)
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)
    again = client.get(url, query_string=week)
    assert again.status_code == 200, again.get_data(as_text=True)
    _db.session.remove()
    _db.engine.dispose()  # the other dead connections: not for the next test
