"""The engine tells its policies what happened through signals and asks them
through the hooks they register at app start (labshare/booking/signals.py,
labshare/booking/hooks.py). On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from labshare.booking import booking_path, hooks, signals
from labshare.booking.bookings import (
    approve_booking,
    book_locked,
    cancel_booking,
    create_booking,
    lock_resources,
    mark_no_show,
    validate_request,
)
from labshare.booking.policies import register
from labshare.errors import RuleViolation
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, Role
from labshare.timeutil import set_clock
from tests import factories
from tests.factories import OPEN_RULES

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
START = dt.datetime(2030, 1, 7, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(hours=2)


@pytest.fixture
def env(app: Flask) -> SimpleNamespace:
    set_clock(lambda: NOW)
    inst = factories.make_instrument(rules={**OPEN_RULES, "requires_approval": True})
    sme = factories.make_user(Role.SME)
    staff = factories.make_user(Role.STAFF, institute_id=inst.institute_id)
    db.session.commit()
    return SimpleNamespace(inst=inst, sme=sme, staff=staff)


@pytest.fixture
def heard() -> Iterator[list[tuple[str, int, dict[str, Any]]]]:
    """Every signal the engine sends during the test: (signal, booking id, arguments)."""
    out: list[tuple[str, int, dict[str, Any]]] = []

    def listen(name: str) -> Any:
        def receiver(booking: Booking, **kw: Any) -> None:
            out.append((name, booking.id, kw))

        return receiver

    receivers = {
        signals.booking_created: listen("created"),
        signals.status_changed: listen("status"),
        signals.time_freed: listen("freed"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        yield out
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)


def test_both_write_paths_announce_a_new_booking(env: SimpleNamespace, heard: list[Any]) -> None:
    lean = booking_path.create(env.inst.id, env.sme, START, END, purpose="p")
    assert lean is not None
    request = validate_request(env.sme, END, END + dt.timedelta(hours=2), purpose="p")
    lock_resources([env.inst.id])
    full = book_locked(env.inst, env.sme, request)
    db.session.commit()
    assert heard == [("created", lean.id, {}), ("created", full.id, {})]


def test_moves_announce_the_status_and_the_freed_time(
    env: SimpleNamespace, heard: list[Any]
) -> None:
    first = create_booking(env.inst, env.sme, START, END, purpose="p")
    approve_booking(first, env.staff)
    cancel_booking(first, env.staff, "broken")
    db.session.commit()
    assert heard == [
        ("created", first.id, {}),
        ("status", first.id, {"before": BookingStatus.PENDING, "after": BookingStatus.APPROVED}),
        ("status", first.id, {"before": BookingStatus.APPROVED, "after": BookingStatus.CANCELLED}),
        ("freed", first.id, {}),
    ]


def test_a_no_show_frees_time_only_while_its_end_is_ahead(
    env: SimpleNamespace, heard: list[Any]
) -> None:
    early = create_booking(env.inst, env.sme, START, END, purpose="p")
    approve_booking(early, env.staff)
    db.session.commit()
    heard.clear()
    set_clock(lambda: END + dt.timedelta(hours=1))  # over: nothing left to offer
    assert mark_no_show(early, env.staff)
    db.session.commit()
    assert [name for name, _id, _kw in heard] == ["status"]


def test_receivers_run_inside_the_move_under_its_lock(env: SimpleNamespace) -> None:
    """A receiver that refuses undoes the move: it runs in the move's transaction."""
    booking = create_booking(env.inst, env.sme, START, END, purpose="p")
    db.session.commit()
    booking_id = booking.id

    def refuse(_booking: Booking, **_kw: Any) -> None:
        raise RuleViolation("refused by a policy", rule="test")

    signals.time_freed.connect(refuse)
    try:
        with pytest.raises(RuleViolation):
            cancel_booking(booking, env.staff, "x")
    finally:
        signals.time_freed.disconnect(refuse)
    db.session.rollback()
    assert db.session.get(Booking, booking_id).status == BookingStatus.PENDING


def test_the_engine_refuses_to_book_before_the_policies_register(
    env: SimpleNamespace,
) -> None:
    """Booking without the quotas and the waitlist would be wrong: refuse instead."""
    saved = (hooks._registry.slot_policies, hooks._registry.together, hooks._registry.ready)
    hooks._registry.ready = False
    try:
        with pytest.raises(hooks.NotRegistered):
            create_booking(env.inst, env.sme, START, END, purpose="p")
        with pytest.raises(hooks.NotRegistered):
            booking_path.create(env.inst.id, env.sme, START, END, purpose="p")
    finally:
        hooks._registry.slot_policies, hooks._registry.together, hooks._registry.ready = saved
    db.session.rollback()
    assert db.session.query(Booking).count() == 0


def test_registering_again_registers_each_policy_once(env: SimpleNamespace) -> None:
    register()
    register()
    names = [p.name for p in hooks.slot_policies()]
    assert names == ["quotas", "waitlist", "no_shows"]
    assert len(list(signals.time_freed.receivers_for(object()))) == 1
