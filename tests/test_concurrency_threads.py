"""Many threads, each with its own app context, session and connection, book the
same slot at the same moment: exactly one wins (a lab: exactly ``capacity``), the
rest get SlotTaken, nobody gets anything else. On SQLite (a file database, so
the threads really share it) and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select

from labshare.errors import SlotTaken
from labshare.extensions import db as _db
from labshare.models import Booking, Resource, Role, User
from labshare.services.bookings import create_booking
from labshare.timeutil import set_clock

THREADS = 20
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "requires_approval": False,
    "max_active_per_company": 100,
    "cancel_deadline_hours": 0,
}


@pytest.fixture(autouse=True)
def _cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "labshare.models.user.generate_password_hash", lambda password, method=None: "x"
    )


def race(
    app: Flask, resource_id: int, user_ids: list[int], slots: list[tuple[Any, Any]]
) -> list[str]:
    """Each thread books ``slots[i % len(slots)]``; returns each thread's outcome."""
    barrier = threading.Barrier(len(user_ids))
    outcomes: list[str] = [""] * len(user_ids)

    def worker(i: int) -> None:
        with app.app_context():
            try:
                resource = _db.session.get(Resource, resource_id)
                user = _db.session.get(User, user_ids[i])
                assert resource is not None and user is not None
                start, end = slots[i % len(slots)]
                # Give the connection back: 20 threads, a pool of 15; the race
                # itself queues for connections as real requests do.
                _db.session.commit()
                barrier.wait(timeout=30)
                create_booking(resource, user, start, end, purpose="race")
                _db.session.commit()
                outcomes[i] = "created"
            except SlotTaken:
                _db.session.rollback()
                outcomes[i] = "taken"
            except Exception as exc:  # anything else is a failure of the test
                _db.session.rollback()
                outcomes[i] = f"error: {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(user_ids))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


@pytest.fixture
def setup(app: Flask, db: Any, make_lab: Any, make_instrument: Any, make_user: Any) -> Any:
    set_clock(lambda: NOW)
    lab = make_lab(capacity=3, rules=dict(RULES))
    inst = make_instrument(lab=lab, rules=dict(RULES))
    users = [make_user(Role.SME) for _ in range(THREADS)]
    db.session.commit()
    ids = {"lab": lab.id, "inst": inst.id, "users": [u.id for u in users]}
    db.session.remove()  # the threads are the only ones talking to the database now
    return ids


def holding(db: Any, resource_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count(Booking.id)).where(
                Booking.resource_id == resource_id, Booking.status.in_(["pending", "approved"])
            )
        )
    )


def test_one_slot_twenty_threads_one_booking(app, db, setup):
    outcomes = race(app, setup["inst"], setup["users"], [(START, START + dt.timedelta(hours=1))])
    assert [o for o in outcomes if o.startswith("error")] == []
    assert outcomes.count("created") == 1
    assert outcomes.count("taken") == THREADS - 1
    assert holding(db, setup["inst"]) == 1


def test_overlapping_slots_twenty_threads_one_booking(app, db, setup):
    """Different but overlapping requests: still only one can hold the hour."""
    slots = [
        (START + dt.timedelta(minutes=30 * k), START + dt.timedelta(minutes=30 * k + 90))
        for k in range(2)
    ]
    outcomes = race(app, setup["inst"], setup["users"], slots)
    assert [o for o in outcomes if o.startswith("error")] == []
    assert outcomes.count("created") == 1
    assert holding(db, setup["inst"]) == 1


def test_lab_of_capacity_three_takes_exactly_three(app, db, setup):
    outcomes = race(app, setup["lab"], setup["users"], [(START, START + dt.timedelta(hours=2))])
    assert [o for o in outcomes if o.startswith("error")] == []
    assert outcomes.count("created") == 3
    assert outcomes.count("taken") == THREADS - 3
    assert holding(db, setup["lab"]) == 3


def test_exclusion_violation_is_a_conflict_not_an_error(app, db, setup, monkeypatch):
    """Were the engine's check ever skipped, PostgreSQL's exclusion constraint still
    refuses the overlap, and it surfaces as SlotTaken (a 409), never a 500; the
    transaction stays usable. SQLite has no such constraint: there the atomic check
    is the only guard, which is why it runs under BEGIN IMMEDIATE."""
    from labshare.services import bookings

    monkeypatch.setattr(bookings, "_check_free", lambda *args, **kw: None)
    inst = db.session.get(Resource, setup["inst"])
    first, second = (db.session.get(User, i) for i in setup["users"][:2])
    create_booking(inst, first, START, START + dt.timedelta(hours=1), purpose="x")
    db.session.commit()
    overlap = (START + dt.timedelta(minutes=30), START + dt.timedelta(minutes=90))
    if db.engine.dialect.name == "postgresql":
        with pytest.raises(SlotTaken):
            create_booking(inst, second, *overlap, purpose="x")
        later = START + dt.timedelta(hours=3)
        create_booking(inst, second, later, later + dt.timedelta(hours=1), purpose="x")
        db.session.commit()
        assert holding(db, setup["inst"]) == 2
    else:
        create_booking(inst, second, *overlap, purpose="x")
        db.session.commit()
        assert holding(db, setup["inst"]) == 2  # the overlap went in: nothing below the check
