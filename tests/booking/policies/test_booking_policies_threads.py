"""Booking policies under real concurrency (threads, each with its own session and
connection; SQLite file database and PostgreSQL): a lab quota shared by bookings
of different instruments, whose resource locks are different, still admits exactly
its maximum; the buffer is checked atomically with the overlap."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select

from labshare.errors import RuleViolation, SlotTaken
from labshare.models import Booking, BookingQuota, Role
from labshare.timeutil import set_clock
from tests import raceutil
from tests.factories import OPEN_RULES as RULES

pytestmark = pytest.mark.usefixtures("cheap_passwords")

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
THREADS = 8


def race(app: Flask, jobs: list[tuple[int, int, dt.datetime, dt.datetime]]) -> list[str]:
    """Each thread books (resource_id, user_id, start, end) at the same moment."""

    outcomes = raceutil.race(app, [raceutil.booking_step(*job) for job in jobs])
    return raceutil.labels(
        outcomes,
        "created",
        {SlotTaken: "taken", RuleViolation: lambda exc: f"rule:{exc.rule}"},
    )


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
