"""A real race of moves and creations into one slot: gunicorn with 2 workers in its
own process, clients released together by a barrier; half of them move their
company's booking (POST /api/v1/bookings/<id>/move) into the slot, half book it
(POST /api/v1/bookings).

Exactly one wins, the others get 409 ``conflict``, nobody gets a 5xx; no two
bookings that hold time overlap; every loser's booking is still where it was, so
nothing is lost — on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, select

from config import TestingConfig
from tests.serverutil import production_env, server_database, start_gunicorn

pytestmark = pytest.mark.slow

MOVERS = 10
BOOKERS = 10
ROUNDS = 3
SECRET_KEY = "move-race-secret-key-not-for-production"
RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "max_active_per_company": 50,
    "cancel_deadline_hours": 0,
    "requires_approval": False,
}
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def day(n: int) -> dt.date:
    return dt.date.today() + dt.timedelta(days=n)


def at(n: int, hour: int) -> dt.datetime:
    return dt.datetime.combine(day(n), dt.time(hour, 0), SHANGHAI)


@dataclass
class Scene:
    base: str
    url: str
    instrument: int
    tokens: list[str]  # movers first, then bookers
    bookings: dict[int, list[int]]  # round -> the movers' booking ids, in mover order


def build_database(url: str, instance_dir: Path) -> dict[str, Any]:
    import flask_migrate

    from labshare import create_app
    from labshare.accounts.tokens import issue_login_token
    from labshare.extensions import db
    from labshare.models import BookingStatus, Role
    from tests import factories

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(instance_dir))
    with app.app_context():
        flask_migrate.upgrade()
        institute = factories.make_institute(timezone="Asia/Shanghai")
        lab = factories.make_lab(institute=institute, rules=RULES)
        instrument = factories.make_instrument(lab=lab, rules=RULES)
        users = [factories.make_user(Role.SME) for _ in range(MOVERS + BOOKERS)]
        bookings: dict[int, list[int]] = {}
        for r in range(ROUNDS):
            ids = []
            for i in range(MOVERS):  # each mover's company holds 06:00+i on the round's day
                start = at(3 + r, 6 + i)
                b = factories.make_booking(
                    resource=instrument,
                    user=users[i],
                    start=start.astimezone(dt.UTC),
                    end=(start + dt.timedelta(hours=1)).astimezone(dt.UTC),
                    status=BookingStatus.APPROVED,
                )
                ids.append(b.id)
            bookings[r] = ids
        tokens = [issue_login_token(u, ttl_hours=2).secret for u in users]
        db.session.commit()
        out = {"instrument": instrument.id, "tokens": tokens, "bookings": bookings}
        db.engine.dispose()
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scene(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp(f"move-race-{request.param}")
    url = server_database(request.param, tmp, "move_race")
    ids = build_database(url, tmp / "instance")
    env = production_env(
        url,
        SECRET_KEY,
        RATELIMIT_ENABLED="false",
        LABSHARE_INSTANCE_DIR=str(tmp / "instance"),
    )
    server = start_gunicorn(env, tmp / "gunicorn.log")
    try:
        yield Scene(server.base, url, ids["instrument"], ids["tokens"], ids["bookings"])
    finally:
        server_log = server.stop()
        if request.param == "postgresql":
            create_engine(url).dispose()
    assert "Traceback" not in server_log, server_log[-4000:]


def holding(url: str, resource_id: int) -> dict[int, tuple[dt.datetime, dt.datetime]]:
    from labshare.models import HOLDING_STATUSES, Booking

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Booking.id, Booking.start_at, Booking.end_at).where(
                    Booking.resource_id == resource_id,
                    Booking.status.in_([s.value for s in HOLDING_STATUSES]),
                )
            ).all()
    finally:
        engine.dispose()

    def utc(value: dt.datetime) -> dt.datetime:
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    return {int(i): (utc(s), utc(e)) for i, s, e in rows}


def race(scene: Scene, r: int, start: dt.datetime, end: dt.datetime) -> list[tuple[str, int, Any]]:
    clients = MOVERS + BOOKERS
    barrier = threading.Barrier(clients)
    results: list[tuple[str, int, Any]] = [("", 0, None)] * clients
    body = {"start": start.isoformat(), "end": end.isoformat()}

    def client(i: int) -> None:
        with requests.Session() as http:
            headers = {"Authorization": f"Bearer {scene.tokens[i]}"}
            if i < MOVERS:
                kind = "move"
                url = f"{scene.base}/api/v1/bookings/{scene.bookings[r][i]}/move"
                payload: dict[str, Any] = body
            else:
                kind = "create"
                url = f"{scene.base}/api/v1/bookings"
                payload = {**body, "resource_id": scene.instrument, "purpose": "race"}
            barrier.wait(timeout=30)
            try:
                response = http.post(url, json=payload, headers=headers, timeout=60)
            except requests.RequestException as exc:
                results[i] = (kind, -1, repr(exc))
                return
            try:
                data = response.json()
            except ValueError:
                data = response.text[:300]
            results[i] = (kind, response.status_code, data)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    return results


def test_moves_and_creations_into_one_slot_never_overlap(scene: Scene) -> None:
    winners = Counter[str]()
    for r in range(ROUNDS):
        before = holding(scene.url, scene.instrument)
        start = at(3 + r, 20)  # every mover's own time is elsewhere that day
        end = start + dt.timedelta(hours=1)
        results = race(scene, r, start, end)
        assert not [x for x in results if x[1] >= 500 or x[1] < 0], results
        codes = Counter(status for _, status, _ in results)
        assert codes[200] + codes[201] == 1, codes
        assert codes[409] == MOVERS + BOOKERS - 1, codes
        for _, status, data in results:
            if status == 409:
                assert data["error"]["code"] == "conflict", data
        [(kind, _, won)] = [x for x in results if x[1] in (200, 201)]
        winners[kind] += 1
        after = holding(scene.url, scene.instrument)
        # nothing lost: every mover's booking still holds time, where it was unless it won
        for booking_id in scene.bookings[r]:
            assert booking_id in after
            if booking_id != won["id"]:
                assert after[booking_id] == before[booking_id]
        assert after[won["id"]] == (start.astimezone(dt.UTC), end.astimezone(dt.UTC))
        assert len(after) == len(before) + (1 if kind == "create" else 0)
        spans = sorted(after.values())
        for (s1, e1), (s2, e2) in itertools.pairwise(spans):
            assert e1 <= s2, (s1, e1, s2, e2)
    assert sum(winners.values()) == ROUNDS
