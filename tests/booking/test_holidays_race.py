"""The holiday calendar's token row, written by the first change of the calendar
from several threads at once (each its own session and connection)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from labshare.booking import holiday_admin
from labshare.models import CalendarState
from tests import raceutil


def touch_step() -> Callable[[], None]:
    def act() -> None:
        holiday_admin._touch()
        time.sleep(0.3)  # hold the transaction open while the others write

    return act


def test_the_first_changes_at_once_all_succeed_and_leave_one_token(app: Flask, db: Any) -> None:
    """Without the upsert both transactions saw no row and both inserted it: the
    second failed on the primary key (a 500 for the second admin)."""
    assert db.session.scalar(select(func.count()).select_from(CalendarState)) == 0
    db.session.remove()
    outcomes = raceutil.race(app, [touch_step, touch_step, touch_step])
    assert raceutil.labels(outcomes, "ok", {}) == ["ok", "ok", "ok"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CalendarState)) == 1
        assert len(db.session.scalar(select(CalendarState.token)) or "") == 32
