"""A series and single bookings race for one occurrence's slot, in real threads
(each with its own session and connection), on SQLite and PostgreSQL: the slot
is never held twice, and an all-or-nothing series that lost it wrote nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select

from labshare.booking.policies.recurrence import create_series, validate_spec
from labshare.errors import DomainError, SlotTaken
from labshare.extensions import db as _db
from labshare.models import Booking, BookingSeries, Resource, Role, User
from labshare.timeutil import set_clock
from tests import raceutil
from tests.factories import OPEN_RULES

pytestmark = pytest.mark.usefixtures("cheap_passwords")

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SH = ZoneInfo("Asia/Shanghai")
RULES = {**OPEN_RULES, "max_active_per_company": 500}  # this file's own limit
SINGLES = 4
ROUNDS = 4


@pytest.fixture
def setup(app: Flask, db: Any, make_instrument: Any, make_user: Any) -> Any:
    set_clock(lambda: NOW)
    inst = make_instrument(rules=dict(RULES))
    users = [make_user(Role.SME) for _ in range(SINGLES + 1)]
    db.session.commit()
    ids = {"inst": inst.id, "users": [u.id for u in users]}
    db.session.remove()
    return ids


def _round(app: Flask, ids: dict[str, Any], day: int, skip: bool) -> list[str]:
    """Thread 0 books a daily series of 3 from ``day``; the others book its middle
    occurrence alone, all released by one barrier."""
    first = dt.datetime(2030, 2, day, 9, tzinfo=SH)
    middle = first + dt.timedelta(days=1)

    def series() -> Any:
        resource = _db.session.get(Resource, ids["inst"])
        user = _db.session.get(User, ids["users"][0])
        assert resource is not None and user is not None

        def book() -> str:
            plan = create_series(
                resource,
                user,
                first,
                first + dt.timedelta(hours=2),
                validate_spec("daily", count=3),
                purpose="series",
                skip_conflicting=skip,
            )
            return "series:" + "".join("1" if o.ok else "0" for o in plan.occurrences)

        return book

    singles = [
        raceutil.booking_step(
            ids["inst"], user_id, middle, middle + dt.timedelta(hours=2), "single"
        )
        for user_id in ids["users"][1 : SINGLES + 1]
    ]
    outcomes = raceutil.race(app, [series, *singles])
    return raceutil.labels(
        outcomes,
        lambda value: value if isinstance(value, str) else "single",
        {SlotTaken: "taken", DomainError: lambda exc: f"refused: {exc.code}"},
    )


def _holders(db: Any, resource_id: int, day: int) -> int:
    middle = dt.datetime(2030, 2, day + 1, 9, tzinfo=SH)
    return int(
        db.session.scalar(
            select(func.count(Booking.id)).where(
                Booking.resource_id == resource_id,
                Booking.status.in_(["pending", "approved"]),
                Booking.start_at < middle + dt.timedelta(hours=2),
                Booking.end_at > middle,
            )
        )
    )


@pytest.mark.parametrize("skip", [False, True])
def test_series_and_single_bookings_never_both_hold_the_slot(
    app: Flask, db: Any, setup: Any, skip: bool
) -> None:
    made = 0
    for r in range(ROUNDS):
        day = 1 + 4 * r
        outcomes = _round(app, setup, day, skip)
        assert [o for o in outcomes if o.startswith("error")] == [], outcomes
        series, singles = outcomes[0], outcomes[1:]
        assert _holders(db, setup["inst"], day) == 1, outcomes
        assert singles.count("single") <= 1
        if series == "series:111":  # the series won the middle slot
            assert singles.count("single") == 0
        elif skip:
            assert series == "series:101" and singles.count("single") == 1, outcomes
        else:  # all or nothing: the series lost and wrote nothing for these days
            assert series == "taken" and singles.count("single") == 1, outcomes
        made += series.startswith("series:")
        db.session.remove()
    # a series that lost under all-or-nothing left no row behind
    assert db.session.scalar(select(func.count()).select_from(BookingSeries)) == made
