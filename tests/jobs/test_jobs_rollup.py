"""The ``rollup`` job: kept by name, harmless; the figures never depend on it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from labshare.campaign import stats
from labshare.campaign.stats import Period, Scope
from labshare.extensions import db
from labshare.jobs import JOBS, run_job
from labshare.models import BookingStatus
from tests import factories


def test_rollup_job_changes_no_figure_and_can_run_twice(app: Any) -> None:
    instrument = factories.make_instrument()
    factories.make_booking(
        resource=instrument,
        start=dt.datetime(2030, 1, 7, 2, tzinfo=dt.UTC),
        status=BookingStatus.COMPLETED,
    )
    db.session.commit()
    period = Period.month("2030-01")
    before = stats.statistics_for(period, Scope.everything())
    assert before.counters["completed"] == 1
    assert "rollup" in JOBS
    run_job("rollup")
    run_job("rollup")
    after = stats.statistics_for(period, Scope.everything())
    assert after.counters.values == before.counters.values
    assert after.distinct_smes == before.distinct_smes == 1
