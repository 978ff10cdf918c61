"""Scheduled jobs: plain, idempotent functions, and the one registry of them.

Each job runs in an app context and its own transaction(s); running it twice, or in
two processes at once, changes nothing more (see ``markers`` and the conditional
updates in the services). ``run_job`` is what the scheduler and ``flask jobs run``
call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labshare.database import retrying
from labshare.jobs.calibration import send_calibration_notices
from labshare.jobs.checkin import release_unchecked_bookings
from labshare.jobs.exports import monthly_export
from labshare.jobs.lifecycle import complete_bookings, mark_no_shows
from labshare.jobs.reminders import send_pending_nudges, send_reminders
from labshare.jobs.rollup import rollup
from labshare.jobs.waitlist import expire_waitlist_offers
from labshare.messaging.mail import deliver_pending
from labshare.orders.reminders import send_recalibration_reminders

log = logging.getLogger(__name__)


def deliver() -> dict[str, Any]:
    return dict(deliver_pending().as_dict())


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[], dict[str, Any]]
    #: APScheduler trigger: ("interval", {"seconds": ...}) or ("cron", {...})
    trigger: tuple[str, dict[str, Any]]
    #: how late a run may start and still run (APScheduler's default is 1 second)
    misfire_grace_time: int


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("deliver", deliver, ("interval", {"seconds": 30}), 60),
        Job("reminders", send_reminders, ("interval", {"minutes": 5}), 300),
        Job("pending-nudges", send_pending_nudges, ("interval", {"hours": 1}), 3600),
        Job("no-shows", mark_no_shows, ("interval", {"minutes": 10}), 600),
        Job("complete", complete_bookings, ("interval", {"minutes": 10}), 600),
        Job("rollup", lambda: rollup(), ("interval", {"minutes": 10}), 600),
        Job("monthly-export", monthly_export, ("cron", {"hour": 3, "minute": 0}), 20 * 3600),
        Job(
            "calibration-notices",
            send_calibration_notices,
            ("cron", {"hour": 7, "minute": 0}),
            12 * 3600,
        ),
        # -- check-in --
        Job("checkin-release", release_unchecked_bookings, ("interval", {"minutes": 1}), 120),
        # -- end check-in --
        # -- waitlist --
        Job("waitlist-offers", expire_waitlist_offers, ("interval", {"minutes": 1}), 120),
        # -- end waitlist --
        Job(
            "recalibration-reminders",
            send_recalibration_reminders,
            ("cron", {"hour": 7, "minute": 30}),
            12 * 3600,
        ),
    )
}


def run_job(name: str) -> dict[str, Any]:
    """Run one job now, in the current app context, and commit its work."""
    job = JOBS[name]
    # Jobs are idempotent, so a run that lost a race is simply run again.
    result = retrying(job.func, what=f"job {name}")
    log.info("job %s: %s", name, result)
    return result
