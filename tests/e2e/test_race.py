"""A real race: gunicorn with 2 workers in its own process, 50 clients released
together by a barrier, all booking the same slot through POST /api/v1/bookings.

Exactly one wins (201), the other 49 get 409 ``conflict``, nobody gets a 5xx, and
the database holds exactly one time-holding booking — on SQLite and on PostgreSQL,
for an auto-approved and an approval-required instrument. A lab of capacity 3
takes exactly three.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, func, select

from config import TestingConfig
from tests.serverutil import production_env, server_database, start_gunicorn

pytestmark = pytest.mark.slow

CLIENTS = 50
PASSWORD = "race-password-123"
SECRET_KEY = "race-test-secret-key-not-for-production"
RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "max_active_per_company": 5,
    "cancel_deadline_hours": 0,
}


@dataclass
class Scene:
    base: str
    url: str
    auto_instrument: int
    approval_instrument: int
    lab: int
    emails: list[str]
    tokens: list[str]


def build_database(url: str, instance_dir: Path) -> dict[str, Any]:
    """Migrate ``url`` and write the institute, the resources and 50 SME users."""
    import flask_migrate
    from werkzeug.security import generate_password_hash

    from labshare import create_app
    from labshare.accounts.tokens import issue_login_token
    from labshare.extensions import db
    from labshare.models import Role, User
    from tests import factories

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(instance_dir))
    with app.app_context():
        flask_migrate.upgrade()
        if not any(
            rule.rule == "/api/v1/bookings" and "POST" in (rule.methods or ())
            for rule in app.url_map.iter_rules()
        ):
            db.engine.dispose()
            pytest.skip("POST /api/v1/bookings is not implemented yet")
        institute = factories.make_institute(timezone="Asia/Shanghai")
        lab = factories.make_lab(institute=institute, rules={**RULES, "requires_approval": True})
        auto = factories.make_instrument(lab=lab, rules={**RULES, "requires_approval": False})
        approval = factories.make_instrument(lab=lab, rules={**RULES, "requires_approval": True})
        shared_lab = factories.make_lab(
            institute=institute, capacity=3, rules={**RULES, "requires_approval": False}
        )
        password_hash = generate_password_hash(PASSWORD, method="scrypt")  # once, not 50 times
        emails, tokens = [], []
        for i in range(CLIENTS):
            company = factories.make_company()
            user = User(
                email=f"racer{i}@example.com",
                name=f"Racer {i}",
                role=Role.SME,
                company=company,
                locale="en",
                password_hash=password_hash,
            )
            db.session.add(user)
            db.session.flush()
            emails.append(user.email)
            # Issued directly (one scrypt check per client would cost seconds);
            # the first client signs in through POST /auth/token instead.
            tokens.append(issue_login_token(user, ttl_hours=2).secret if i else "")
        db.session.commit()
        ids = {
            "auto": auto.id,
            "approval": approval.id,
            "lab": shared_lab.id,
            "emails": emails,
            "tokens": tokens,
        }
        db.engine.dispose()
    return ids


def get_token(base: str, email: str) -> str:
    response = requests.post(
        f"{base}/api/v1/auth/token", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scene(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp(f"race-{request.param}")
    # PostgreSQL: a database of its own next to the test database (labshare_test_race
    # by default), so that parallel suites with their own TEST_POSTGRES_URL never share it
    url = server_database(request.param, tmp, "race")
    ids = build_database(url, tmp / "instance")
    env = production_env(
        url,
        SECRET_KEY,
        RATELIMIT_ENABLED="false",
        LABSHARE_INSTANCE_DIR=str(tmp / "instance"),
    )
    server = start_gunicorn(env, tmp / "gunicorn.log")
    try:
        tokens = [get_token(server.base, ids["emails"][0]), *ids["tokens"][1:]]
        yield Scene(
            server.base, url, ids["auto"], ids["approval"], ids["lab"], ids["emails"], tokens
        )
    finally:
        server_log = server.stop()
        if request.param == "postgresql":
            create_engine(url).dispose()
    assert "Traceback" not in server_log, server_log[-4000:]


def slot(days_ahead: int, hour: int) -> tuple[str, str]:
    day = dt.date.today() + dt.timedelta(days=days_ahead)
    start = dt.datetime.combine(day, dt.time(hour, 0), dt.timezone(dt.timedelta(hours=8)))
    return start.isoformat(), (start + dt.timedelta(hours=1)).isoformat()


def race(scene: Scene, resource_id: int, start: str, end: str) -> list[tuple[int, Any]]:
    barrier = threading.Barrier(CLIENTS)
    results: list[tuple[int, Any]] = [(0, None)] * CLIENTS

    def client(i: int) -> None:
        with requests.Session() as http:
            headers = {"Authorization": f"Bearer {scene.tokens[i]}"}
            body = {"resource_id": resource_id, "start": start, "end": end, "purpose": "race"}
            barrier.wait(timeout=30)
            try:
                r = http.post(
                    f"{scene.base}/api/v1/bookings", json=body, headers=headers, timeout=60
                )
            except requests.RequestException as exc:
                results[i] = (-1, repr(exc))
                return
            try:
                payload = r.json()
            except ValueError:
                payload = r.text[:300]
            results[i] = (r.status_code, payload)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    return results


def holding_rows(url: str, resource_id: int) -> int:
    from labshare.models import HOLDING_STATUSES, Booking

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(Booking)
                    .where(Booking.resource_id == resource_id)
                    .where(Booking.status.in_([s.value for s in HOLDING_STATUSES]))
                )
                or 0
            )
    finally:
        engine.dispose()


def assert_outcome(results: list[tuple[int, Any]], winners: int) -> None:
    codes = Counter(status for status, _ in results)
    assert not [r for r in results if r[0] >= 500 or r[0] < 0], results
    assert codes == {201: winners, 409: CLIENTS - winners}, codes
    for status, payload in results:
        if status == 409:
            assert isinstance(payload, dict), payload
            assert payload["error"]["code"] == "conflict", payload


@pytest.mark.parametrize(
    ("which", "expected_status"), [("auto", "approved"), ("approval", "pending")]
)
def test_fifty_clients_one_instrument_slot(scene: Scene, which: str, expected_status: str) -> None:
    resource_id = scene.auto_instrument if which == "auto" else scene.approval_instrument
    start, end = slot(days_ahead=3, hour=10)
    results = race(scene, resource_id, start, end)
    assert_outcome(results, winners=1)
    [winner] = [payload for status, payload in results if status == 201]
    assert winner["status"] == expected_status
    assert winner["resource_id"] == resource_id
    assert holding_rows(scene.url, resource_id) == 1


def test_fifty_clients_lab_of_capacity_three(scene: Scene) -> None:
    start, end = slot(days_ahead=4, hour=14)
    results = race(scene, scene.lab, start, end)
    assert_outcome(results, winners=3)
    assert holding_rows(scene.url, scene.lab) == 3


def search_while_booking(
    scene: Scene, start: str, end: str, token: str
) -> tuple[float, list[tuple[float, int, set[int]]]]:
    """Six clients repeat the search of instruments free in [start, end) while one
    books the automatic instrument there: (when the booking was answered, each
    search's (time sent, status, ids))."""
    query = {"available_from": start, "available_to": end, "kind": "instrument"}
    stop = threading.Event()
    seen: list[tuple[float, int, set[int]]] = []
    lock = threading.Lock()

    def searcher() -> None:
        with requests.Session() as http:
            while not stop.is_set():
                sent = time.monotonic()
                r = http.get(f"{scene.base}/api/v1/resources", params=query, timeout=30)
                ids = {item["id"] for item in r.json()["items"]} if r.ok else set()
                with lock:
                    seen.append((sent, r.status_code, ids))

    threads = [threading.Thread(target=searcher) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)  # the answer is computed and kept by both workers
        r = requests.post(
            f"{scene.base}/api/v1/bookings",
            json={
                "resource_id": scene.auto_instrument,
                "start": start,
                "end": end,
                "purpose": "window search race",
            },
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        booked_at = time.monotonic()
        assert r.status_code == 201, r.text
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    return booked_at, seen


def test_a_kept_window_search_never_shows_a_slot_booked_before_it(scene: Scene) -> None:
    """Searchers repeat one window search (kept and served again, by the fast path)
    while a booking fills the window on one instrument: every search sent after the
    booking's answer leaves that instrument out (window_cache.py checks the calendars'
    versions), on both databases and across the two workers."""
    for n in range(3):
        start, end = slot(days_ahead=200 + n, hour=10)
        booked_at, seen = search_while_booking(scene, start, end, scene.tokens[10 + n])
        assert {status for _t, status, _ids in seen} == {200}
        before = [ids for sent, _s, ids in seen if sent < booked_at]
        after = [ids for sent, _s, ids in seen if sent > booked_at]
        assert before and scene.auto_instrument in before[0]
        assert after, "no search was sent after the booking"
        assert all(scene.auto_instrument not in ids for ids in after), n
        assert all(scene.approval_instrument in ids for ids in after)
