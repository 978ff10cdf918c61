"""Property tests of the booking engine: over random sequences of create, cancel,
approve and reject on random slots, no two time-holding bookings of an instrument
ever overlap, and a lab never holds more than its capacity at any instant.
Checked by brute force over the rows in the database."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from labshare.booking.bookings import (
    approve_booking,
    cancel_booking,
    create_booking,
    reject_booking,
)
from labshare.errors import InvalidTransition, RuleViolation, SlotTaken
from labshare.extensions import db as _db
from labshare.models import (
    AuditLog,
    Booking,
    BookingRules,
    BookingStatus,
    Lab,
    Notification,
    Resource,
    Role,
    User,
)
from labshare.timeutil import set_clock

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
DAY = dt.datetime(2030, 1, 7, 0, 0, tzinfo=dt.UTC)  # slots are hours of this day
RULES = {
    "slot_minutes": 60,
    "min_minutes": 60,
    "max_minutes": 240,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "requires_approval": True,
    "max_active_per_company": 1000,
    "cancel_deadline_hours": 0,
}

create_op = st.tuples(
    st.just("create"),
    st.sampled_from(["inst", "lab"]),
    st.integers(0, 11),  # start hour
    st.integers(1, 4),  # hours
    st.integers(0, 2),  # which company's member books
)
act_op = st.tuples(
    st.sampled_from(["cancel", "approve", "reject"]),
    st.integers(0, 30),  # which booking (modulo the number created)
)
operations = st.lists(st.one_of(create_op, create_op, act_op), min_size=1, max_size=25)


pytestmark = pytest.mark.usefixtures("cheap_passwords")


@pytest.fixture
def world(db: Any, make_lab: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    lab = make_lab(capacity=2, rules=dict(RULES))
    inst = make_instrument(lab=lab, rules={**RULES, "requires_approval": False})
    smes = [make_user(Role.SME) for _ in range(3)]
    staff = make_user(Role.STAFF, institute=lab.institute)
    db.session.commit()
    return SimpleNamespace(
        lab_id=lab.id, inst_id=inst.id, sme_ids=[u.id for u in smes], staff_id=staff.id
    )


def holding_rows(resource_id: int) -> list[tuple[dt.datetime, dt.datetime]]:
    return list(
        _db.session.execute(
            select(Booking.start_at, Booking.end_at).where(
                Booking.resource_id == resource_id,
                Booking.status.in_([BookingStatus.PENDING, BookingStatus.APPROVED]),
            )
        ).tuples()
    )


def max_overlap(rows: list[tuple[dt.datetime, dt.datetime]]) -> int:
    """Brute force: the most rows that contain one instant (checked at every start)."""
    return max((sum(1 for s, e in rows if s <= t < e) for t, _ in rows), default=0)


def run(world: SimpleNamespace, ops: list[tuple[Any, ...]], capacity: int, auto: bool) -> None:
    session = _db.session
    for model in (Notification, AuditLog, Booking):
        session.execute(delete(model))
    lab = session.get(Lab, world.lab_id)
    assert lab is not None
    lab.capacity = capacity
    rules = session.scalar(select(BookingRules).where(BookingRules.resource_id == lab.id))
    assert rules is not None
    rules.requires_approval = not auto
    session.commit()
    created: list[int] = []
    for op in ops:
        try:
            if op[0] == "create":
                _, which, hour, hours, who = op
                resource = session.get(Resource, world.inst_id if which == "inst" else world.lab_id)
                booker = session.get(User, world.sme_ids[who])
                start = DAY + dt.timedelta(hours=hour)
                booking = create_booking(
                    resource, booker, start, start + dt.timedelta(hours=hours), purpose="p"
                )
                created.append(booking.id)
            elif created:
                booking = session.get(Booking, created[op[1] % len(created)])
                staff = session.get(User, world.staff_id)
                if op[0] == "cancel":
                    cancel_booking(booking, staff)
                elif op[0] == "approve":
                    approve_booking(booking, staff)
                else:
                    reject_booking(booking, staff, "no")
            session.commit()
        except (SlotTaken, InvalidTransition, RuleViolation):
            session.rollback()
        inst_rows = holding_rows(world.inst_id)
        assert max_overlap(inst_rows) <= 1, inst_rows
        lab_rows = holding_rows(world.lab_id)
        assert max_overlap(lab_rows) <= capacity, lab_rows


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations, capacity=st.integers(2, 3), auto=st.booleans())
def test_no_overlap_and_no_overbooking(world, ops, capacity, auto):
    run(world, ops, capacity, auto)


def test_the_checker_sees_overbooking(db, world, make_booking):
    """The brute-force check itself: three overlapping rows exceed capacity 2."""
    lab = db.session.get(Lab, world.lab_id)
    user = db.session.get(User, world.sme_ids[0])
    for hour in (9, 10, 11):
        make_booking(resource=lab, user=user, start=DAY + dt.timedelta(hours=hour))
    db.session.commit()
    assert max_overlap(holding_rows(world.lab_id)) == 2  # 9-11, 10-12, 11-13
    make_booking(resource=lab, user=user, start=DAY + dt.timedelta(hours=10))
    db.session.commit()
    assert max_overlap(holding_rows(world.lab_id)) == 3
