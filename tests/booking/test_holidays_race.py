"""The holiday calendar's token row, written by the first change of the calendar
from several threads at once (each its own session and connection)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import delete, func, select

from labshare.booking import holiday_admin, workdays
from labshare.database import begin_write
from labshare.models import CalendarState
from tests import raceutil


def touch_step() -> Callable[[], None]:
    def act() -> None:
        holiday_admin._touch()
        time.sleep(0.3)  # hold the transaction open while the others write

    return act


def test_the_token_row_exists_before_the_first_change(app: Flask, db: Any) -> None:
    """The booking path share-locks it: before the calendar's first change there was
    nothing to lock. A migrated database has it, with the token of an empty calendar."""
    assert db.session.scalars(select(CalendarState.token)).all() == [workdays.EMPTY_TOKEN]
    assert workdays.read_token() == workdays.EMPTY_TOKEN
    assert workdays.calendar(workdays.EMPTY_TOKEN) == {}


def test_the_first_changes_at_once_all_succeed_and_leave_one_token(app: Flask, db: Any) -> None:
    """A database whose row was removed by hand: without the upsert both transactions
    saw no row and both inserted it, the second failed on the primary key (a 500 for
    the second admin)."""
    begin_write()
    db.session.execute(delete(CalendarState))
    db.session.commit()
    db.session.remove()
    outcomes = raceutil.race(app, [touch_step, touch_step, touch_step])
    assert raceutil.labels(outcomes, "ok", {}) == ["ok", "ok", "ok"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CalendarState)) == 1
        token = db.session.scalar(select(CalendarState.token)) or ""
        assert len(token) == 32 and token != workdays.EMPTY_TOKEN
