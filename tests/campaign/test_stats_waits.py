"""The stored distribution of decision waits (``stats_wait``): the median decision
time at minute resolution, exact whether the ``rollup`` job ran or not, after edits of
old bookings, rebuilds, and with the national rows always the sum of the institutes'."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select, update

from labshare.campaign import stats, stats_store, waits
from labshare.campaign.periods import zone_groups
from labshare.campaign.stats import Period, Scope
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import ANY_INSTITUTE, Booking, StatsDirty, StatsWait
from tests import factories
from tests.helpers import naive_median_hours, naive_wait_minutes

START = dt.datetime(2030, 1, 10, 2, tzinfo=dt.UTC)
CREATED = dt.datetime(2030, 1, 5, 3, 0, 0, 250_000, tzinfo=dt.UTC)
MONTH = Period.month("2030-01")


def _book(resource: Any, day: int, wait: dt.timedelta | None) -> Booking:
    return factories.make_booking(
        resource=resource,
        start=START + dt.timedelta(days=day, hours=day % 3),
        created_at=CREATED,
        decided_at=None if wait is None else CREATED + wait,
    )


def _naive(scope_of: Any) -> float | None:
    return naive_median_hours(
        [
            naive_wait_minutes(b.created_at, b.decided_at)
            for b in db.session.scalars(select(Booking))
            if b.decided_at is not None and scope_of(b)
        ]
    )


def _national_rows() -> dict[tuple[dt.date, int], int]:
    return {
        (d, m): n
        for d, m, n in db.session.execute(
            select(StatsWait.day, StatsWait.minutes, StatsWait.n).where(
                StatsWait.institute_id == ANY_INSTITUTE
            )
        )
    }


def test_the_median_is_of_whole_minutes_live_and_stored(app: Flask) -> None:
    instrument = factories.make_instrument()
    # 1 min 59 s, twice, and 3 min: the median is 1 whole minute (0.02 h), not the
    # 119 s (0.03 h) of the exact waits.
    for day, wait in enumerate([dt.timedelta(seconds=119)] * 2 + [dt.timedelta(minutes=3)]):
        _book(instrument, day, wait)
    _book(instrument, 4, None)  # undecided: not counted
    db.session.commit()
    scope = Scope.institute(instrument.institute_id)
    assert stats.statistics_for(MONTH, scope).median_decision_hours == 0.02
    assert stats.statistics_for(MONTH, Scope.everything()).median_decision_hours == 0.02
    run_job("rollup")
    assert db.session.scalar(select(StatsDirty.day).limit(1)) is None
    assert _national_rows() == {
        (dt.date(2030, 1, 10), 1): 1,
        (dt.date(2030, 1, 11), 1): 1,
        (dt.date(2030, 1, 12), 3): 1,
    }
    assert stats.statistics_for(MONTH, scope).median_decision_hours == 0.02
    assert stats.statistics_for(MONTH, Scope.everything()).median_decision_hours == 0.02


@pytest.mark.parametrize(
    ("wait", "minutes"),
    [
        (dt.timedelta(seconds=59, microseconds=999_600), 1),  # rounds up to 60.000 s
        (dt.timedelta(seconds=59, microseconds=999_400), 0),
        (dt.timedelta(hours=30, microseconds=999_999), 1800),
        (dt.timedelta(seconds=-61), -1),  # a decision stamped before the request
        (dt.timedelta(0), 0),
    ],
)
def test_whole_minutes_agree_in_python_sql_and_the_naive_count(
    app: Flask, wait: dt.timedelta, minutes: int
) -> None:
    instrument = factories.make_instrument()
    _book(instrument, 0, wait)
    db.session.commit()
    assert waits.wait_minutes(CREATED, CREATED + wait) == minutes
    assert naive_wait_minutes(CREATED, CREATED + wait) == minutes
    scope = Scope.institute(instrument.institute_id)
    live = waits.minute_counts(MONTH, scope, zone_groups(MONTH, scope))
    assert dict(live) == {minutes: 1}
    run_job("rollup")
    stored = waits.minute_counts(MONTH, scope, zone_groups(MONTH, scope))
    assert dict(stored) == {minutes: 1}


def test_an_old_edit_counts_at_once_in_every_scope(app: Flask) -> None:
    east = factories.make_instrument()
    west_institute = factories.make_institute(timezone="America/New_York")
    west = factories.make_instrument(lab=factories.make_lab(institute=west_institute))
    minutes = [5, 7, 11, 13, 17, 19, 23]
    for n, m in enumerate(minutes):
        _book(east if n % 2 else west, n, dt.timedelta(minutes=m, seconds=20))
    db.session.commit()
    run_job("rollup")
    scopes = [
        (Scope.everything(), lambda b: True),
        (Scope.institute(east.institute_id), lambda b: b.institute_id == east.institute_id),
        (Scope.institute(west_institute.id), lambda b: b.institute_id == west_institute.id),
    ]
    for scope, keep in scopes:
        assert stats.statistics_for(MONTH, scope).median_decision_hours == _naive(keep)
    # Edits long after the fact, no job run: the dirty days are counted live, and the
    # national rows' share of them taken out.
    first = db.session.scalars(select(Booking).order_by(Booking.id)).first()
    assert first is not None
    first.decided_at = CREATED + dt.timedelta(hours=40)
    db.session.execute(delete(Booking).where(Booking.id == first.id + 1))
    db.session.commit()
    assert db.session.scalar(select(StatsDirty.day).limit(1)) is not None
    for scope, keep in scopes:
        assert stats.statistics_for(MONTH, scope).median_decision_hours == _naive(keep)
    run_job("rollup")
    for scope, keep in scopes:
        assert stats.statistics_for(MONTH, scope).median_decision_hours == _naive(keep)
    assert waits.differences(MONTH) == []


def test_the_national_rows_stay_the_sum_through_cleans_and_rebuilds(app: Flask) -> None:
    a, b = factories.make_instrument(), factories.make_instrument()
    for n in range(6):
        _book(a if n % 2 else b, n % 3, dt.timedelta(minutes=30 + n % 2))
    db.session.commit()
    run_job("rollup")
    assert _national_rows()[(dt.date(2030, 1, 10), 30)] == 1
    assert sum(_national_rows().values()) == 6
    assert waits.differences(MONTH) == []
    # One institute's day recomputed: the national row goes down by its share only.
    db.session.execute(update(Booking).where(Booking.resource_id == a.id).values(decided_at=None))
    db.session.commit()
    run_job("rollup")
    assert sum(_national_rows().values()) == 3
    assert waits.differences(MONTH) == []
    # A bulk load around the triggers: nothing stored, no markers; a rebuild fills both.
    db.session.execute(delete(StatsWait))
    db.session.commit()
    assert waits.differences(MONTH) != []
    stats_store.rebuild()
    db.session.commit()
    assert waits.differences(MONTH) == []
    assert stats.statistics_for(MONTH, Scope.everything()).median_decision_hours == _naive(
        lambda _b: True
    )


def test_check_reports_a_wrong_stored_wait(app: Flask) -> None:
    instrument = factories.make_instrument()
    _book(instrument, 0, dt.timedelta(minutes=9))
    db.session.commit()
    run_job("rollup")
    result = app.test_cli_runner().invoke(args=["stats", "check"])
    assert result.exit_code == 0, result.output
    db.session.execute(
        update(StatsWait).where(StatsWait.institute_id == instrument.institute_id).values(n=2)
    )
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["stats", "check"])
    assert result.exit_code == 1
    assert "9 min: stored 2, bookings 1" in result.output
    assert "national waits on 2030-01-10, 9 min: stored 1, summed 2" in result.output
    result = app.test_cli_runner().invoke(args=["stats", "rebuild"])
    assert result.exit_code == 0, result.output
    result = app.test_cli_runner().invoke(args=["stats", "check"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "minutes",
    [
        [5, 70, 130],  # odd: the middle alone, in the second hour
        [5, 59, 60, 200],  # even: the two middles in different hours
        [-61, -1, 0, 3000, 3001],  # decisions stamped before the request
        [45] * 4 + [46, 47, 180],
    ],
)
def test_the_national_median_from_hour_rows_equals_the_naive_count(
    app: Flask, minutes: list[int]
) -> None:
    instruments = [factories.make_instrument() for _ in range(2)]
    for n, m in enumerate(minutes):
        _book(instruments[n % 2], n, dt.timedelta(minutes=m, seconds=30 if m >= 0 else -30))
    db.session.commit()
    expected = _naive(lambda b: True)
    assert stats.statistics_for(MONTH, Scope.everything()).median_decision_hours == expected
    run_job("rollup")
    hours: dict[int, int] = {
        int(h): int(n)
        for h, n in db.session.execute(
            select(StatsWait.minutes, func.sum(StatsWait.n))
            .where(StatsWait.institute_id == waits.NATIONAL_HOURS)
            .group_by(StatsWait.minutes)
        )
    }
    assert sum(hours.values()) == len(minutes)
    assert stats.statistics_for(MONTH, Scope.everything()).median_decision_hours == expected
    assert waits.differences(MONTH) == []
    # An old booking's decision moved by hours, no job: the hour rows' share of its
    # day is taken out and the live minutes put in.
    first = db.session.scalars(select(Booking).order_by(Booking.id)).first()
    assert first is not None
    first.decided_at = CREATED + dt.timedelta(hours=9, minutes=1)
    db.session.commit()
    expected = _naive(lambda b: True)
    assert stats.statistics_for(MONTH, Scope.everything()).median_decision_hours == expected
    run_job("rollup")
    assert stats.statistics_for(MONTH, Scope.everything()).median_decision_hours == expected
    assert waits.differences(MONTH) == []


@pytest.mark.parametrize(
    ("created_us", "wait", "minutes"),
    [
        # Both stamps off the millisecond: the wait is 59.9998 s, 60.000 s to the
        # millisecond, whatever each stamp rounds to on its own.
        (600, dt.timedelta(seconds=59, microseconds=999_800), 1),
        (400, dt.timedelta(seconds=59, microseconds=999_400), 0),
        (999, dt.timedelta(minutes=-1, microseconds=-499), -1),
    ],
)
def test_whole_minutes_of_stamps_off_the_millisecond_agree_on_both_databases(
    app: Flask, created_us: int, wait: dt.timedelta, minutes: int
) -> None:
    created = CREATED.replace(microsecond=created_us)
    instrument = factories.make_instrument()
    factories.make_booking(
        resource=instrument, start=START, created_at=created, decided_at=created + wait
    )
    db.session.commit()
    assert naive_wait_minutes(created, created + wait) == minutes
    scope = Scope.institute(instrument.institute_id)
    live = waits.minute_counts(MONTH, scope, zone_groups(MONTH, scope))
    assert dict(live) == {minutes: 1}
    run_job("rollup")
    assert dict(waits.minute_counts(MONTH, scope, zone_groups(MONTH, scope))) == {minutes: 1}
    assert waits.differences(MONTH) == []


def test_a_rollup_committing_in_the_middle_of_a_national_read_changes_nothing(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = factories.make_instrument(), factories.make_instrument()
    moved = _book(a, 0, dt.timedelta(minutes=61))
    _book(b, 1, dt.timedelta(minutes=180))
    db.session.commit()
    run_job("rollup")
    moved.decided_at = CREATED + dt.timedelta(minutes=125)  # an old booking edited
    db.session.commit()
    db.session.remove()

    def rollup_elsewhere() -> None:
        with app.app_context():
            run_job("rollup")
            db.session.commit()
            db.session.remove()

    stored, calls = waits._stored, []

    def stored_then_a_rollup(where: Any) -> Any:
        out = stored(where)
        calls.append(where)
        if len(calls) == 2:  # the national hour rows read, their minutes not yet
            thread = threading.Thread(target=rollup_elsewhere)
            thread.start()
            thread.join(30)
        return out

    monkeypatch.setattr(waits, "_stored", stored_then_a_rollup)
    # The waits are 125 and 180 minutes: the median is 152.5 minutes.
    assert stats.statistics_for(MONTH, Scope.everything()).median_decision_hours == 2.54
    assert len(calls) >= 3
