"""One lock order for every writer: resources in id order, then bookings.

The calendar trigger updates a booking's ``resource`` row whenever the booking's
status changes, so an UPDATE of a booking locks the booking, then its resource.
Staff lock the resource first, then the booking. A job that updated bookings
without holding their resource first met staff acting on the same booking in a
lock cycle (PostgreSQL: SQLSTATE 40P01, a 500 or a failed job run).

The races are made certain rather than likely: a test-only BEFORE UPDATE trigger
sleeps while the job's UPDATE holds the booking's row (and tells, through a
sequence, which booking), and staff act on exactly that booking at that moment.
With the lock order the staff wait for the job's resource lock and then get a
clean "no longer approved" answer; nobody gets a database error.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from labshare.booking.bookings import record_usage
from labshare.booking.policies import waitlist
from labshare.errors import InvalidTransition
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import (
    Booking,
    BookingStatus,
    Role,
    ServiceType,
    UsageRecord,
    User,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.timeutil import set_clock
from tests import factories, raceutil

pytestmark = [pytest.mark.postgresql_only, pytest.mark.usefixtures("cheap_passwords")]

RESOURCES = 4
START = dt.datetime(2030, 1, 7, 1, 0, tzinfo=dt.UTC)
END = START + dt.timedelta(hours=2)
SLOW_SECONDS = 0.4

SLOW_TRIGGER = f"""
CREATE SEQUENCE test_slow_booking;
CREATE FUNCTION test_slow_booking() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The row is locked while a BEFORE trigger runs: tell which, and hold it a while.
    PERFORM setval('test_slow_booking', NEW.id);
    PERFORM pg_sleep({SLOW_SECONDS});
    RETURN NEW;
END $$;
CREATE TRIGGER test_slow_booking BEFORE UPDATE OF status ON booking FOR EACH ROW
    WHEN (OLD.status = 'approved' AND NEW.status IN ('no_show', 'completed'))
    EXECUTE FUNCTION test_slow_booking();
"""
DROP_SLOW_TRIGGER = """
DROP TRIGGER IF EXISTS test_slow_booking ON booking;
DROP FUNCTION IF EXISTS test_slow_booking();
DROP SEQUENCE IF EXISTS test_slow_booking;
"""


@pytest.fixture
def slow_job_updates(app: Flask) -> Iterator[None]:
    with db.engine.begin() as conn:
        conn.exec_driver_sql(DROP_SLOW_TRIGGER)
        conn.exec_driver_sql(SLOW_TRIGGER)
    try:
        yield
    finally:
        db.session.remove()
        with db.engine.begin() as conn:
            conn.exec_driver_sql(DROP_SLOW_TRIGGER)


def _wait_until_job_holds(booking_id: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = db.session.scalar(text("SELECT last_value FROM test_slow_booking WHERE is_called"))
        db.session.rollback()
        if held == booking_id:
            return
        time.sleep(0.01)
    raise AssertionError(f"the job never reached booking {booking_id}")


def _scene(with_usage: bool) -> tuple[list[int], int]:
    """One approved booking over (ended, nobody checked in) on each of several
    instruments (of several labs), ending in the order opposite to their ids, so the
    job's time order is not the id order; returns the booking ids and a staff id."""
    institute = factories.make_institute()
    staff = factories.make_user(Role.STAFF, institute_id=institute.id)
    ids: list[int] = []
    for i in range(RESOURCES):
        lab = factories.make_lab(institute=institute)
        instrument = factories.make_instrument(lab=lab)
        start = START - dt.timedelta(minutes=10 * i)
        booking = factories.make_booking(
            resource=instrument,
            start=start,
            end=start + dt.timedelta(hours=2),
            status=BookingStatus.APPROVED,
        )
        if with_usage:
            db.session.add(
                UsageRecord(
                    booking_id=booking.id,
                    checked_in_at=booking.start_at,
                    checked_out_at=booking.end_at,
                    service_type=ServiceType.CALIBRATION,
                    samples_count=1,
                    problem_solved=True,
                    recorded_by_id=staff.id,
                )
            )
        ids.append(booking.id)
    db.session.commit()
    return ids, staff.id


def _staff_records_usage(booking_id: int, staff_id: int) -> raceutil.Step[str]:
    def prepare() -> Callable[[], str]:
        def act() -> str:
            _wait_until_job_holds(booking_id)
            booking = db.session.get(Booking, booking_id)
            staff = db.session.get(User, staff_id)
            assert booking is not None and staff is not None
            record_usage(
                booking,
                staff,
                checked_in_at=booking.start_at,
                checked_out_at=booking.end_at,
                service_type=ServiceType.TESTING,
                samples_count=2,
                problem_solved=True,
            )
            return "recorded"

        return act

    return prepare


def _job(name: str) -> raceutil.Step[Any]:
    def prepare() -> Callable[[], Any]:
        return lambda: run_job(name)

    return prepare


@pytest.mark.parametrize(
    ("job", "with_usage", "outcome"),
    [("no-shows", False, BookingStatus.NO_SHOW), ("complete", True, BookingStatus.COMPLETED)],
)
def test_staff_recording_usage_while_the_job_runs_over_many_resources(
    app: Flask, slow_job_updates: None, job: str, with_usage: bool, outcome: BookingStatus
) -> None:
    set_clock(lambda: END + dt.timedelta(hours=1))
    ids, staff_id = _scene(with_usage)
    db.session.remove()
    steps: list[raceutil.Step[Any]] = [_job(job)]
    steps += [_staff_records_usage(booking_id, staff_id) for booking_id in ids]
    outcomes = raceutil.race(app, steps, timeout=90)

    job_outcome = outcomes[0]
    assert job_outcome.ok, raceutil.error_label(job_outcome.error or Exception())
    staff = raceutil.labels(outcomes[1:], "recorded", {InvalidTransition: "refused"})
    # The job held each resource before its booking, so staff waited, then found the
    # booking moved on: a clean refusal (409), never a deadlock.
    assert staff == ["refused"] * RESOURCES
    assert sorted(job_outcome.value["ids"]) == sorted(ids)
    statuses = db.session.scalars(select(Booking.status).where(Booking.id.in_(ids)))
    assert set(statuses) == {outcome}


STALE_TRIGGER = f"""
CREATE SEQUENCE test_slow_booking;
CREATE FUNCTION test_slow_booking() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM setval('test_slow_booking', NEW.id);
    PERFORM pg_sleep({SLOW_SECONDS});
    RETURN NEW;
END $$;
CREATE TRIGGER test_slow_booking BEFORE UPDATE OF status ON waitlist_entry FOR EACH ROW
    WHEN (OLD.status = 'waiting' AND NEW.status = 'expired')
    EXECUTE FUNCTION test_slow_booking();
"""
DROP_STALE_TRIGGER = DROP_SLOW_TRIGGER.replace("ON booking", "ON waitlist_entry")


@pytest.fixture
def slow_entry_updates(app: Flask) -> Iterator[None]:
    with db.engine.begin() as conn:
        conn.exec_driver_sql(DROP_STALE_TRIGGER)
        conn.exec_driver_sql(STALE_TRIGGER)
    try:
        yield
    finally:
        db.session.remove()
        with db.engine.begin() as conn:
            conn.exec_driver_sql(DROP_STALE_TRIGGER)


def test_leaving_the_waitlist_while_the_job_expires_stale_entries(
    app: Flask, slow_entry_updates: None
) -> None:
    """The waitlist job expires waiting entries whose slot is over (its trigger then
    writes the resource's row); an SME leaving such an entry at that moment holds the
    resource first. With the job holding each resource first, the SME waits and is
    told the entry is no longer on the waitlist (409)."""
    set_clock(lambda: END + dt.timedelta(hours=1))
    institute = factories.make_institute()
    ids: list[int] = []
    users: list[int] = []
    for _ in range(RESOURCES):
        instrument = factories.make_instrument(lab=factories.make_lab(institute=institute))
        user = factories.make_user(Role.SME)
        entry = WaitlistEntry(
            resource_id=instrument.id,
            company_id=user.company_id,
            user_id=user.id,
            start_at=START,
            end_at=END,
            purpose="等待",
            status=WaitlistStatus.WAITING,
            created_at=START - dt.timedelta(days=1),
            updated_at=START - dt.timedelta(days=1),
        )
        db.session.add(entry)
        db.session.flush()
        ids.append(entry.id)
        users.append(user.id)
    db.session.commit()
    db.session.remove()

    def leave(entry_id: int, user_id: int) -> raceutil.Step[str]:
        def prepare() -> Callable[[], str]:
            def act() -> str:
                _wait_until_job_holds(entry_id)
                entry = db.session.get(WaitlistEntry, entry_id)
                user = db.session.get(User, user_id)
                assert entry is not None and user is not None
                waitlist.leave(entry, user)
                return "left"

            return act

        return prepare

    steps: list[raceutil.Step[Any]] = [_job("waitlist-offers")]
    steps += [leave(e, u) for e, u in zip(ids, users, strict=True)]
    outcomes = raceutil.race(app, steps, timeout=90)
    job_outcome = outcomes[0]
    assert job_outcome.ok, raceutil.error_label(job_outcome.error or Exception())
    smes = raceutil.labels(outcomes[1:], "left", {InvalidTransition: "refused"})
    assert smes == ["refused"] * RESOURCES
    assert job_outcome.value["stale"] == RESOURCES
    statuses = db.session.scalars(select(WaitlistEntry.status).where(WaitlistEntry.id.in_(ids)))
    assert set(statuses) == {WaitlistStatus.EXPIRED}
