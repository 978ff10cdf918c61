"""Faults that involve processes and the machine: a worker killed in the middle of
a booking, a full disk during an export, a PostgreSQL database that disappears and
comes back."""

from __future__ import annotations

import datetime as dt
import errno
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import flask_migrate
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from config import TestingConfig
from labshare import create_app
from labshare.booking import bookings
from labshare.campaign import export
from labshare.extensions import db as _db
from labshare.models import AuditLog, Booking, Notification, Role
from tests import factories
from tests.conftest import PG_URL, postgres_available
from tests.helpers import bearer, error_of
from tests.serverutil import ROOT, fresh_postgres, sibling_postgres_url

RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "max_active_per_company": 5,
    "cancel_deadline_hours": 0,
    "requires_approval": False,
}

# The child: begins a booking, flushes it (booking, audit and outbox rows written,
# nothing committed), says so, and waits to be killed.
CHILD = """
import datetime as dt, sys
from sqlalchemy import func, select
from config import TestingConfig
from labshare import create_app
from labshare.extensions import db
from labshare.models import AuditLog, Booking, Notification, Resource, User
from labshare.booking.bookings import create_booking

url, resource_id, user_id, start, end, instance = sys.argv[1:]
app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=instance)
with app.app_context():
    create_booking(
        db.session.get(Resource, int(resource_id)),
        db.session.get(User, int(user_id)),
        dt.datetime.fromisoformat(start),
        dt.datetime.fromisoformat(end),
        purpose="killed mid-booking",
    )
    db.session.flush()
    counts = [db.session.scalar(select(func.count()).select_from(m))
              for m in (Booking, AuditLog, Notification)]
    print("FLUSHED", *counts, flush=True)
    sys.stdin.read()
"""


def _counts() -> list[int]:
    _db.session.rollback()
    return [
        int(_db.session.scalar(select(func.count()).select_from(m)) or 0)
        for m in (Booking, AuditLog, Notification)
    ]


def test_worker_killed_mid_booking_leaves_no_partial_rows(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    instrument = factories.make_instrument(rules=RULES)
    booker = factories.make_user(Role.SME)
    _db.session.commit()
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)
    start = dt.datetime.combine(day, dt.time(2, 0), dt.UTC)  # 10:00 in Shanghai
    end = start + dt.timedelta(hours=1)
    before = _counts()

    stderr = (tmp_path / "child.err").open("wb")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            database_url,
            str(instrument.id),
            str(booker.id),
            start.isoformat(),
            end.isoformat(),
            str(tmp_path),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode()
        err = (tmp_path / "child.err").read_text(errors="replace")
        assert line.startswith("FLUSHED"), err[-3000:]
        # The child's transaction holds one more booking, audit and outbox row each...
        written = [int(n) for n in line.split()[1:]]
        assert all(w > b for w, b in zip(written, before, strict=True)), (written, before)
        # ... which nobody else sees.
        assert _counts() == before
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        stderr.close()

    assert _counts() == before
    # The lock died with the worker: the same slot can be booked at once.
    if _db.session.get_bind().dialect.name == "postgresql":
        _db.session.execute(text("SET LOCAL lock_timeout = '10s'"))
    booking = bookings.create_booking(instrument, booker, start, end, purpose="after the crash")
    _db.session.commit()
    assert booking.id is not None
    assert _counts() == [before[0] + 1, before[1] + 1, before[2] + 1]


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _full_disk_after_a_few_bytes(target: IO[bytes] | str, *args: Any, **kw: Any) -> Any:
    if isinstance(target, str):
        Path(target).write_bytes(b"PK\x03\x04 partial")
    else:
        target.write(b"partial")
    raise _enospc()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_full_disk_during_cli_export(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setattr(export, "write_csv", _full_disk_after_a_few_bytes)
    monkeypatch.setattr(export, "write_xlsx", _full_disk_after_a_few_bytes)
    out = tmp_path / "out" / f"usage.{fmt}"
    out.parent.mkdir()
    result = app.test_cli_runner().invoke(
        args=["export-usage", "--month", "2030-01", "--format", fmt, "--out", str(out)]
    )
    assert result.exit_code != 0
    assert "disk is full" in result.output and "no space left" in result.output
    assert str(out) in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert list(out.parent.iterdir()) == []  # neither the file nor a partial .part


def test_full_disk_during_download_is_a_clear_error(
    app: Flask,
    client: FlaskClient,
    login: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = factories.make_user(Role.ADMIN)
    headers = bearer(admin)
    monkeypatch.setattr(export, "write_xlsx", _full_disk_after_a_few_bytes)
    api = client.get(
        "/api/v1/reports/usage",
        query_string={"month": "2030-01", "format": "xlsx"},
        headers=headers,
    )
    assert api.status_code == 503
    error = error_of(api)
    assert error["code"] == "service_unavailable"
    assert "disk is full" in error["message"]

    login(admin)
    page = client.get("/reports/export", query_string={"month": "2030-01", "format": "xlsx"})
    assert page.status_code == 503
    html = page.get_data(as_text=True)
    assert "disk is full" in html
    assert "Traceback" not in html and "OSError" not in html and "Errno" not in html


@pytest.mark.postgresql
def test_healthz_503_then_recovers_on_postgresql(tmp_path: Path) -> None:
    if not postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    url = sibling_postgres_url(PG_URL, "faults")
    name = make_url(url).database
    away = f"{name}_away"
    fresh_postgres(url)
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(tmp_path))
    with app.app_context():
        flask_migrate.upgrade()
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200

    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{away}"'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"
                ),
                {"d": name},
            )
            conn.execute(text(f'ALTER DATABASE "{name}" RENAME TO "{away}"'))
        try:
            for _ in range(2):  # the dead pooled connection, then a refused new one
                health = client.get("/healthz")
                assert health.status_code == 503
                assert health.get_json() == {"status": "error", "database": "unreachable"}
            page = client.get("/")
            assert page.status_code == 500
            html = page.get_data(as_text=True)
            assert "Reference:" in html
            assert "Traceback" not in html and "psycopg" not in html
            assert "OperationalError" not in html and name not in html
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{away}" RENAME TO "{name}"'))
    finally:
        admin.dispose()

    # Back: the same app answers again, without a restart.
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200
    with app.app_context():
        _db.engine.dispose()
