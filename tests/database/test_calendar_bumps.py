"""A booking written by SQL from anywhere changes its resource's calendar version
(the calendar caches compare it), on both databases: insert, a change of status,
time or resource (both resources), delete; a change of another column does not."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text

from labshare.extensions import db
from labshare.models import BookingStatus

START = dt.datetime(2030, 3, 5, 1, tzinfo=dt.UTC)


def _versions(*ids: int) -> list[int]:
    with db.engine.connect() as conn:
        return [
            conn.execute(
                text("SELECT calendar_version FROM resource WHERE id = :i"), {"i": i}
            ).scalar_one()
            for i in ids
        ]


def _run(sql: str, **params: Any) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


@pytest.fixture
def two(make_instrument: Any, make_booking: Any) -> tuple[int, int, int]:
    first, second = make_instrument(), make_instrument()
    booking = make_booking(
        resource=first, start=START, end=START + dt.timedelta(hours=1), status=BookingStatus.PENDING
    )
    db.session.commit()
    return first.id, second.id, booking.id


@pytest.mark.parametrize(
    ("change", "bumped"),
    [
        ("UPDATE booking SET status = 'cancelled' WHERE id = :b", (True, False)),
        ("UPDATE booking SET end_at = end_at WHERE id = :b", (True, False)),
        ("UPDATE booking SET resource_id = :r2 WHERE id = :b", (True, True)),
        ("DELETE FROM booking WHERE id = :b", (True, False)),
        ("UPDATE booking SET purpose = 'another' WHERE id = :b", (False, False)),
    ],
)
def test_a_booking_change_bumps_the_calendars_it_moves(
    two: tuple[int, int, int], change: str, bumped: tuple[bool, bool]
) -> None:
    r1, r2, booking_id = two
    before = _versions(r1, r2)
    params = {"b": booking_id, "r2": r2} if ":r2" in change else {"b": booking_id}
    _run(change, **params)
    after = _versions(r1, r2)
    assert tuple(a != b for a, b in zip(after, before, strict=True)) == bumped


def test_a_new_booking_bumps_its_resource_only(two: tuple[int, int, int]) -> None:
    r1, r2, _ = two
    before = _versions(r1, r2)
    with db.engine.begin() as conn:
        row = conn.execute(text("SELECT * FROM booking")).mappings().one()
        values = {k: v for k, v in row.items() if k != "id"}
        values["start_at"] = START + dt.timedelta(days=1)
        values["end_at"] = START + dt.timedelta(days=1, hours=1)
        conn.execute(
            text(
                f"INSERT INTO booking ({', '.join(values)}) "
                f"VALUES ({', '.join(':' + k for k in values)})"
            ),
            values,
        )
    after = _versions(r1, r2)
    assert after[0] != before[0]
    assert after[1] == before[1]
