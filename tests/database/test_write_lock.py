"""Every write path takes the write lock first (``database.begin_write``).

On SQLite a transaction that read and then writes takes the database's write lock
only at its first write, and fails with "database is locked" when another writer
got in since its first read. ``guard_writes`` makes any INSERT, UPDATE or DELETE in
a transaction that ``begin_write`` did not begin raise ``WriteOutsideLock``; the
services below run under it (on PostgreSQL the guard is off and they simply run).
Concurrent grants of one qualification: both answer, one row (no unique-constraint
500)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from labshare.booking import bookings
from labshare.booking.policies import checkin, qualifications, quotas, waitlist
from labshare.database import WriteOutsideLock, guard_writes
from labshare.extensions import db
from labshare.jobs import JOBS, run_job
from labshare.models import (
    Booking,
    BookingQuota,
    BookingStatus,
    Instrument,
    Qualification,
    Role,
    ServiceType,
    User,
)
from labshare.timeutil import set_clock
from tests import factories, raceutil
from tests.factories import OPEN_RULES

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
START = dt.datetime(2030, 1, 7, 1, tzinfo=dt.UTC)  # Monday 09:00 in Shanghai


@pytest.fixture
def guarded(app: Flask) -> Iterator[None]:
    guard_writes(db.engine)
    try:
        yield
    finally:
        guard_writes(db.engine, False)


@pytest.fixture
def world(app: Flask) -> Any:
    set_clock(lambda: NOW)
    instrument = factories.make_instrument(
        rules={**OPEN_RULES, "requires_approval": True}, requires_qualification=True
    )
    staff = factories.make_user(Role.STAFF, institute_id=instrument.institute_id)
    sme = factories.make_user(Role.SME)
    other = factories.make_user(Role.SME)
    db.session.commit()
    ids = (instrument.id, staff.id, sme.id, other.id)
    db.session.remove()
    return ids


def _load(ids: tuple[int, ...]) -> tuple[Instrument, User, User, User]:
    instrument = db.session.get(Instrument, ids[0])
    staff, sme, other = (db.session.get(User, i) for i in ids[1:])
    assert instrument and staff and sme and other
    return instrument, staff, sme, other


def test_the_guard_catches_a_write_outside_the_lock(app: Flask, world: Any, guarded: None) -> None:
    db.session.scalar(select(func.count(Booking.id)))  # a read begins the transaction
    if db.engine.dialect.name == "sqlite":
        with pytest.raises(WriteOutsideLock):
            db.session.execute(update(User).values(name="x"))
    db.session.rollback()


def test_services_write_only_under_the_write_lock(app: Flask, world: Any, guarded: None) -> None:
    instrument, staff, sme, other = _load(world)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("grant", lambda: qualifications.grant_qualification(staff, sme, instrument)),
        ("grant other", lambda: qualifications.grant_qualification(staff, other, instrument)),
        ("grant again", lambda: qualifications.grant_qualification(staff, sme, instrument)),
        (
            "quota",
            lambda: quotas.create_quota(
                staff, instrument.institute_id, instrument.id, period="week", max_bookings=5
            ),
        ),
        (
            "book",
            lambda: bookings.create_booking(
                instrument, sme, START, START + dt.timedelta(hours=2), purpose="校准"
            ),
        ),
        ("approve", lambda: bookings.approve_booking(_booking(), staff)),
        (
            "join waitlist",
            lambda: waitlist.join(
                instrument, other, START, START + dt.timedelta(hours=2), purpose="等待"
            ),
        ),
    ]
    for name, step in steps:
        try:
            step()
            db.session.commit()
        except WriteOutsideLock as exc:
            pytest.fail(f"{name}: {exc}")
    set_clock(lambda: START)

    def _record_usage() -> Any:
        # Usage is recorded for what has happened: an hour into the booking.
        set_clock(lambda: START + dt.timedelta(hours=1))
        return bookings.record_usage(
            _booking(),
            staff,
            checked_in_at=None,
            checked_out_at=START + dt.timedelta(hours=1),
            service_type=ServiceType.CALIBRATION,
            samples_count=1,
            problem_solved=True,
        )

    later: list[tuple[str, Callable[[], Any]]] = [
        ("check in", lambda: checkin.check_in(_booking(), staff)),
        ("record usage", _record_usage),
        ("revoke", lambda: qualifications.revoke_qualification(staff, other, instrument)),
        ("delete quota", lambda: quotas.delete_quota(staff, _quota(), instrument.institute_id)),
    ]
    for name, step in later:
        try:
            step()
            db.session.commit()
        except WriteOutsideLock as exc:
            pytest.fail(f"{name}: {exc}")
    set_clock(lambda: START + dt.timedelta(days=1))
    for name in ("no-shows", "complete", "checkin-release", "waitlist-offers", "reminders"):
        try:
            run_job(name)
        except WriteOutsideLock as exc:
            pytest.fail(f"job {name}: {exc}")
    assert _booking().status == BookingStatus.COMPLETED
    assert set(JOBS) >= {"no-shows", "complete", "checkin-release", "waitlist-offers"}


def _booking() -> Booking:
    booking = db.session.scalar(select(Booking).order_by(Booking.id))
    assert booking is not None
    return booking


def _quota() -> int:
    quota_id = db.session.scalar(select(BookingQuota.id))
    assert quota_id is not None
    return int(quota_id)


def test_concurrent_grants_of_one_qualification(
    app: Flask, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several staff grant the same qualification at the same moment: all answer,
    one row holds it (the second finds the first's row under the instrument's lock
    instead of inserting another). A pause after the look-up makes every grant read
    before any writes, were they not ordered by the lock."""
    find = qualifications.find_qualification

    def slow_find(user: User, instrument: Instrument) -> Qualification | None:
        found = find(user, instrument)
        time.sleep(0.2)
        return found

    monkeypatch.setattr(qualifications, "find_qualification", slow_find)

    def grant(valid_days: int) -> raceutil.Step[str]:
        def prepare() -> Callable[[], str]:
            instrument, staff, sme, _other = _load(world)

            def act() -> str:
                qualifications.grant_qualification(
                    staff, sme, instrument, valid_until=dt.date(2031, 1, valid_days)
                )
                return "granted"

            return act

        return prepare

    outcomes = raceutil.race(app, [grant(day) for day in range(1, 7)])
    assert raceutil.labels(outcomes, "granted", {}) == ["granted"] * 6
    rows = db.session.scalar(select(func.count(Qualification.id)))
    assert rows == 1
