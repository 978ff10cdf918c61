"""``flask stats check`` and ``flask stats rebuild``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask

from labshare.campaign import check as stats
from labshare.extensions import db
from labshare.models import BookingStatus
from tests import factories


@pytest.fixture
def booked(app: Flask) -> Flask:
    instrument = factories.make_instrument()
    for day, status in ((3, BookingStatus.COMPLETED), (40, BookingStatus.CANCELLED)):
        factories.make_booking(
            resource=instrument,
            start=dt.datetime(2030, 1, 1, 2, tzinfo=dt.UTC) + dt.timedelta(days=day),
            status=status,
        )
    db.session.commit()
    return app


def test_check_finds_no_difference(booked: Flask) -> None:
    result = booked.test_cli_runner().invoke(args=["stats", "check"])
    assert result.exit_code == 0, result.output
    assert "No differences in 2 months." in result.output


def test_check_exits_1_and_prints_a_difference(booked: Flask, monkeypatch: Any) -> None:
    real = stats.counters_by

    def off_by_one(period: Any, scope: Any, key: str) -> Any:
        out = real(period, scope, key)
        for c in out.values():
            c.values["completed"] += 1
        return out

    monkeypatch.setattr(stats, "counters_by", off_by_one)
    result = booked.test_cli_runner().invoke(args=["stats", "check", "--from", "2030-01-01"])
    assert result.exit_code == 1
    assert "completed: figures 2, bookings 1" in result.output


def test_check_of_an_empty_database(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["stats", "check"])
    assert result.exit_code == 0 and "nothing to check" in result.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--from", "2030-13-01"], "--from"),
        (["--to", "yesterday"], "--to"),
        (["--from", "2030-02-01", "--to", "2030-01-01"], "--to"),
    ],
)
def test_bad_dates_name_the_option(booked: Flask, args: list[str], option: str) -> None:
    for command in ("check", "rebuild"):
        result = booked.test_cli_runner().invoke(args=["stats", command, *args])
        assert result.exit_code == 2, result.output
        assert option in result.output


def test_rebuild_prints_each_month(booked: Flask) -> None:
    result = booked.test_cli_runner().invoke(
        args=["stats", "rebuild", "--from", "2030-01-01", "--to", "2030-03-01"]
    )
    assert result.exit_code == 0, result.output
    assert "2030-01-01 – 2030-01-31: 1 bookings, 1 completed" in result.output
    assert "2030-02-01 – 2030-02-28: 1 bookings, 0 completed" in result.output
