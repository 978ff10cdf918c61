"""Moving a booking, reviewed: what a move must survive besides the rules (repeated
moves, a receiver failing, the freed span when the new one overlaps it, bad bodies,
other offsets)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select, update

from labshare.booking import signals
from labshare.booking.policies import waitlist
from labshare.errors import RuleViolation
from labshare.jobs.reminders import send_reminders
from labshare.models import AuditLog, Booking, Notification, WaitlistEntry, WaitlistStatus
from labshare.timeutil import set_clock
from tests.booking.move_support import (
    OLD_START,
    UTC,
    book,
    local,
    make_env,
    post_move,
    times,
)
from tests.helpers import bearer, error_of

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def env(db: Any) -> SimpleNamespace:
    return make_env()


def test_many_moves_keep_the_reminder_keys_short(
    app: Any, client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    """Each move renames the reminders already queued, once: a key renamed by an
    earlier move is not renamed again (it grew with every move, past its column)."""
    app.config["REMINDER_HOURS"] = [24]
    b = book(env, make_booking, db, start=OLD_START + dt.timedelta(days=10))
    start = OLD_START + dt.timedelta(days=10)
    for _n in range(30):
        set_clock(lambda s=start: s - dt.timedelta(hours=23))
        assert send_reminders()["sent"] == 1
        db.session.commit()
        start = start + dt.timedelta(days=2)
        response = post_move(client, env.staff, b.id, start.isoformat(), (start + HOUR).isoformat())
        assert response.status_code == 200, response.get_json()
    keys = db.session.scalars(
        select(Notification.dedupe_key).where(Notification.booking_id == b.id)
    ).all()
    assert max(len(k) for k in keys) <= 60, max(keys, key=len)
    assert len(set(keys)) == len(keys)


@pytest.fixture
def failing_receiver() -> Iterator[None]:
    def refuse(sender: Any, **kw: Any) -> None:
        raise RuleViolation("refused by a receiver", rule="receiver")

    signals.time_freed.connect(refuse)
    try:
        yield
    finally:
        signals.time_freed.disconnect(refuse)


def test_a_receiver_failing_mid_move_leaves_everything_as_it_was(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any, failing_receiver: None
) -> None:
    b = book(env, make_booking, db)
    before = db.session.scalar(select(func.count(Notification.id)))
    response = post_move(client, env.sme, b.id, local(4, 14), local(4, 15))
    assert response.status_code == 422
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + HOUR)
    assert db.session.scalar(select(func.count(Notification.id))) == before
    moves = db.session.scalar(
        select(func.count(AuditLog.id)).where(AuditLog.action == "booking.move")
    )
    assert moves == 0


def test_web_move_with_a_failing_receiver_changes_nothing(
    client: Any,
    login: Any,
    env: SimpleNamespace,
    db: Any,
    make_booking: Any,
    failing_receiver: None,
) -> None:
    b = book(env, make_booking, db)
    login(env.sme)
    response = client.post(
        f"/bookings/{b.id}/move",
        data={"start": "2030-01-04T14:00", "end": "2030-01-04T15:00"},
    )
    assert response.status_code in (400, 422), response.status_code
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + HOUR)


def test_overlapping_move_offers_only_what_it_freed(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    """10:00-11:00 moved to 10:30-11:30: 10:00-10:30 is free, 10:30-11:00 is not."""
    b = book(env, make_booking, db)
    still_held = waitlist.join(
        env.inst,
        env.other_sme,
        OLD_START + dt.timedelta(minutes=30),
        OLD_START + HOUR,
        purpose="等候",
    )
    freed = waitlist.join(
        env.inst, env.other_sme, OLD_START, OLD_START + dt.timedelta(minutes=30), purpose="等候"
    )
    db.session.commit()
    response = post_move(client, env.sme, b.id, local(3, 10, 30), local(3, 11, 30))
    assert response.status_code == 200, response.get_json()
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, still_held.id).status == WaitlistStatus.WAITING
    assert db.session.get(WaitlistEntry, freed.id).status == WaitlistStatus.OFFERED


def test_another_offset_is_the_same_instant(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    # 14:00 in Shanghai is 06:00Z and 01:00 at -05:00
    response = post_move(client, env.sme, b.id, "2030-01-04T01:00:00-05:00", "2030-01-04T06:00Z")
    assert response.status_code == 422  # end before start once both are instants
    response = post_move(
        client, env.sme, b.id, "2030-01-04T01:00:00-05:00", "2030-01-04T02:00:00-05:00"
    )
    assert response.status_code == 200, response.get_json()
    assert times(db, b.id)[:2] == (
        dt.datetime(2030, 1, 4, 6, tzinfo=UTC),
        dt.datetime(2030, 1, 4, 7, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("start", "end", "status", "field"),
    [
        ("2030-01-04T14:00:00\u0000+08:00", local(4, 15), 422, "start"),
        ("2030-01-04\u0000T14:00:00+08:00", local(4, 15), 422, "start"),
        ("99999-01-04T14:00:00+08:00", local(4, 15), 422, "start"),
        ("0001-01-01T00:00:00+14:00", local(4, 15), 422, "start"),
        (local(4, 14), "9999-12-31T23:59:59-14:00", 422, "end"),
        ("9" * 5000, local(4, 15), 422, "start"),
        (local(4, 14), "", 422, "end"),
        (1893978000, local(4, 15), 400, "start"),  # a wrong JSON type (API.md: 400)
        (local(4, 14), ["x"], 400, "end"),
    ],
)
def test_garbage_times_are_refused_naming_the_field(
    client: Any,
    env: SimpleNamespace,
    db: Any,
    make_booking: Any,
    start: Any,
    end: Any,
    status: int,
    field: str,
) -> None:
    b = book(env, make_booking, db)
    response = post_move(client, env.sme, b.id, start, end)
    assert response.status_code == status, response.get_json()
    assert error_of(response)["field"] == field
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + HOUR)


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"{", b"null", b"1"])
def test_a_body_that_is_not_an_object_is_400(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any, body: bytes
) -> None:
    b = book(env, make_booking, db)
    response = client.post(
        f"/api/v1/bookings/{b.id}/move",
        data=body,
        headers={**bearer(env.sme), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.get_json()
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + HOUR)


@pytest.mark.parametrize("start", ["0001-01-01T00:00", "9999-12-31T23:30"])
def test_web_move_to_the_ends_of_the_calendar_is_refused_naming_the_field(
    client: Any, login: Any, env: SimpleNamespace, db: Any, make_booking: Any, start: str
) -> None:
    b = book(env, make_booking, db)
    login(env.sme)
    response = client.post(
        f"/bookings/{b.id}/move", data={"start": start, "end": "2030-01-04T15:00"}
    )
    assert response.status_code == 422, response.status_code
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + HOUR)


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00+14:00", "2030-01-04T14:00:00\u0000+08:00"])
def test_creation_shares_the_time_parser_and_refuses_the_same(
    client: Any, env: SimpleNamespace, db: Any, start: str
) -> None:
    response = client.post(
        "/api/v1/bookings",
        json={"resource_id": env.inst.id, "start": start, "end": local(4, 15), "purpose": "x"},
        headers=bearer(env.sme),
    )
    assert response.status_code == 422, response.get_json()
    assert error_of(response)["field"] == "start"


@pytest.mark.postgresql_only  # SQLite: the job and a move are single writers (BEGIN IMMEDIATE)
def test_reminder_job_leaves_a_booking_being_moved_to_the_move(
    app: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    """PostgreSQL: the job reads without the write lock a move holds. A booking whose
    move is under way (its row locked, its new time not yet committed) is left for
    the next run: claimed now, its reminder marker would block the new time's."""
    app.config["REMINDER_HOURS"] = [24]
    b = book(env, make_booking, db)
    new_start = OLD_START + dt.timedelta(days=3)
    set_clock(lambda: OLD_START - dt.timedelta(hours=23))  # the old time's reminder is due
    with db.engine.connect() as mover:  # a move in another transaction, not committed yet
        mover.execute(select(Booking.id).where(Booking.id == b.id).with_for_update())
        mover.execute(
            update(Booking)
            .where(Booking.id == b.id)
            .values(start_at=new_start, end_at=new_start + HOUR)
        )
        assert send_reminders()["sent"] == 0
        db.session.commit()
        mover.commit()
    set_clock(lambda: new_start - dt.timedelta(hours=23))
    assert send_reminders()["sent"] == 1
    db.session.commit()


def test_a_move_and_a_cancel_of_one_booking_race_cleanly(app: Any, db: Any) -> None:
    """Both take the resource's lock, then the booking's: one order, no deadlock.
    Either the move wins and the cancel cancels the moved booking, or the cancel
    wins and the move is refused (409 invalid_state); the waitlist is offered the
    time that is really free."""
    from labshare.booking.bookings import cancel_booking
    from labshare.booking.move import move_booking
    from labshare.errors import InvalidTransition
    from labshare.extensions import db as _db
    from labshare.models import BookingStatus, Role, User
    from tests import factories, raceutil

    start = OLD_START
    rules = {
        "slot_minutes": 30,
        "min_minutes": 30,
        "max_minutes": 480,
        "lead_time_hours": 0,
        "horizon_days": 365,
        "requires_approval": False,
        "max_active_per_company": 50,
        "cancel_deadline_hours": 0,
    }
    new_start = start + 2 * HOUR
    for round_ in range(3):
        set_clock(lambda: dt.datetime(2030, 1, 1, tzinfo=UTC))
        inst = factories.make_instrument(rules=rules)
        sme = factories.make_user(Role.SME)
        booking = factories.make_booking(
            resource=inst, user=sme, start=start, end=start + HOUR, status=BookingStatus.APPROVED
        )
        _db.session.commit()
        ids = (booking.id, sme.id)
        _db.session.remove()

        def mover(ids: tuple[int, int] = ids) -> Any:
            set_clock(lambda: dt.datetime(2030, 1, 1, tzinfo=UTC))
            b, u = _db.session.get(Booking, ids[0]), _db.session.get(User, ids[1])
            return lambda: move_booking(b, u, new_start, new_start + HOUR)

        def canceller(ids: tuple[int, int] = ids) -> Any:
            set_clock(lambda: dt.datetime(2030, 1, 1, tzinfo=UTC))
            b, u = _db.session.get(Booking, ids[0]), _db.session.get(User, ids[1])
            return lambda: cancel_booking(b, u, "race")

        steps = [mover, canceller] if round_ % 2 == 0 else [canceller, mover]
        outcomes = raceutil.race(app, steps)
        got = raceutil.labels(outcomes, "ok", {InvalidTransition: "refused"})
        assert not [g for g in got if g.startswith("error")], got
        _db.session.expire_all()
        final = _db.session.get(Booking, ids[0])
        assert final.status == BookingStatus.CANCELLED
        if sorted(got) == ["ok", "ok"]:  # moved, then cancelled at its new time
            assert final.start_at == new_start
        else:
            assert sorted(got) == ["ok", "refused"], got
            assert final.start_at == start
        _db.session.remove()


@pytest.mark.parametrize("start", ["9999-12-31T23:30", "0001-01-01T00:00", "2030-01-04T25:00"])
def test_move_page_with_a_start_at_the_calendars_ends_still_shows(
    client: Any, login: Any, env: SimpleNamespace, db: Any, make_booking: Any, start: str
) -> None:
    """The grid's link carries the chosen start; the end follows with the booking's
    length, which must not run past the calendar (a 500)."""
    b = book(env, make_booking, db)
    login(env.sme)
    response = client.get(f"/bookings/{b.id}/move?start={start}")
    assert response.status_code == 200, response.status_code
