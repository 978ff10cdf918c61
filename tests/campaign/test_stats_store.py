"""The statistics' pre-aggregate (``stats_daily``) never goes stale: triggers mark a
changed (resource, UTC day) dirty in the writer's transaction, reads count dirty days
live, the ``rollup`` job only cleans; ``flask stats check`` compares the stored days."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select, text, update

from labshare.campaign import check, stats, stats_store
from labshare.campaign.counters import usage_minutes_of
from labshare.campaign.stats import Period, Scope
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import Booking, BookingStatus, ServiceType, StatsDaily, StatsDirty, UsageRecord
from tests import factories
from tests.helpers import naive_median_hours, naive_wait_minutes

START = dt.datetime(2030, 1, 10, 2, tzinfo=dt.UTC)
MONTH = Period.month("2030-01")


def _dirty() -> set[tuple[int, dt.date]]:
    return {(r, d) for r, d in db.session.execute(select(StatsDirty.resource_id, StatsDirty.day))}


def _stored(institute_id: int, day: dt.date) -> StatsDaily | None:
    return db.session.get(StatsDaily, (day, institute_id))


def _figures(institute_id: int) -> dict[str, Any]:
    return stats.statistics_for(MONTH, Scope.institute(institute_id)).counters.values


def test_a_booking_marks_its_day_dirty_in_its_own_transaction(app: Flask) -> None:
    instrument = factories.make_instrument()
    booking = factories.make_booking(resource=instrument, start=START)
    db.session.flush()
    # Not yet committed: the marker is already there, in the same transaction.
    assert (instrument.id, START.date()) in _dirty()
    db.session.rollback()
    assert _dirty() == set()
    assert db.session.get(Booking, booking.id) is None


def test_rollup_cleans_the_dirty_days_into_stats_daily(app: Flask) -> None:
    instrument = factories.make_instrument()
    booking = factories.make_booking(
        resource=instrument, start=START, status=BookingStatus.COMPLETED, fee=Decimal("100")
    )
    db.session.add(
        UsageRecord(
            booking_id=booking.id,
            checked_in_at=START,
            checked_out_at=START + dt.timedelta(minutes=90),
            service_type=ServiceType.TESTING,
            problem_solved=True,
            recorded_by_id=factories.make_user().id,
        )
    )
    db.session.commit()
    live = _figures(instrument.institute_id)
    assert live["completed"] == 1 and live["usage_minutes"] == 90
    run_job("rollup")
    assert _dirty() == set()
    row = _stored(instrument.institute_id, START.date())
    assert row is not None
    assert (row.bookings_total, row.completed, row.usage_minutes, row.testing) == (1, 1, 90, 1)
    assert row.problems_solved == 1 and Decimal(row.fees) == Decimal("100")
    assert _figures(instrument.institute_id) == live


def test_an_edit_after_the_rollup_is_counted_before_the_next(app: Flask) -> None:
    instrument = factories.make_instrument()
    booking = factories.make_booking(
        resource=instrument, start=START, status=BookingStatus.COMPLETED
    )
    db.session.commit()
    run_job("rollup")
    booking.status = BookingStatus.NO_SHOW
    db.session.commit()
    assert _dirty() == {(instrument.id, START.date())}
    # The stored row still says completed; the figures do not.
    row = _stored(instrument.institute_id, START.date())
    assert row is not None and row.completed == 1
    figures = _figures(instrument.institute_id)
    assert (figures["completed"], figures["no_show"]) == (0, 1)
    national = stats.statistics_for(MONTH, Scope.everything()).counters.values
    assert (national["completed"], national["no_show"]) == (0, 1)


def test_moving_a_booking_marks_both_days_and_deleting_marks_its_day(app: Flask) -> None:
    instrument = factories.make_instrument()
    booking = factories.make_booking(resource=instrument, start=START)
    db.session.commit()
    run_job("rollup")
    booking.start_at += dt.timedelta(days=5)
    booking.end_at += dt.timedelta(days=5)
    db.session.commit()
    assert _dirty() == {
        (instrument.id, START.date()),
        (instrument.id, START.date() + dt.timedelta(days=5)),
    }
    run_job("rollup")
    db.session.execute(delete(Booking).where(Booking.id == booking.id))
    db.session.commit()
    assert _dirty() == {(instrument.id, START.date() + dt.timedelta(days=5))}
    assert _figures(instrument.institute_id)["bookings_total"] == 0
    run_job("rollup")
    assert db.session.scalar(select(func.count()).select_from(StatsDaily)) == 0


def test_a_usage_record_change_marks_its_booking_day(app: Flask) -> None:
    instrument = factories.make_instrument()
    booking = factories.make_booking(
        resource=instrument, start=START, status=BookingStatus.COMPLETED
    )
    db.session.commit()
    run_job("rollup")
    usage = UsageRecord(
        booking_id=booking.id,
        checked_in_at=START,
        checked_out_at=START + dt.timedelta(minutes=30),
        service_type=ServiceType.TRAINING,
        recorded_by_id=factories.make_user().id,
    )
    db.session.add(usage)
    db.session.commit()
    assert _dirty() == {(instrument.id, START.date())}
    assert _figures(instrument.institute_id)["training"] == 1
    run_job("rollup")
    usage.checked_out_at = START + dt.timedelta(minutes=45)
    db.session.commit()
    assert _dirty() == {(instrument.id, START.date())}
    assert _figures(instrument.institute_id)["usage_minutes"] == 45


def test_check_finds_a_stored_day_that_disagrees(app: Flask) -> None:
    instrument = factories.make_instrument()
    factories.make_booking(resource=instrument, start=START, status=BookingStatus.COMPLETED)
    db.session.commit()
    run_job("rollup")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["stats", "check"]).exit_code == 0
    # Only a write that bypasses the triggers can do this (they are on booking).
    db.session.execute(update(StatsDaily).values(completed=StatsDaily.completed + 1))
    db.session.commit()
    result = runner.invoke(args=["stats", "check"])
    assert result.exit_code == 1, result.output
    assert f"institute {instrument.institute_id} completed: figures 2, bookings 1" in result.output
    # flask stats rebuild puts it right.
    assert runner.invoke(args=["stats", "rebuild"]).exit_code == 0
    assert runner.invoke(args=["stats", "check"]).exit_code == 0


def test_a_bulk_load_without_triggers_is_right_after_rebuild(app: Flask) -> None:
    instrument = factories.make_instrument()
    factories.make_booking(resource=instrument, start=START, status=BookingStatus.COMPLETED)
    db.session.commit()
    # As the bench generator does: rows written with the triggers off, no markers.
    db.session.execute(text("DELETE FROM stats_dirty"))
    db.session.commit()
    stats_store.rebuild()
    db.session.commit()
    row = _stored(instrument.institute_id, START.date())
    assert row is not None and row.completed == 1
    assert _figures(instrument.institute_id)["completed"] == 1


def test_a_new_zone_for_an_institute_makes_its_days_live(app: Flask) -> None:
    instrument = factories.make_instrument()
    # 20:00 UTC on the 9th: the 10th in Shanghai, the 9th in New York.
    start = dt.datetime(2030, 1, 9, 20, tzinfo=dt.UTC)
    factories.make_booking(resource=instrument, start=start)
    db.session.commit()
    run_job("rollup")
    institute = instrument.institute
    assert _stored(institute.id, dt.date(2030, 1, 10)) is not None
    day = Period(dt.date(2030, 1, 10), dt.date(2030, 1, 11))
    assert stats.total_counters(day, Scope.institute(institute.id))["bookings_total"] == 1
    institute.timezone = "America/New_York"
    db.session.commit()
    assert _dirty() == {(instrument.id, dt.date(2030, 1, 9))}
    assert stats.total_counters(day, Scope.institute(institute.id))["bookings_total"] == 0
    before = Period(dt.date(2030, 1, 9), dt.date(2030, 1, 10))
    assert stats.total_counters(before, Scope.institute(institute.id))["bookings_total"] == 1
    run_job("rollup")
    assert _dirty() == set()
    assert _stored(institute.id, dt.date(2030, 1, 9)) is not None
    assert _stored(institute.id, dt.date(2030, 1, 10)) is None
    assert stats.total_counters(before, Scope.institute(institute.id))["bookings_total"] == 1


def test_the_median_decision_time_before_and_after_the_rollup(app: Flask) -> None:
    instrument = factories.make_instrument()
    created = dt.datetime(2030, 1, 5, 3, 0, 0, 250_000, tzinfo=dt.UTC)
    waits = [
        dt.timedelta(seconds=5, microseconds=1),
        dt.timedelta(seconds=5, microseconds=3),
        dt.timedelta(minutes=1),
        dt.timedelta(minutes=2),
        dt.timedelta(hours=30, microseconds=999_999),
        dt.timedelta(days=9),
    ]
    for n, wait in enumerate(waits):
        factories.make_booking(
            resource=instrument,
            start=START + dt.timedelta(days=n, hours=1),
            created_at=created,
            decided_at=created + wait,
        )
    db.session.commit()
    scope = Scope.institute(instrument.institute_id)
    period = Period(dt.date(2030, 1, 10), dt.date(2030, 1, 14))  # the first four
    expected = naive_median_hours([naive_wait_minutes(created, created + w) for w in waits[:4]])
    assert stats.statistics_for(period, scope).median_decision_hours == expected
    run_job("rollup")
    assert _stored(instrument.institute_id, dt.date(2030, 1, 10)) is not None
    assert stats.statistics_for(period, scope).median_decision_hours == expected


@pytest.mark.parametrize(
    ("in_us", "length", "minutes"),
    [
        # 59.9998 s: not a whole minute, though each stamp rounded to the millisecond
        # on its own (as SQLite's julianday() does) makes it 60.000 s
        (600, dt.timedelta(seconds=59, microseconds=999_800), 0),
        (400, dt.timedelta(minutes=30, microseconds=100), 30),
        (999, dt.timedelta(minutes=44, seconds=59, microseconds=999_999), 44),
    ],
)
def test_usage_minutes_of_stamps_off_the_millisecond_agree_with_the_records(
    app: Flask, in_us: int, length: dt.timedelta, minutes: int
) -> None:
    instrument = factories.make_instrument()
    booking = factories.make_booking(
        resource=instrument, start=START, status=BookingStatus.COMPLETED
    )
    checked_in = START.replace(microsecond=in_us)
    db.session.add(
        UsageRecord(
            booking_id=booking.id,
            checked_in_at=checked_in,
            checked_out_at=checked_in + length,
            service_type=ServiceType.TRAINING,
            recorded_by_id=factories.make_user().id,
        )
    )
    db.session.commit()
    assert usage_minutes_of(checked_in, checked_in + length) == minutes
    assert _figures(instrument.institute_id)["usage_minutes"] == minutes  # live
    run_job("rollup")
    assert _figures(instrument.institute_id)["usage_minutes"] == minutes  # stored
    assert check.differences(MONTH) == []
