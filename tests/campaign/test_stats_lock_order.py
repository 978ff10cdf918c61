"""The writers of the stored statistics' national rows (the ``rollup`` job's
``clean_pair`` and ``flask stats rebuild``'s month-by-month ``rebuild``, one
transaction) take the national advisory lock before any marker or stored row, so a
rebuild that already holds the lock never waits for a cleaner that waits for it
(PostgreSQL: SQLSTATE 40P01, a failed job run or a failed rebuild).

The race is made certain: the rebuild takes the lock with its first month, waits until
the cleaner waits for it, then rebuilds the month whose marker the cleaner is
cleaning."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import text

from labshare.campaign import stats_store
from labshare.extensions import db
from tests import factories, raceutil

pytestmark = pytest.mark.postgresql_only

JAN = dt.date(2030, 1, 1)
FEB = dt.date(2030, 2, 1)
MAR = dt.date(2030, 3, 1)
FEB_DAY = dt.datetime(2030, 2, 10, 2, tzinfo=dt.UTC)


def _waiting_for_an_advisory_lock() -> bool:
    with db.engine.connect() as conn:
        return bool(
            conn.scalar(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            )
        )


def test_a_rebuild_of_several_months_and_the_rollup_never_deadlock(app: Flask) -> None:
    instrument = factories.make_instrument()
    factories.make_booking(resource=instrument, start=FEB_DAY, decided_at=FEB_DAY)
    factories.make_booking(
        resource=instrument, start=FEB_DAY - dt.timedelta(days=30), decided_at=FEB_DAY
    )
    db.session.commit()
    iid = instrument.institute_id
    db.session.remove()
    holding = threading.Event()

    def rebuild() -> Callable[[], str]:
        def action() -> str:
            stats_store.rebuild(JAN, FEB, first_days=False)
            holding.set()
            deadline = time.monotonic() + 10
            while not _waiting_for_an_advisory_lock():
                assert time.monotonic() < deadline, "the cleaner never waited"
                time.sleep(0.05)
            stats_store.rebuild(FEB, MAR, first_days=False)
            return "rebuilt"

        return action

    def clean() -> Callable[[], str]:
        def action() -> str:
            assert holding.wait(10)
            stats_store.clean_pair(iid, FEB_DAY.date())
            return "cleaned"

        return action

    outcomes = raceutil.race(app, [rebuild, clean], timeout=60)
    labels = [o.value if o.ok else raceutil.error_label(o.error) for o in outcomes]  # type: ignore[arg-type]
    assert labels == ["rebuilt", "cleaned"]
