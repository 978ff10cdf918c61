"""Many threads, each with its own app context, session and connection, book the
same slot at the same moment: exactly one wins (a lab: exactly ``capacity``), the
rest get SlotTaken, nobody gets anything else. On SQLite (a file database, so
the threads really share it) and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select

from labshare.booking.bookings import create_booking
from labshare.errors import SlotTaken
from labshare.models import Booking, Resource, Role, User
from labshare.timeutil import set_clock
from tests import raceutil
from tests.factories import OPEN_RULES as RULES

pytestmark = pytest.mark.usefixtures("cheap_passwords")

THREADS = 20
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)


def race(
    app: Flask, resource_id: int, user_ids: list[int], slots: list[tuple[Any, Any]]
) -> list[str]:
    """Each thread books ``slots[i % len(slots)]``; returns each thread's outcome.
    20 threads, a pool of 15: the race itself queues for connections as real
    requests do."""
    steps = [
        raceutil.booking_step(resource_id, user_id, *slots[i % len(slots)])
        for i, user_id in enumerate(user_ids)
    ]
    outcomes = raceutil.race(app, steps)
    return raceutil.labels(outcomes, "created", {SlotTaken: "taken"})


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
    from labshare.booking import checks

    monkeypatch.setattr(checks, "_check_free", lambda *args, **kw: None)
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
