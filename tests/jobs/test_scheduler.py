"""Where the scheduler runs, and the election that keeps it to one process."""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import signal
import time
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from labshare.extensions import db
from labshare.jobs import JOBS
from labshare.jobs.scheduler import (
    FileLock,
    SchedulerRunner,
    add_jobs,
    make_lock,
    start_in_web_process,
)
from labshare.models import BookingStatus
from tests import factories
from tests.jobsutil import T0, campaign_in_child

RETRY = 0.5


def test_every_job_is_registered_with_chosen_settings(app: Any) -> None:
    scheduler = BackgroundScheduler(timezone="Asia/Shanghai")
    add_jobs(scheduler, app)
    add_jobs(scheduler, app)  # replace_existing: still one of each
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {
        "reminders",
        "pending-nudges",
        "no-shows",
        "complete",
        "rollup",
        "monthly-export",
        "calibration-notices",
        "deliver",
        "checkin-release",  # check-in
        "waitlist-offers",  # waitlist
        "recalibration-reminders",  # service orders
    }
    assert set(jobs) == set(JOBS)
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1
        assert job.misfire_grace_time >= 60
    # The statistics' roll-up cleans dirty days every 10 minutes; a missed run is
    # simply taken over by the next (the figures never depend on it).
    assert jobs["rollup"].misfire_grace_time == 600


def test_not_started_in_tests_or_when_disabled(app: Any, monkeypatch: Any) -> None:
    assert start_in_web_process(app) is None  # TESTING
    monkeypatch.setitem(app.config, "TESTING", False)
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", False)
    assert start_in_web_process(app) is None


def test_not_started_in_the_reloaders_parent(app: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "TESTING", False)
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", True)
    monkeypatch.setattr(app, "debug", True)
    monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    assert start_in_web_process(app) is None


def test_not_started_under_gunicorn(app: Any, monkeypatch: Any) -> None:
    import sys
    import types

    monkeypatch.setitem(app.config, "TESTING", False)
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", True)
    monkeypatch.setitem(sys.modules, "gunicorn.arbiter", types.ModuleType("gunicorn.arbiter"))
    assert start_in_web_process(app) is None


def test_one_leader_in_one_process_at_a_time(app: Any, tmp_path: Any) -> None:
    a = SchedulerRunner(app, lock=_lock(app, tmp_path), retry_seconds=RETRY)
    b = SchedulerRunner(app, lock=_lock(app, tmp_path), retry_seconds=RETRY)
    try:
        assert a.step() is True
        assert b.step() is False
        assert a.scheduler is not None and len(a.scheduler.get_jobs()) == len(JOBS)
        a.lock.release()  # the leader loses its lock: it notices and stands down
        assert a.step() is False
        assert b.step() is True
    finally:
        for runner in (a, b):
            runner._stand_down()
            runner.lock.release()


def _lock(app: Any, tmp_path: Any) -> Any:
    if db.engine.dialect.name == "sqlite":
        return FileLock(tmp_path / "scheduler.lock")
    return make_lock(app)


def test_leader_killed_another_process_takes_over(app: Any, tmp_path: Any) -> None:
    """Real processes: each campaigns (advisory lock on PostgreSQL, flock on SQLite)."""
    factories.make_booking(status=BookingStatus.APPROVED, start=T0)
    db.session.commit()
    ctx = multiprocessing.get_context("spawn")
    reports: Any = ctx.Queue()
    args = (app.config["SQLALCHEMY_DATABASE_URI"], str(tmp_path), RETRY, reports)
    procs = [ctx.Process(target=campaign_in_child, args=args, daemon=True) for _ in range(2)]
    for p in procs:
        p.start()
    try:
        leader_pid, _at, jobs = reports.get(timeout=60)
        assert sorted(jobs) == sorted(JOBS)
        # The other one stands by: nobody else leads over several retry intervals.
        try:
            extra = reports.get(timeout=RETRY * 4)
        except queue_module.Empty:
            extra = None
        assert extra is None
        killed_at = time.monotonic()
        os.kill(leader_pid, signal.SIGKILL)
        new_pid, took_over_at, jobs = reports.get(timeout=30)
        assert new_pid != leader_pid
        assert sorted(jobs) == sorted(JOBS)
        # Within the retry interval (plus the time the server takes to see the death).
        assert took_over_at - killed_at < RETRY + 2.0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(timeout=10)


def test_flask_jobs_run_command(app: Any) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["jobs", "run", "no-shows"])
    assert result.exit_code == 0, result.output
    assert '"job": "no-shows"' in result.output
    bad = runner.invoke(args=["jobs", "run", "nonsense"])
    assert bad.exit_code != 0 and "nonsense" in bad.output
    listing = runner.invoke(args=["jobs", "list"])
    assert all(name in listing.output for name in JOBS)
