"""A request or job that loses a race (a deadlock, a serialization failure, a busy
SQLite database) is run again from the start, a bounded number of times; when it
keeps losing, the answer is a 503 with ``Retry-After`` (the API's error shape, an
HTML page on the site) and nothing is written, never a 500.

The lost race is simulated by raising the driver's error from inside the booking
engine after it wrote (so the retry must start from a clean slate); the real
deadlock is in tests/booking/test_lock_order.py."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from labshare.booking import booking_path, bookings
from labshare.catalogue.capability import refresh_base_range
from labshare.database import is_busy, is_retryable
from labshare.jobs import run_job
from labshare.models import AuditLog, Booking, BookingStatus, Role
from labshare.timeutil import set_clock
from tests.helpers import END, NOW, START, bearer, count_rows, error_of


class _Deadlock(Exception):
    sqlstate = "40P01"


class _SerializationFailure(Exception):
    sqlstate = "40001"


def lost_race(kind: type[Exception] = _Deadlock) -> OperationalError:
    return OperationalError("UPDATE resource ...", {}, kind("deadlock detected"))


def sqlite_locked(name: str) -> OperationalError:
    orig = sqlite3.OperationalError("database is locked")
    orig.sqlite_errorname = name  # type: ignore[attr-defined]
    return OperationalError("INSERT INTO booking ...", {}, orig)


@pytest.fixture
def env(db: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    inst = make_instrument()
    refresh_base_range(inst)
    sme = make_user(Role.SME)
    db.session.commit()
    return SimpleNamespace(inst=inst, sme=sme)


def losing(
    monkeypatch: pytest.MonkeyPatch, times: int, error: Callable[[], Exception] = lost_race
) -> list[int]:
    """``book_locked`` writes its booking, then loses the race the first ``times``
    calls. Returns the list of calls made (one item per call)."""
    original = bookings.book_locked
    calls: list[int] = []

    def book_locked(*args: Any, **kwargs: Any) -> Booking:
        calls.append(1)
        booking = original(*args, **kwargs)
        if len(calls) <= times:
            raise error()
        return booking

    monkeypatch.setattr(bookings, "book_locked", book_locked)
    # The API's lean path (services/booking_path.py) books without book_locked.
    original_create = booking_path.create

    def create(*args: Any, **kwargs: Any) -> Booking | None:
        calls.append(1)
        booking = original_create(*args, **kwargs)
        if len(calls) <= times:
            raise error()
        return booking

    monkeypatch.setattr(booking_path, "create", create)
    return calls


def _post(client: Any, env: SimpleNamespace) -> Any:
    payload = {"resource_id": env.inst.id, "start": START, "end": END, "purpose": "校准"}
    return client.post("/api/v1/bookings", json=payload, headers=bearer(env.sme))


def test_is_retryable_knows_the_lost_races() -> None:
    assert is_retryable(lost_race())
    assert is_retryable(lost_race(_SerializationFailure))
    assert is_retryable(RuntimeError("wrapped")) is False
    try:
        raise RuntimeError("outer") from lost_race()
    except RuntimeError as exc:
        assert is_retryable(exc)

    class _Unique(Exception):
        sqlstate = "23505"

    assert not is_retryable(OperationalError("INSERT", {}, _Unique()))
    # SQLite: a stale snapshot is refused at once (retry); a busy database was waited
    # for already (busy_timeout): a 503 without a retry.
    assert is_retryable(sqlite_locked("SQLITE_BUSY_SNAPSHOT"))
    assert not is_retryable(sqlite_locked("SQLITE_BUSY"))
    assert is_busy(sqlite_locked("SQLITE_BUSY")) and not is_busy(lost_race())


def test_api_request_that_lost_a_race_is_run_again(
    client: Any, db: Any, env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = losing(monkeypatch, times=2)
    response = _post(client, env)
    assert response.status_code == 201, response.get_json()
    assert len(calls) == 3
    # The two lost attempts left nothing behind: one booking, one audit row.
    assert count_rows(Booking) == 1
    assert (
        db.session.scalar(
            select(func.count(AuditLog.id)).where(AuditLog.action == "booking.create")
        )
        == 1
    )


@pytest.mark.parametrize(
    ("language", "expected"), [("en", "The service is busy"), ("zh_CN", "服务繁忙")]
)
def test_api_request_that_keeps_losing_gets_503_with_retry_after(
    client: Any,
    db: Any,
    env: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    language: str,
    expected: str,
) -> None:
    env.sme.locale = language.replace("-", "_")
    db.session.commit()
    calls = losing(monkeypatch, times=100)
    response = _post(client, env)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    error = error_of(response)
    assert error["code"] == "service_unavailable"
    assert expected in error["message"]
    assert len(calls) == 4  # DB_RETRY_ATTEMPTS' default
    assert count_rows(Booking) == 0


def test_a_busy_sqlite_database_is_a_503_at_once(
    client: Any, db: Any, env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = losing(monkeypatch, times=100, error=lambda: sqlite_locked("SQLITE_BUSY"))
    response = _post(client, env)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert error_of(response)["code"] == "service_unavailable"
    assert len(calls) == 1
    assert count_rows(Booking) == 0


def test_the_number_of_attempts_is_a_setting(
    app: Flask, client: Any, env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "DB_RETRY_ATTEMPTS", 2)
    calls = losing(monkeypatch, times=100)
    assert _post(client, env).status_code == 503
    assert len(calls) == 2


def test_web_form_that_keeps_losing_gets_the_503_page(
    client: Any,
    db: Any,
    env: SimpleNamespace,
    login: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env.sme.locale = "zh_CN"
    db.session.commit()
    login(env.sme)
    losing(monkeypatch, times=100)
    response = client.post(
        f"/resources/{env.inst.id}/book",
        data={"start": "2030-01-07T09:00", "end": "2030-01-07T11:00", "purpose": "校准"},
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.mimetype == "text/html"
    assert "服务繁忙" in response.get_data(as_text=True)
    assert count_rows(Booking) == 0


def test_web_form_that_lost_a_race_is_run_again(
    client: Any,
    db: Any,
    env: SimpleNamespace,
    login: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login(env.sme)
    calls = losing(monkeypatch, times=1)
    response = client.post(
        f"/resources/{env.inst.id}/book",
        data={"start": "2030-01-07T09:00", "end": "2030-01-07T11:00", "purpose": "校准"},
    )
    assert response.status_code == 302
    assert len(calls) == 2
    assert count_rows(Booking) == 1


def test_a_job_that_lost_a_race_is_run_again(
    db: Any, env: SimpleNamespace, make_booking: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labshare.jobs import lifecycle

    start = dt.datetime(2030, 1, 7, 1, tzinfo=dt.UTC)
    booking = make_booking(resource=env.inst, start=start, status=BookingStatus.APPROVED)
    db.session.commit()
    set_clock(lambda: start + dt.timedelta(hours=4))
    original = lifecycle.mark_no_show
    calls: list[int] = []

    def mark_no_show(b: Booking, **kw: Any) -> bool:
        calls.append(b.id)
        changed = original(b, **kw)
        if len(calls) == 1:
            raise lost_race()
        return changed

    monkeypatch.setattr(lifecycle, "mark_no_show", mark_no_show)
    assert run_job("no-shows")["ids"] == [booking.id]
    assert calls == [booking.id, booking.id]
    assert (
        db.session.scalar(
            select(func.count(AuditLog.id)).where(AuditLog.action == "booking.no_show")
        )
        == 1
    )
