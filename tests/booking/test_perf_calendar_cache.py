"""The availability endpoint's cache (services/calendar_cache.py): a cached calendar
is never served after a change that affects it, whichever process made the change.

Every test warms the cache of the test app, changes something through a second
app instance on the same database (as another gunicorn worker would), and asks
the first app again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from config import TestingConfig
from labshare import create_app
from labshare.booking.bookings import cancel_booking, create_booking
from labshare.extensions import db as _db
from labshare.models import (
    Booking,
    BookingStatus,
    Closure,
    Institute,
    Instrument,
    Lab,
    OpeningPeriod,
    ResourceStatus,
    Role,
    User,
)
from labshare.timeutil import set_clock
from tests.factories import weekday_hours
from tests.helpers import listening

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 600,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "requires_approval": False,
    "max_active_per_company": 100,
    "cancel_deadline_hours": 0,
}
MONDAY = dt.datetime(2030, 1, 7, tzinfo=SH)  # a Monday
WEEK = {"from": MONDAY.isoformat(), "to": (MONDAY + dt.timedelta(days=7)).isoformat()}


def at(h: int, day: int = 0) -> dt.datetime:
    return (MONDAY + dt.timedelta(days=day, hours=h)).astimezone(dt.UTC)


pytestmark = pytest.mark.usefixtures("cheap_passwords")


@pytest.fixture(autouse=True, params=["fast path", "flask"])
def _path(request: pytest.FixtureRequest, app: Flask) -> Iterator[None]:
    """Every test twice: requests answered by the fast path (labshare/fastpath.py),
    and by Flask's handler alone."""
    fast = app.extensions["labshare_fastpath"]
    fast.enabled = request.param == "fast path"
    try:
        yield
    finally:
        fast.enabled = True


@pytest.fixture(scope="module")
def other_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """A second app instance on the same database: another worker process."""
    other = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=database_url,
        INSTANCE_DIR=str(tmp_path_factory.mktemp("other")),
    )
    yield other
    with other.app_context():
        _db.engine.dispose()


@pytest.fixture
def elsewhere(other_app: Flask) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """``with elsewhere(): ...`` runs in the other app and commits."""

    @contextlib.contextmanager
    def run() -> Iterator[None]:
        with other_app.app_context():
            try:
                yield
                _db.session.commit()
            finally:
                _db.session.remove()

    return run


@pytest.fixture
def env(db: Any, make_lab: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    lab = make_lab(hours=weekday_hours("08:00", "18:00"), capacity=1, rules=dict(RULES))
    inst = make_instrument(lab=lab, rules=dict(RULES), calibration_valid_until=dt.date(2099, 1, 1))
    user = make_user(Role.SME)
    staff = make_user(Role.STAFF, institute=lab.institute)
    db.session.commit()
    return SimpleNamespace(lab_id=lab.id, inst_id=inst.id, user_id=user.id, staff_id=staff.id)


def get(client: FlaskClient, url: str, **kw: Any) -> Any:
    """The test client reuses the fixture's app context, so the session (and on
    SQLite its read snapshot) would outlive the request; in a server each request
    has its own. End it after the request, as the server does."""
    response = client.get(url, **kw)
    _db.session.rollback()
    return response


def calendar(client: FlaskClient, rid: int) -> dict[str, Any]:
    r = get(client, f"/api/v1/resources/{rid}/availability", query_string=WEEK)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    body["etag"] = r.headers["ETag"]
    return body


def busy(body: dict[str, Any], reason: str) -> list[tuple[str, str]]:
    return [(b["start"], b["end"]) for b in body["busy"] if b["reason"] == reason]


def local(h: int, day: int = 0) -> str:
    return (MONDAY + dt.timedelta(days=day, hours=h)).isoformat()


@contextlib.contextmanager
def count_selects(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []

    def listener(*args: Any) -> None:
        if args[2].lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append(args[2])

    with listening(listener):
        yield seen


# -- the cache is used --------------------------------------------------------------


def test_a_repeated_request_costs_one_query_and_gives_the_same_body(
    app: Flask, client: FlaskClient, env: SimpleNamespace
) -> None:
    first = get(client, f"/api/v1/resources/{env.inst_id}/availability", query_string=WEEK)
    with count_selects(app) as seen:
        again = get(client, f"/api/v1/resources/{env.inst_id}/availability", query_string=WEEK)
    assert again.get_data() == first.get_data()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert len(seen) == 1, seen


def test_etag_answers_304_until_the_calendar_changes(
    client: FlaskClient, env: SimpleNamespace, elsewhere: Any
) -> None:
    url = f"/api/v1/resources/{env.inst_id}/availability"
    etag = get(client, url, query_string=WEEK).headers["ETag"]
    not_modified = get(client, url, query_string=WEEK, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.get_data() == b""
    assert not_modified.headers["ETag"] == etag
    other_window = get(
        client,
        url,
        query_string={"from": WEEK["from"], "to": local(0, 3)},
        headers={"If-None-Match": etag},
    )
    assert other_window.status_code == 200

    with elsewhere():
        _db.session.add(Closure(resource_id=env.inst_id, start_at=at(9), end_at=at(10)))
    changed = get(client, url, query_string=WEEK, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert (local(9), local(10)) in busy(changed.get_json(), "closure")


def test_errors_are_not_cached(client: FlaskClient, env: SimpleNamespace) -> None:
    url = "/api/v1/resources/{}/availability"
    assert get(client, url.format(999_999), query_string=WEEK).status_code == 404
    naive = {"from": "2030-01-07T00:00:00", "to": WEEK["to"]}
    r = get(client, url.format(env.inst_id), query_string=naive)
    assert r.status_code == 422
    assert r.get_json()["error"]["field"] == "from"
    too_long = {"from": WEEK["from"], "to": local(0, 40)}
    assert get(client, url.format(env.inst_id), query_string=too_long).status_code == 422


# -- every kind of change is seen at once, from another process -----------------------


def test_booking_created_and_cancelled_elsewhere(
    client: FlaskClient, env: SimpleNamespace, elsewhere: Any
) -> None:
    assert busy(calendar(client, env.inst_id), "booked") == []
    with elsewhere():
        set_clock(lambda: NOW)
        resource = _db.session.get(Instrument, env.inst_id)
        booker = _db.session.get(User, env.user_id)
        assert resource is not None and booker is not None
        booking = create_booking(resource, booker, at(9), at(11), purpose="calibration")
        booking_id = booking.id
    assert busy(calendar(client, env.inst_id), "booked") == [(local(9), local(11))]
    with elsewhere():
        set_clock(lambda: NOW)
        found = _db.session.get(Booking, booking_id)
        staff = _db.session.get(User, env.staff_id)
        assert found is not None and staff is not None
        cancel_booking(found, staff, "no longer needed")
    assert busy(calendar(client, env.inst_id), "booked") == []


def test_booking_status_changed_by_sql_elsewhere(
    client: FlaskClient, env: SimpleNamespace, elsewhere: Any, make_booking: Any, db: Any
) -> None:
    """Not only the services: any UPDATE of a booking's status or times counts."""
    inst = db.session.get(Instrument, env.inst_id)
    booking = make_booking(resource=inst, start=at(9), end=at(10), status=BookingStatus.APPROVED)
    db.session.commit()
    booking_id = booking.id
    assert busy(calendar(client, env.inst_id), "booked") == [(local(9), local(10))]
    with elsewhere():
        _db.session.execute(
            Booking.__table__.update()
            .where(Booking.__table__.c.id == booking_id)
            .values(start_at=at(13), end_at=at(15))
        )
    assert busy(calendar(client, env.inst_id), "booked") == [(local(13), local(15))]
    with elsewhere():
        _db.session.execute(
            Booking.__table__.update()
            .where(Booking.__table__.c.id == booking_id)
            .values(status=BookingStatus.REJECTED)
        )
    assert busy(calendar(client, env.inst_id), "booked") == []


def test_lab_closure_added_changed_and_removed_elsewhere(
    client: FlaskClient, env: SimpleNamespace, elsewhere: Any
) -> None:
    assert busy(calendar(client, env.inst_id), "closure") == []
    assert busy(calendar(client, env.lab_id), "closure") == []
    with elsewhere():
        closure = Closure(resource_id=env.lab_id, start_at=at(8, day=1), end_at=at(18, day=1))
        _db.session.add(closure)
        _db.session.flush()
        closure_id = closure.id
    expected = [(local(8, 1), local(18, 1))]
    assert busy(calendar(client, env.inst_id), "closure") == expected
    assert busy(calendar(client, env.lab_id), "closure") == expected
    with elsewhere():
        found = _db.session.get(Closure, closure_id)
        assert found is not None
        found.end_at = at(12, day=1)
    assert busy(calendar(client, env.inst_id), "closure") == [(local(8, 1), local(12, 1))]
    with elsewhere():
        found = _db.session.get(Closure, closure_id)
        _db.session.delete(found)
    assert busy(calendar(client, env.inst_id), "closure") == []


def test_opening_hours_changed_elsewhere(
    client: FlaskClient, env: SimpleNamespace, elsewhere: Any
) -> None:
    before = calendar(client, env.inst_id)
    assert (local(0), local(8)) in busy(before, "closed")
    with elsewhere():
        monday = _db.session.scalars(
            select(OpeningPeriod).where(
                OpeningPeriod.lab_id == env.lab_id, OpeningPeriod.weekday == 0
            )
        ).one()
        monday.opens = dt.time(10, 0)
    after = calendar(client, env.inst_id)
    assert (local(0), local(10)) in busy(after, "closed")
    with elsewhere():
        lab = _db.session.get(Lab, env.lab_id)
        assert lab is not None
        lab.opening_periods.append(OpeningPeriod(weekday=0, opens=dt.time(19), closes=dt.time(20)))
    assert (local(19), local(20)) in [
        (f["start"], f["end"]) for f in calendar(client, env.inst_id)["free"]
    ]
    with elsewhere():
        lab = _db.session.get(Lab, env.lab_id)
        assert lab is not None
        lab.opening_periods.clear()
    assert busy(calendar(client, env.inst_id), "closed") == [(local(0), local(0, 7))]


def test_status_and_calibration_changed_elsewhere(
    client: FlaskClient, env: SimpleNamespace, elsewhere: Any
) -> None:
    assert busy(calendar(client, env.inst_id), "calibration_expired") == []
    with elsewhere():
        inst = _db.session.get(Instrument, env.inst_id)
        assert inst is not None
        inst.calibration_valid_until = dt.date(2030, 1, 9)  # Wednesday
    assert busy(calendar(client, env.inst_id), "calibration_expired") == [
        (local(0, 3), local(0, 7))
    ]
    with elsewhere():
        inst = _db.session.get(Instrument, env.inst_id)
        assert inst is not None
        inst.status = ResourceStatus.MAINTENANCE
    body = calendar(client, env.inst_id)
    assert busy(body, "unavailable") == [(local(0), local(0, 7))]
    assert body["free"] == []


def test_lab_capacity_changed_elsewhere(
    client: FlaskClient, env: SimpleNamespace, elsewhere: Any, make_booking: Any, db: Any
) -> None:
    lab = db.session.get(Lab, env.lab_id)
    make_booking(resource=lab, start=at(9), end=at(10), status=BookingStatus.APPROVED)
    db.session.commit()
    assert busy(calendar(client, env.lab_id), "booked") == [(local(9), local(10))]
    with elsewhere():
        found = _db.session.get(Lab, env.lab_id)
        assert found is not None
        found.capacity = 2
    assert busy(calendar(client, env.lab_id), "booked") == []


def test_institute_time_zone_changed_elsewhere(
    client: FlaskClient, env: SimpleNamespace, elsewhere: Any
) -> None:
    assert calendar(client, env.inst_id)["timezone"] == "Asia/Shanghai"
    with elsewhere():
        inst = _db.session.get(Instrument, env.inst_id)
        assert inst is not None
        institute = _db.session.get(Institute, inst.institute_id)
        assert institute is not None
        institute.timezone = "Europe/Berlin"
    assert calendar(client, env.inst_id)["timezone"] == "Europe/Berlin"


def test_a_refilled_database_never_hits_an_old_entry(
    app: Flask, client: FlaskClient, env: SimpleNamespace, elsewhere: Any
) -> None:
    """Versions are random, not counters: the same id with the same history in a
    new row gets a different version."""
    before = calendar(client, env.inst_id)
    with elsewhere():
        inst = _db.session.get(Instrument, env.inst_id)
        assert inst is not None
        inst.status = ResourceStatus.MAINTENANCE
    with elsewhere():
        inst = _db.session.get(Instrument, env.inst_id)
        assert inst is not None
        inst.status = ResourceStatus.AVAILABLE
    after = calendar(client, env.inst_id)
    assert after["etag"] != before["etag"]
    assert after["free"] == before["free"]


def test_the_migrations_built_the_triggers(app: Flask) -> None:
    engine = _db.engine
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            names = set(
                conn.exec_driver_sql(
                    "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'calendar_%%'"
                ).scalars()
            )
            assert {"calendar_booking", "calendar_closure", "calendar_opening_period"} <= names
        else:
            names = set(
                conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                ).scalars()
            )
            assert {"calendar_booking_ins", "calendar_closure_del"} <= names
