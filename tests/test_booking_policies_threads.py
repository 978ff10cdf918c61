"""Booking policies under real concurrency (threads, each with its own session and
connection; SQLite file database and PostgreSQL): a lab quota shared by bookings
of different instruments, whose resource locks are different, still admits exactly
its maximum; the buffer is checked atomically with the overlap."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select

from labshare.errors import RuleViolation, SlotTaken
from labshare.extensions import db as _db
from labshare.models import Booking, BookingQuota, Resource, Role, User
from labshare.services.bookings import create_booking
from labshare.timeutil import set_clock

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
THREADS = 8
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


def race(app: Flask, jobs: list[tuple[int, int, dt.datetime, dt.datetime]]) -> list[str]:
    """Each thread books (resource_id, user_id, start, end) at the same moment."""
    barrier = threading.Barrier(len(jobs))
    outcomes = [""] * len(jobs)

    def worker(i: int) -> None:
        resource_id, user_id, start, end = jobs[i]
        with app.app_context():
            try:
                resource = _db.session.get(Resource, resource_id)
                user = _db.session.get(User, user_id)
                assert resource is not None and user is not None
                _db.session.commit()
                barrier.wait(timeout=30)
                create_booking(resource, user, start, end, purpose="race")
                _db.session.commit()
                outcomes[i] = "created"
            except SlotTaken:
                _db.session.rollback()
                outcomes[i] = "taken"
            except RuleViolation as exc:
                _db.session.rollback()
                outcomes[i] = f"rule:{exc.rule}"
            except Exception as exc:  # anything else fails the test
                _db.session.rollback()
                outcomes[i] = f"error: {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def test_lab_quota_across_instruments_admits_exactly_its_maximum(
    app, db, make_lab, make_instrument, make_user
):
    set_clock(lambda: NOW)
    lab = make_lab(rules=dict(RULES))
    instruments = [make_instrument(lab=lab) for _ in range(THREADS)]
    first = make_user(Role.SME)
    users = [first] + [make_user(Role.SME, company=first.company) for _ in range(THREADS - 1)]
    db.session.add(
        BookingQuota(
            institute_id=lab.institute_id, resource_id=lab.id, period="day", max_bookings=3
        )
    )
    db.session.commit()
    end = START + dt.timedelta(hours=1)
    jobs = [(inst.id, user.id, START, end) for inst, user in zip(instruments, users, strict=True)]
    db.session.remove()
    outcomes = race(app, jobs)
    assert [o for o in outcomes if o.startswith("error")] == []
    assert outcomes.count("created") == 3
    assert outcomes.count("rule:quota_bookings") == THREADS - 3
    assert len(db.session.scalars(select(Booking)).all()) == 3


def test_buffer_is_atomic_with_the_overlap_check(app, db, make_lab, make_instrument, make_user):
    set_clock(lambda: NOW)
    lab = make_lab(rules={**RULES, "buffer_minutes": 30})
    inst = make_instrument(lab=lab)
    users = [make_user(Role.SME) for _ in range(THREADS)]
    db.session.commit()
    # Back-to-back hours: with a 30-minute buffer no two neighbours may both win.
    jobs = [
        (inst.id, user.id, START + dt.timedelta(hours=k), START + dt.timedelta(hours=k + 1))
        for k, user in enumerate(users)
    ]
    db.session.remove()
    outcomes = race(app, jobs)
    assert [o for o in outcomes if o.startswith("error")] == []
    won = sorted(
        (b.start_at, b.end_at)
        for b in db.session.scalars(select(Booking).where(Booking.resource_id == inst.id))
    )
    assert won and outcomes.count("created") == len(won)
    for (_s1, e1), (s2, _e2) in itertools.pairwise(won):
        assert s2 - e1 >= dt.timedelta(minutes=30)
