"""The lean path reads the bookings around a slot by an index range bounded on both
sides (a booking is never longer than MAX_BOOKING_SPAN), not the resource's whole
history; a booking that began up to that span before the slot still blocks it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from labshare.booking.rules import MAX_BOOKING_SPAN
from labshare.extensions import db as _db
from labshare.models import BookingStatus, Role
from labshare.timeutil import set_clock
from tests.helpers import NOW, START, bearer, sent_statements
from tests.perf.test_perf_booking_path import _create


def test_a_booking_that_began_a_max_span_before_still_blocks(client: Any, db: Any) -> None:
    from tests.factories import make_booking, make_instrument, make_user

    set_clock(lambda: NOW - MAX_BOOKING_SPAN)
    inst = make_instrument()
    sme = make_user(Role.SME)
    slot = dt.datetime.fromisoformat(START).astimezone(dt.UTC)
    make_booking(
        resource=inst,
        start=slot - MAX_BOOKING_SPAN + dt.timedelta(hours=1),
        end=slot + dt.timedelta(hours=1),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()
    set_clock(lambda: NOW)
    headers = bearer(sme)
    response, _sent = _create(client, inst.id, headers)
    assert response.status_code == 409, response.get_json()


def test_the_busy_read_is_bounded_below(client: Any, db: Any) -> None:
    from tests.factories import make_instrument, make_user

    set_clock(lambda: NOW)
    inst = make_instrument()
    sme = make_user(Role.SME)
    db.session.commit()
    resource_id, headers = inst.id, bearer(sme)
    _db.session.remove()
    with sent_statements() as sent:
        response = client.post(
            "/api/v1/bookings",
            json={
                "resource_id": resource_id,
                "start": START,
                "end": START.replace("09:", "10:"),
                "purpose": "p",
            },
            headers=headers,
        )
    assert response.status_code == 201, response.get_json()
    around = next(s for s in sent if s.startswith("SELECT 0, booking.start_at"))
    busy_arm = around.split(" UNION ALL ")[0]
    assert busy_arm.count("booking.start_at <") == 1 and busy_arm.count("booking.start_at >") == 1
