"""The calendar fast path under gunicorn: two servers on one database, one with
``CALENDAR_FAST_PATH`` on and one with it off, in the production configuration
(rate limits on). Every request gets the same status, headers and body from
both, byte for byte on the wire, but for ``Date`` and a generated
``X-Request-Id``; and a change written by another process is seen by both at
their next request. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from config import TestingConfig
from tests.serverutil import (
    Answer,
    Server,
    fetch,
    production_env,
    server_database,
    start_gunicorn,
)

pytestmark = pytest.mark.slow

SH = ZoneInfo("Asia/Shanghai")
MONDAY = dt.datetime.combine(
    dt.date.today() + dt.timedelta(days=14 - dt.date.today().weekday()), dt.time(), SH
)
WEEK = {"from": MONDAY.isoformat(), "to": (MONDAY + dt.timedelta(days=7)).isoformat()}
GENERATED_ID = re.compile(r"[0-9a-f]{12}")


@dataclass
class Pair:
    url: str
    fast: Server
    flask: Server
    instrument: int
    lab: int


def build(url: str, instance: Path) -> tuple[int, int]:
    import flask_migrate

    from labshare import create_app
    from labshare.extensions import db
    from tests import factories

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(instance))
    with app.app_context():
        flask_migrate.upgrade()
        lab = factories.make_lab(capacity=2, hours=factories.weekday_hours("08:00", "18:00"))
        inst = factories.make_instrument(lab=lab)
        db.session.commit()
        ids = (inst.id, lab.id)
        db.engine.dispose()
    return ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp(f"fastpath-{request.param}")
    url = server_database(request.param, tmp, "fastpath")
    instrument, lab = build(url, tmp / "instance")
    env = production_env(
        url,
        "fastpath-test-secret-key-of-at-least-32-characters",
        LABSHARE_INSTANCE_DIR=str(tmp / "instance"),
    )
    fast = start_gunicorn({**env, "CALENDAR_FAST_PATH": "true"}, tmp / "fast.log", wait=False)
    flask = start_gunicorn({**env, "CALENDAR_FAST_PATH": "false"}, tmp / "flask.log", wait=False)
    try:
        fast.wait()
        flask.wait()
        yield Pair(url, fast, flask, instrument, lab)
    finally:
        logs = fast.stop() + flask.stop()
        if request.param == "postgresql":
            create_engine(url).dispose()
    assert "Traceback" not in logs, logs[-4000:]


def compare(pair: Pair, method: str, path: str, headers: dict[str, str] | None = None) -> Answer:
    fast = fetch(pair.fast.base, method, path, headers)
    flask = fetch(pair.flask.base, method, path, headers)
    assert fast.status == flask.status, path
    assert fast.body == flask.body, path

    def comparable(answer: Answer) -> list[tuple[str, str]]:
        return [(k, v) for k, v in answer.headers if k.lower() not in ("date", "x-request-id")]

    assert comparable(fast) == comparable(flask), path  # the same headers, in the same order
    sent = (headers or {}).get("X-Request-Id")
    for answer in (fast, flask):
        if sent:
            assert answer.header("X-Request-Id") == sent
        else:
            assert GENERATED_ID.fullmatch(answer.header("X-Request-Id"))
    return fast


def availability(rid: int, query: dict[str, str] | str = WEEK) -> str:
    qs = query if isinstance(query, str) else urllib.parse.urlencode(query)
    return f"/api/v1/resources/{rid}/availability?{qs}"


def test_the_same_answers_on_the_wire(pair: Pair) -> None:
    for rid in (pair.instrument, pair.lab):
        first = compare(pair, "GET", availability(rid))  # a miss in each server
        assert first.status == 200
        assert compare(pair, "GET", availability(rid)).body == first.body  # a hit
        etag = first.header("ETag")
        assert compare(pair, "GET", availability(rid), {"If-None-Match": etag}).status == 304
        assert compare(pair, "GET", availability(rid), {"X-Request-Id": "trace-1"}).status == 200
    assert compare(pair, "HEAD", availability(pair.instrument)).status == 200
    assert compare(pair, "GET", availability(999_999)).status == 404
    naive = {"from": "2030-01-07T00:00:00", "to": WEEK["to"]}
    refused = compare(pair, "GET", availability(pair.instrument, naive), {"Accept-Language": "zh"})
    assert refused.status == 422


def test_a_change_from_another_process_is_seen_by_both(pair: Pair) -> None:
    path = availability(pair.instrument)
    before = compare(pair, "GET", path)
    engine = create_engine(pair.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE resource SET status = 'maintenance' WHERE id = :id"),
                {"id": pair.instrument},
            )
        after = compare(pair, "GET", path, {"If-None-Match": before.header("ETag")})
        assert after.status == 200
        body: dict[str, Any] = json.loads(after.body)
        assert [b["reason"] for b in body["busy"]] == ["unavailable"]
        assert body["free"] == []
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE resource SET status = 'available' WHERE id = :id"),
                {"id": pair.instrument},
            )
    finally:
        engine.dispose()
    again = compare(pair, "GET", path)
    assert again.body == before.body


def test_a_booking_committed_elsewhere_is_in_every_next_answer(pair: Pair, tmp_path: Path) -> None:
    """Requests at once make each worker keep several calendar connections (on
    PostgreSQL): whichever of them, and whichever worker and path, answers next,
    the booking another process has committed is there."""
    from concurrent.futures import ThreadPoolExecutor

    from labshare import create_app
    from labshare.database import begin_write
    from labshare.extensions import db
    from labshare.models import Booking, BookingStatus, Instrument
    from tests import factories

    path = availability(pair.instrument)
    servers = (pair.fast.base, pair.flask.base)

    def burst() -> list[Answer]:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda i: fetch(servers[i % 2], "GET", path), range(48)))

    assert {a.status for a in burst()} == {200}
    start = (MONDAY + dt.timedelta(days=1, hours=9)).astimezone(dt.UTC)
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=pair.url, INSTANCE_DIR=str(tmp_path))
    with app.app_context():
        # Written as the servers write (SQLite): queued on the writers' lock, with BEGIN
        # IMMEDIATE before the first read. A transaction that has read cannot wait for
        # SQLite's write lock when it comes to write: "database is locked" at once,
        # whenever a server holds it, as a worker still warming up does for a moment
        # (labshare/warmup.py), which may be after the fixture saw its server answer.
        begin_write()
        resource = db.session.get(Instrument, pair.instrument)
        booking = factories.make_booking(
            resource=resource,
            start=start,
            end=start + dt.timedelta(hours=2),
            status=BookingStatus.APPROVED,
        )
        booking_id = booking.id  # read after the commit, it would begin a read transaction
        db.session.commit()
        try:
            expected = [
                (
                    (MONDAY + dt.timedelta(days=1, hours=9)).isoformat(),
                    (MONDAY + dt.timedelta(days=1, hours=11)).isoformat(),
                )
            ]
            for answer in burst():
                assert answer.status == 200
                body: dict[str, Any] = json.loads(answer.body)
                booked = [(b["start"], b["end"]) for b in body["busy"] if b["reason"] == "booked"]
                assert booked == expected
        finally:
            begin_write()
            db.session.execute(
                Booking.__table__.delete().where(Booking.__table__.c.id == booking_id)
            )
            db.session.commit()
            db.engine.dispose()
