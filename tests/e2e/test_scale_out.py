"""Scale-out, proven on this machine: two gunicorn instances (two workers each, as
two hosts would run them) share one PostgreSQL database; 100 clients book random
slots through both for a bounded time. Nothing is double-booked, nothing answers
5xx, every 201 is a row. Then two "hosts" run the reminder and delivery jobs at the
same time, and every booking's reminder is queued once and sent once.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import and_, create_engine, select
from sqlalchemy.orm import aliased

from config import TestingConfig
from labshare.models import HOLDING_STATUSES, Booking, Notification, NotificationStatus
from tests.serverutil import ROOT, Server, production_env, server_database, start_gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]

CLIENTS = 100
INSTRUMENTS = 3
SLOTS = 36  # half-hour starts over 18 hours, all within the next day
DURATION_S = 15.0
SECRET_KEY = "scale-test-secret-key-not-for-production"
RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "max_active_per_company": 1000,
    "cancel_deadline_hours": 0,
    "requires_approval": False,
}


def build_database(url: str, instance_dir: Path) -> tuple[list[int], list[str]]:
    """Migrate ``url``; write the instruments (open around the clock) and 100 SME
    users with a token each."""
    import flask_migrate

    from labshare import create_app
    from labshare.accounts.tokens import issue_login_token
    from labshare.extensions import db
    from labshare.models import Role, User
    from tests import factories

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(instance_dir))
    with app.app_context():
        flask_migrate.upgrade()
        institute = factories.make_institute(timezone="Asia/Shanghai")
        lab = factories.make_lab(institute=institute, rules=RULES)
        instruments = [factories.make_instrument(lab=lab, rules=RULES) for _ in range(INSTRUMENTS)]
        tokens = []
        for i in range(CLIENTS):
            user = User(
                email=f"scaler{i}@example.com",
                name=f"Scaler {i}",
                role=Role.SME,
                company=factories.make_company(),
                locale="en",
                password_hash="!",  # never signs in with a password here
            )
            db.session.add(user)
            db.session.flush()
            tokens.append(issue_login_token(user, ttl_hours=2).secret)
        db.session.commit()
        ids = [i.id for i in instruments]
        db.engine.dispose()
    return ids, tokens


def slot_grid() -> list[dt.datetime]:
    """Half-hour starts from 2 h to 20 h ahead: a 24-hour reminder is due for each
    at once, a 1-hour one for none."""
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    first = now - dt.timedelta(minutes=now.minute % 30) + dt.timedelta(hours=2, minutes=30)
    return [first + dt.timedelta(minutes=30 * k) for k in range(SLOTS)]


def drive(
    bases: list[str], tokens: list[str], instruments: list[int], grid: list[dt.datetime]
) -> list[tuple[int, Any]]:
    """Each client books random slots for DURATION_S, alternating between the
    instances; returns every (status, payload)."""
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)
    stop_at: list[float] = []

    def client(i: int) -> None:
        rng = random.Random(i)
        mine: list[tuple[int, Any]] = []
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {tokens[i]}"
            if barrier.wait(timeout=60) == 0:
                stop_at.append(time.monotonic() + DURATION_S)
            else:
                while not stop_at:
                    time.sleep(0.001)
            n = i
            while time.monotonic() < stop_at[0]:
                start = rng.choice(grid)
                end = start + dt.timedelta(minutes=rng.choice((30, 60, 90)))
                body = {
                    "resource_id": rng.choice(instruments),
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "purpose": "scale-out",
                }
                try:
                    r = http.post(f"{bases[n % 2]}/api/v1/bookings", json=body, timeout=60)
                except requests.RequestException as exc:
                    mine.append((-1, repr(exc)))
                    continue
                finally:
                    n += 1
                try:
                    payload = r.json()
                except ValueError:
                    payload = r.text[:300]
                mine.append((r.status_code, payload))
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DURATION_S + 120)
    assert not any(t.is_alive() for t in threads)
    return results


def run_hosts(env: dict[str, str], hosts: list[list[str]]) -> str:
    """Each host runs its jobs one after the other with ``flask jobs run``; the hosts
    run at the same time. Returns the hosts' combined output."""

    def host(jobs: list[str], out: list[str]) -> None:
        for job in jobs:
            done = subprocess.run(
                [sys.executable, "-m", "flask", "--app", "run", "jobs", "run", job],
                cwd=ROOT,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=120,
            )
            out.append(f"exit {done.returncode}\n{done.stdout}{done.stderr}")
            if done.returncode != 0:
                return

    outputs: list[list[str]] = [[] for _ in hosts]
    threads = [
        threading.Thread(target=host, args=(j, o)) for j, o in zip(hosts, outputs, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(len(o) == len(j) for o, j in zip(outputs, hosts, strict=True)), outputs
    assert all(text.startswith("exit 0\n") for o in outputs for text in o), outputs
    return "\n".join(text for o in outputs for text in o)


def test_two_instances_100_clients_on_postgresql(tmp_path: Path) -> None:
    url = server_database("postgresql", tmp_path, "scale")
    instruments, tokens = build_database(url, tmp_path / "setup")
    env = production_env(url, SECRET_KEY, RATELIMIT_ENABLED="false", MAIL_SERVER="")
    servers: list[Server] = []
    logs: list[str] = []
    try:
        for name in ("host-a", "host-b"):
            (tmp_path / name).mkdir()
            servers.append(
                start_gunicorn(
                    {**env, "LABSHARE_INSTANCE_DIR": str(tmp_path / name)},
                    tmp_path / f"{name}.log",
                    wait=False,
                )
            )
        for server in servers:  # both start at once
            server.wait()
        results = drive([s.base for s in servers], tokens, instruments, slot_grid())
    finally:
        logs = [s.stop() for s in servers]
    for log in logs:
        assert "Traceback" not in log, log[-4000:]

    codes = Counter(status for status, _ in results)
    print(f"scale-out: {len(results)} requests in {DURATION_S:.0f} s: {dict(codes)}")
    assert not [r for r in results if r[0] >= 500 or r[0] < 0][:5], codes
    assert set(codes) <= {201, 409, 422}, (
        codes,
        [r for r in results if r[0] not in (201, 409, 422)][:5],
    )
    assert codes[201] >= INSTRUMENTS, codes  # the load did book something
    assert codes[409] > 0, codes  # ... and did compete for the same slots
    for status, payload in results:
        if status == 409:
            assert payload["error"]["code"] == "conflict", payload
    created = {payload["id"] for status, payload in results if status == 201}
    assert len(created) == codes[201]

    engine = create_engine(url)
    holding = [s.value for s in HOLDING_STATUSES]
    try:
        with engine.connect() as conn:
            a, b = aliased(Booking), aliased(Booking)
            overlaps = conn.execute(
                select(a.id, b.id)
                .join(
                    b,
                    and_(
                        a.resource_id == b.resource_id,
                        a.id < b.id,
                        a.start_at < b.end_at,
                        b.start_at < a.end_at,
                    ),
                )
                .where(a.status.in_(holding), b.status.in_(holding))
            ).all()
            assert overlaps == []
            rows = set(conn.scalars(select(Booking.id).where(Booking.status.in_(holding))))
            assert rows == created
    finally:
        engine.dispose()

    # Reminders: two hosts run the jobs at the same time; then both again, which
    # must queue and send nothing more.
    job_env = {**env, "LOG_LEVEL": "INFO", "LABSHARE_INSTANCE_DIR": str(tmp_path / "host-a")}
    output = run_hosts(job_env, [["reminders", "deliver"], ["reminders", "deliver"]])
    output += run_hosts(job_env, [["deliver"], ["reminders"]])
    assert "Traceback" not in output, output[-4000:]

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            reminders = conn.execute(
                select(Notification.id, Notification.booking_id, Notification.status).where(
                    Notification.kind == "reminder"
                )
            ).all()
    finally:
        engine.dispose()
    per_booking = Counter(booking_id for _, booking_id, _ in reminders)
    assert set(per_booking) == created
    assert set(per_booking.values()) == {1}
    assert {status for _, _, status in reminders} == {NotificationStatus.SENT}
    # Sent once: each reminder's Message-ID was handed to the (logging) transport once.
    sent = Counter(int(n) for n in re.findall(r"<notification-(\d+)@labshare>", output))
    for note_id, _, _ in reminders:
        assert sent[note_id] == 1, (note_id, sent[note_id])
    assert max(sent.values()) == 1
