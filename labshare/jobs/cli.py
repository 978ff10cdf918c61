"""``flask jobs run NAME`` and ``flask scheduler run``."""

from __future__ import annotations

import json
import signal
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from labshare.jobs import JOBS, run_job


@click.group("jobs", help="Run a scheduled job once, now.")
def jobs_cli() -> None:
    pass


@jobs_cli.command("run")
@click.argument("name", type=click.Choice(sorted(JOBS)))
@with_appcontext
def run_command(name: str) -> None:
    """Run job NAME once and print what it did."""
    result = run_job(name)
    click.echo(json.dumps({"job": name, "result": result}, default=str, ensure_ascii=False))


@jobs_cli.command("list")
def list_command() -> None:
    """List the jobs and their schedules."""
    for job in JOBS.values():
        kind, args = job.trigger
        click.echo(f"{job.name:22} {kind} {args}")


@click.group("scheduler", help="The job scheduler.")
def scheduler_cli() -> None:
    pass


@scheduler_cli.command("run")
@click.option(
    "--retry-seconds",
    type=float,
    default=None,
    help="How often a standby tries to become leader (default 15).",
)
@with_appcontext
def scheduler_run(retry_seconds: float | None) -> None:
    """Run the scheduler in this process until stopped (SIGTERM or Ctrl-C).

    Several such processes may run (say, one per host): one leads, the others stand
    by and take over when it stops.
    """
    from labshare.jobs.scheduler import SchedulerRunner

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    runner = SchedulerRunner(app, retry_seconds=retry_seconds)

    def _stop(_signum: int, _frame: Any) -> None:
        runner._stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"scheduler: campaigning every {runner.retry_seconds:g}s for leadership")
    runner.run_forever()


def register_job_commands(app: Flask) -> None:
    app.cli.add_command(jobs_cli)
    app.cli.add_command(scheduler_cli)
