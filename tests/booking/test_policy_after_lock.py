"""PostgreSQL: the booking path reads the resource's policy in a statement of its
own, after the resource's row lock is granted. Under READ COMMITTED a statement
sees what was committed before it began: read in the locking statement itself,
the rules, qualification and booker state would be those from before the wait,
and the holiday calendar's token would be share-locked while waiting for the
resource (the holiday edit locks resources first, then the token: a deadlock).
Another connection holds the resource's lock, changes a row and commits while the
path waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text

from labshare.booking import path_reads
from labshare.extensions import db
from labshare.models import Instrument, Qualification, Role, User
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import END, NOW, START, bearer, error_of

pytestmark = pytest.mark.postgresql_only

LOCK = "SELECT id FROM resource WHERE id = :r FOR UPDATE"


def _wait_until_blocked() -> None:
    """Until a session of the test database waits for a lock."""
    engine = create_engine(db.engine.url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for _ in range(500):
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'"
                    )
                ).scalar()
                if waiting:
                    return
                time.sleep(0.01)
    finally:
        engine.dispose()
    raise AssertionError("nothing waited for a lock")


def _path_reads(app: Any, resource_id: int, user_id: int, out: dict[str, Any]) -> threading.Thread:
    """The path's lock and policy read in another thread (its own session)."""

    def run() -> None:
        with app.app_context():
            try:
                resource = path_reads.lock_and_load(resource_id)
                assert resource is not None
                out["policy"] = path_reads.load_policy(resource, user_id)
            except BaseException as exc:
                out["error"] = exc
            finally:
                db.session.rollback()
                db.session.remove()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def holder() -> Iterator[Connection]:
    """Another connection, in a transaction, for the test to hold locks with."""
    engine = create_engine(db.engine.url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _while_waiting(
    app: Any, holder: Connection, resource_id: int, user_id: int, change: Callable[[], None]
) -> dict[str, Any]:
    """Hold the resource's lock, start the path, run ``change`` while it waits,
    commit; what the path read."""
    out: dict[str, Any] = {}
    tx = holder.begin()
    holder.execute(text(LOCK), {"r": resource_id})
    thread = _path_reads(app, resource_id, user_id, out)
    try:
        _wait_until_blocked()
        change()
        tx.commit()
    finally:
        if tx.is_active:
            tx.rollback()
        thread.join(20)
    assert "error" not in out, out.get("error")
    return out


def test_a_qualification_revoked_while_waiting_is_seen(app: Any, holder: Connection) -> None:
    instrument = factories.make_instrument(requires_qualification=True)
    sme = factories.make_user(Role.SME)
    db.session.add(Qualification(user_id=sme.id, resource_id=instrument.id))
    db.session.commit()
    ids = {"r": instrument.id, "u": sme.id}
    db.session.remove()

    def revoke() -> None:
        holder.execute(
            text("DELETE FROM qualification WHERE resource_id = :r AND user_id = :u"), ids
        )

    out = _while_waiting(app, holder, ids["r"], ids["u"], revoke)
    assert out["policy"].qualified is False


def test_rules_changed_while_waiting_are_seen(app: Any, holder: Connection) -> None:
    instrument = factories.make_instrument(rules={"requires_approval": False})
    sme = factories.make_user(Role.SME)
    db.session.commit()
    rid, uid = instrument.id, sme.id
    db.session.remove()

    def approve_first() -> None:
        holder.execute(
            text("UPDATE booking_rules SET requires_approval = true WHERE resource_id = :r"),
            {"r": rid},
        )

    out = _while_waiting(app, holder, rid, uid, approve_first)
    assert out["policy"].rules.requires_approval is True


def test_a_waiting_booking_does_not_hold_the_calendar_token(app: Any, holder: Connection) -> None:
    """A holiday edit locks the resources, then writes the token: had the waiting
    booking share-locked the token, the two would deadlock."""
    instrument = factories.make_instrument()
    sme = factories.make_user(Role.SME)
    db.session.commit()
    rid, uid = instrument.id, sme.id
    db.session.remove()

    def write_the_token() -> None:
        holder.execute(text("SET LOCAL lock_timeout = '5s'"))
        holder.execute(text("UPDATE calendar_state SET token = md5(random()::text)"))

    _while_waiting(app, holder, rid, uid, write_the_token)


def test_a_booking_that_waited_for_a_revocation_is_refused(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the real revocation holds the instrument's lock while a
    ``POST /api/v1/bookings`` of that instrument waits for it."""
    from labshare.booking.policies import qualifications

    set_clock(lambda: NOW)
    instrument = factories.make_instrument(requires_qualification=True)
    sme = factories.make_user(Role.SME)
    db.session.add(Qualification(user_id=sme.id, resource_id=instrument.id))
    db.session.commit()
    rid, uid = instrument.id, sme.id
    headers = bearer(sme)
    db.session.remove()
    out: dict[str, Any] = {}
    started: list[threading.Thread] = []
    lock = qualifications._lock

    def post() -> None:
        body = {"resource_id": rid, "start": START, "end": END, "purpose": "p"}
        out["response"] = app.test_client().post("/api/v1/bookings", json=body, headers=headers)

    def lock_then_let_a_booking_wait(resource: Any) -> None:
        lock(resource)
        started.append(threading.Thread(target=post))
        started[0].start()
        _wait_until_blocked()

    monkeypatch.setattr(qualifications, "_lock", lock_then_let_a_booking_wait)
    monkeypatch.setattr(qualifications, "_authorize", lambda *a: None)
    with app.app_context():
        revoked = qualifications.revoke_qualification(
            None, db.session.get(User, uid), db.session.get(Instrument, rid)
        )
        assert revoked
        db.session.commit()
    started[0].join(20)
    assert out["response"].status_code == 422, out["response"].get_json()
    assert error_of(out["response"])["rule"] == "qualification"
