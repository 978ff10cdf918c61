"""Soak on PostgreSQL with real processes (``make soak``; CI runs a short one).

gunicorn (2 workers) serves a fresh database; 8 SME clients do random operations
over HTTP (book one- to three-minute slots a minute or two ahead, cancel, check
in, join the waitlist, take or decline offers, read lists and calendars); a staff
client approves requests, records usage right at the end times and marks
no-shows; two scheduler processes run every job every second
(``--jobs-loop``). Every booking ends inside the run, so the end-of-booking jobs
and the staff meet on the same bookings at the same moments.

At the end it prints the requests by status, the 5xx count, the deadlocks
(PostgreSQL's own counter for the database, and "deadlock" in every log), the
retried lost races, the failed job runs, and checks the invariants (no overlap
beyond capacity, no completed booking that has not started, no no-show that was
checked in, every usage record's booking completed or about to be). Exit status
1 when any of those is not clean.

    python -m bench.soak --seconds 60 [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 8
SECRET_KEY = "soak-secret-key-not-for-production"
PASSWORD = "soak-password-123"
RULES = {
    "slot_minutes": 1,
    "min_minutes": 1,
    "max_minutes": 240,
    "lead_time_hours": 0,
    "horizon_days": 30,
    "max_active_per_company": 50,
    "cancel_deadline_hours": 0,
    "waitlist_offer_minutes": 1,
}
INSTRUMENTS = 6
SEEDED_SECONDS = 8
SH = dt.timezone(dt.timedelta(hours=8))


# -- set-up -------------------------------------------------------------------------------


def default_url() -> str:
    base = os.environ.get(
        "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/labshare_test"
    )
    u = make_url(base)
    return u.set(database=f"{u.database}_soak").render_as_string(hide_password=False)


def build(url: str, instance: Path, seconds: float) -> dict[str, Any]:
    """Migrate ``url`` and write an institute, instruments, a lab, SMEs and staff,
    and on every resource approved bookings of ``SEEDED_SECONDS`` back to back from
    now until after the run, so that bookings end all through it (some checked in)."""
    import flask_migrate

    from config import TestingConfig
    from labshare import create_app
    from labshare.accounts.tokens import issue_login_token
    from labshare.extensions import db
    from labshare.models import BookingStatus, Resource, Role
    from labshare.timeutil import utcnow
    from tests import factories

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(instance))
    with app.app_context():
        flask_migrate.upgrade()
        institute = factories.make_institute(timezone="Asia/Shanghai")
        lab = factories.make_lab(
            institute=institute, capacity=2, rules={**RULES, "requires_approval": False}
        )
        resources = [lab.id]
        for i in range(INSTRUMENTS):
            rules = {**RULES, "requires_approval": i % 3 == 0, "checkin_required": i % 2 == 0}
            resources.append(factories.make_instrument(lab=lab, rules=rules).id)
        staff = factories.make_user(Role.STAFF, password=PASSWORD, institute_id=institute.id)
        smes = [factories.make_user(Role.SME, password=PASSWORD) for _ in range(CLIENTS)]
        tokens = [issue_login_token(u, 2).secret for u in [staff, *smes]]
        now = utcnow().replace(microsecond=0)
        rng = random.Random(7)
        for n, resource_id in enumerate(resources):
            resource = db.session.get(Resource, resource_id)
            for lane in range(2 if resource_id == lab.id else 1):
                start = now + dt.timedelta(seconds=n + lane * 3)
                while start < now + dt.timedelta(seconds=seconds + 20):
                    end = start + dt.timedelta(seconds=SEEDED_SECONDS)
                    factories.make_booking(
                        resource=resource,
                        user=rng.choice(smes),
                        start=start,
                        end=end,
                        status=BookingStatus.APPROVED,
                        checked_in_at=start if rng.random() < 0.5 else None,
                    )
                    start = end
        db.session.commit()
        db.engine.dispose()
    return {"resources": resources, "staff": tokens[0], "smes": tokens[1:]}


def postgres_deadlocks(url: str) -> int:
    engine = create_engine(make_url(url).set(database="postgres"))
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT deadlocks FROM pg_stat_database WHERE datname = :d"),
            {"d": make_url(url).database},
        ).scalar()
    engine.dispose()
    return int(value or 0)


# -- the scheduler processes --------------------------------------------------------------


def jobs_loop(seconds: float) -> None:
    """Run every job every second until stopped (SIGTERM) or ``seconds`` passed;
    each failed run is logged with its traceback (the soak counts them)."""
    import logging

    from labshare import create_app
    from labshare.jobs import JOBS, run_job

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_a: stop.set())
    app = create_app()
    log = logging.getLogger("soak.jobs")
    deadline = time.monotonic() + seconds
    with app.app_context():
        while not stop.is_set() and time.monotonic() < deadline:
            began = time.monotonic()
            for name in JOBS:
                try:
                    run_job(name)
                except Exception:
                    log.exception("JOB FAILED: %s", name)
            stop.wait(max(0.0, 1.0 - (time.monotonic() - began)))


# -- the clients --------------------------------------------------------------------------


class Client:
    def __init__(self, base: str, token: str, statuses: Counter[str], lock: threading.Lock):
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.statuses = statuses
        self.lock = lock

    def call(self, method: str, path: str, **kw: Any) -> requests.Response | None:
        try:
            response = self.http.request(method, f"{self.base}{path}", timeout=60, **kw)
        except requests.RequestException as exc:
            with self.lock:
                self.statuses[f"error {type(exc).__name__}"] += 1
            return None
        with self.lock:
            self.statuses[str(response.status_code)] += 1
            if response.status_code >= 500:
                self.statuses[f"5xx {method} {re.sub(r'/[0-9]+', '/N', path)}"] += 1
        return response

    def items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        response = self.call("GET", path, params={"per_page": 100, **params})
        if response is None or response.status_code != 200:
            return []
        return list(response.json().get("items", []))


def _slot(rng: random.Random) -> tuple[str, str]:
    now = dt.datetime.now(SH).replace(second=0, microsecond=0)
    start = now + dt.timedelta(minutes=rng.randint(1, 2))
    end = start + dt.timedelta(minutes=rng.randint(1, 3))
    return start.isoformat(), end.isoformat()


def sme(client: Client, resources: list[int], stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        op = rng.random()
        if op < 0.4:
            start, end = _slot(rng)
            body = {"resource_id": rng.choice(resources), "start": start, "end": end}
            r = client.call("POST", "/api/v1/bookings", json={**body, "purpose": "soak"})
            if r is not None and r.status_code == 409 and rng.random() < 0.5:
                client.call("POST", "/api/v1/waitlist", json={**body, "purpose": "soak"})
        elif op < 0.55:
            mine = client.items("/api/v1/bookings", status="approved")
            if mine:
                client.call("POST", f"/api/v1/bookings/{rng.choice(mine)['id']}/check-in")
        elif op < 0.65:
            mine = client.items("/api/v1/bookings", status="pending") + client.items(
                "/api/v1/bookings", status="approved"
            )
            if mine:
                client.call("POST", f"/api/v1/bookings/{rng.choice(mine)['id']}/cancel", json={})
        elif op < 0.75:
            offers = [e for e in client.items("/api/v1/waitlist") if e.get("status") == "offered"]
            if offers:
                action = "accept" if rng.random() < 0.7 else "decline"
                client.call("POST", f"/api/v1/waitlist/{offers[0]['id']}/{action}")
        else:
            now = dt.datetime.now(SH)
            params = {"from": now.isoformat(), "to": (now + dt.timedelta(hours=1)).isoformat()}
            client.call(
                "GET", f"/api/v1/resources/{rng.choice(resources)}/availability", params=params
            )
        time.sleep(rng.uniform(0, 0.05))


def staff(client: Client, stop: threading.Event, seed: int) -> None:
    """Approve requests; record usage (or mark a no-show) right at each end time."""
    rng = random.Random(seed)
    while not stop.is_set():
        for booking in client.items("/api/v1/bookings", status="pending"):
            if rng.random() < 0.8:
                client.call("POST", f"/api/v1/bookings/{booking['id']}/approve")
        now = dt.datetime.now(dt.UTC)
        window = {
            "from": (now - dt.timedelta(seconds=30)).isoformat(),
            "to": (now + dt.timedelta(seconds=2)).isoformat(),
        }
        for booking in client.items("/api/v1/bookings", status="approved", **window):
            end = dt.datetime.fromisoformat(booking["end"])
            if end <= now + dt.timedelta(seconds=1):
                if rng.random() < 0.75:
                    body = {
                        "checked_in_at": booking["start"],
                        "checked_out_at": booking["end"],
                        "service_type": "testing",
                        "samples_count": 1,
                        "problem_solved": True,
                    }
                    client.call("POST", f"/api/v1/bookings/{booking['id']}/usage", json=body)
                else:
                    client.call("POST", f"/api/v1/bookings/{booking['id']}/no-show", json={})
        time.sleep(0.05)


# -- the invariants -----------------------------------------------------------------------

INVARIANTS = {
    "overlapping instrument bookings": """
        SELECT count(*) FROM booking a JOIN booking b
          ON a.resource_id = b.resource_id AND a.id < b.id
         AND a.start_at < b.end_at AND b.start_at < a.end_at
         WHERE a.resource_kind = 'instrument'
           AND a.status IN ('pending', 'approved') AND b.status IN ('pending', 'approved')""",
    "lab instants beyond capacity": """
        SELECT count(*) FROM booking a JOIN lab l ON l.id = a.resource_id
         WHERE a.status IN ('pending', 'approved') AND l.capacity < (
            SELECT count(*) FROM booking b
             WHERE b.resource_id = a.resource_id AND b.status IN ('pending', 'approved')
               AND b.start_at <= a.start_at AND b.end_at > a.start_at)""",
    "completed before it started": """
        SELECT count(*) FROM booking WHERE status = 'completed' AND start_at > now()""",
    "no-shows that were checked in": """
        SELECT count(*) FROM booking WHERE status = 'no_show' AND checked_in_at IS NOT NULL""",
    "usage records of bookings neither completed nor approved": """
        SELECT count(*) FROM usage_record u JOIN booking b ON b.id = u.booking_id
         WHERE b.status NOT IN ('completed', 'approved')""",
    "ended approved bookings left behind by the jobs (usage recorded)": """
        SELECT count(*) FROM booking b JOIN usage_record u ON u.booking_id = b.id
         WHERE b.status = 'approved' AND u.checked_out_at < now() - interval '10 seconds'""",
    "ended unchecked approved bookings the no-show job missed": """
        SELECT count(*) FROM booking b
         WHERE b.status = 'approved' AND b.checked_in_at IS NULL
           AND b.end_at < now() - interval '10 seconds'
           AND NOT EXISTS (SELECT 1 FROM usage_record u WHERE u.booking_id = b.id)""",
    "open offers past their expiry": """
        SELECT count(*) FROM waitlist_entry
         WHERE status = 'offered' AND offer_expires_at < now() - interval '10 seconds'""",
}


def check(url: str) -> tuple[dict[str, int], dict[str, int]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        broken = {
            name: int(conn.execute(text(sql)).scalar() or 0) for name, sql in INVARIANTS.items()
        }
        statuses = {
            str(s): int(n)
            for s, n in conn.execute(text("SELECT status, count(*) FROM booking GROUP BY status"))
        }
    engine.dispose()
    return broken, statuses


# -- the run ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--jobs-loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jobs_loop:
        jobs_loop(args.seconds + 30)
        return 0

    sys.path.insert(0, str(ROOT))
    from tests.serverutil import fresh_postgres, production_env, start_gunicorn

    url = args.database_url or default_url()
    fresh_postgres(url)
    tmp = Path(tempfile.mkdtemp(prefix="labshare-soak-"))
    ids = build(url, tmp / "instance", args.seconds)
    env = production_env(
        url,
        SECRET_KEY,
        RATELIMIT_ENABLED="false",
        NO_SHOW_GRACE_MINUTES="0",
        LABSHARE_INSTANCE_DIR=str(tmp / "instance"),
        LOG_LEVEL="INFO",
    )
    deadlocks_before = postgres_deadlocks(url)
    server = start_gunicorn(env, tmp / "gunicorn.log", workers=2)
    schedulers = []
    for i in range(2):
        log = (tmp / f"jobs{i}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.soak", "--jobs-loop", "--seconds", str(args.seconds)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        schedulers.append((proc, log, tmp / f"jobs{i}.log"))

    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=sme,
            args=(Client(server.base, token, statuses, lock), ids["resources"], stop, i),
        )
        for i, token in enumerate(ids["smes"])
    ]
    threads.append(
        threading.Thread(
            target=staff, args=(Client(server.base, ids["staff"], statuses, lock), stop, 99)
        )
    )
    began = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - began
    # Let the schedulers finish what ended in the last seconds, then stop them.
    time.sleep(3)
    for proc, log, _path in schedulers:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    logs = {"gunicorn": server.stop()}
    logs.update({path.stem: path.read_text(errors="replace") for _p, _l, path in schedulers})

    broken, booking_statuses = check(url)
    deadlocks = postgres_deadlocks(url) - deadlocks_before
    in_logs = {name: len(re.findall(r"deadlock", text_, re.I)) for name, text_ in logs.items()}
    retries = {name: text_.count("lost a race") for name, text_ in logs.items()}
    job_failures = {name: text_.count("JOB FAILED") for name, text_ in logs.items()}
    tracebacks = {name: text_.count("Traceback") for name, text_ in logs.items()}
    http = {k: v for k, v in statuses.items() if k.isdigit()}
    five_xx = sum(v for k, v in http.items() if k.startswith("5"))
    errors = {k: v for k, v in statuses.items() if not k.isdigit()}
    report = {
        "seconds": round(elapsed, 1),
        "requests": sum(http.values()),
        "requests_by_status": dict(sorted(http.items())),
        "5xx": five_xx,
        "client_errors_and_5xx_paths": errors,
        "deadlocks_postgres": deadlocks,
        "deadlock_mentions_in_logs": in_logs,
        "lost_races_retried": retries,
        "failed_job_runs": job_failures,
        "tracebacks_in_logs": tracebacks,
        "bookings_by_status": booking_statuses,
        "invariants_broken": broken,
        "logs": str(tmp),
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    clean = (
        five_xx == 0
        and deadlocks == 0
        and not any(in_logs.values())
        and not any(job_failures.values())
        and not any(tracebacks.values())
        and not any(broken.values())
        and not any(k.startswith("error") for k in errors)
    )
    print("soak:", "clean" if clean else "NOT CLEAN (see above and the logs)")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
