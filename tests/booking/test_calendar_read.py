"""A calendar's first render reads everything in one statement over a widened window
and keeps the shape of a week per lab shape (booking/calendar_read.py,
calendar_cache.py): the document is exactly what the availability service computes
from the ORM with its own exact queries, for bookings right at and beyond the
buffer's edge, a buffer longer than the widened window, offers, closures of the
lab and of the instrument, a shared lab, and labs whose hours differ in the same
week; and the rows sent through the driver are the rows SQLAlchemy gives."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app

from labshare.booking import calendar_cache, calendar_read
from labshare.booking.availability import availability
from labshare.extensions import db as _db
from labshare.models import (
    BookingStatus,
    Closure,
    Resource,
    ResourceStatus,
    Role,
    WaitlistEntry,
)
from labshare.timeutil import set_clock
from tests.factories import weekday_hours

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
MONDAY = dt.datetime(2030, 1, 7, tzinfo=SH)
START = MONDAY.astimezone(dt.UTC)
END = (MONDAY + dt.timedelta(days=7)).astimezone(dt.UTC)


def at(hours: float) -> dt.datetime:
    """``hours`` after Monday 00:00 local (negative: before the window)."""
    return START + dt.timedelta(hours=hours)


def env_of(db: Any, make_lab: Any, make_instrument: Any, make_user: Any, make_booking: Any) -> Any:
    set_clock(lambda: NOW)
    lab = make_lab(hours=weekday_hours("08:00", "18:00", range(5)), capacity=2)
    night_lab = make_lab(hours=weekday_hours("22:00", "06:00"), capacity=1)
    buffered = make_instrument(lab=lab, rules={"buffer_minutes": 90})
    long_buffer = make_instrument(lab=lab, rules={"buffer_minutes": 3 * 24 * 60})  # > MARGIN
    plain = make_instrument(lab=night_lab)
    broken = make_instrument(lab=lab, status=ResourceStatus.MAINTENANCE)
    expiring = make_instrument(lab=lab, calibration_valid_until=dt.date(2030, 1, 9))
    user = make_user(Role.SME)
    db.session.flush()
    ok = BookingStatus.APPROVED
    for resource, spans in (
        # in the window; ending 30 min before it (inside the 90 min buffer); ending
        # 3 h before it (outside the buffer, inside the widened read)
        (buffered, [(9, 11), (-0.5 - 2, -0.5), (-5, -3), (7 * 24 + 1, 7 * 24 + 2)]),
        (long_buffer, [(9, 11), (-60, -59), (7 * 24 + 40, 7 * 24 + 41)]),
        (plain, [(-2, 1), (23, 24 + 5)]),
        (lab, [(9, 12), (10, 11), (10.5, 13), (-3, -1)]),
        (expiring, [(30, 31)]),
    ):
        for s, e in spans:
            make_booking(resource=resource, user=user, start=at(s), end=at(e), status=ok)
    make_booking(
        resource=buffered, user=user, start=at(33), end=at(34), status=BookingStatus.CANCELLED
    )
    db.session.add(Closure(resource_id=lab.id, start_at=at(24 + 8), end_at=at(24 + 12)))
    db.session.add(Closure(resource_id=buffered.id, start_at=at(48 + 14), end_at=at(48 + 15)))
    db.session.add(Closure(resource_id=plain.id, start_at=at(-30), end_at=at(-20)))  # before
    for resource, (s, e) in ((buffered, (72 + 9, 72 + 10)), (long_buffer, (72 + 9, 72 + 10))):
        db.session.add(
            WaitlistEntry(
                resource_id=resource.id,
                company_id=user.company_id,
                user_id=user.id,
                start_at=at(s),
                end_at=at(e),
                purpose="waiting",
                status="offered",
                offered_at=NOW,
                offer_expires_at=NOW + dt.timedelta(days=30),
            )
        )
    db.session.commit()
    return SimpleNamespace(
        ids=[buffered.id, long_buffer.id, plain.id, lab.id, night_lab.id, broken.id, expiring.id]
    )


def service_body(rid: int) -> bytes:
    """What the availability service computes from the ORM, with its own queries."""
    resource = _db.session.get(Resource, rid)
    body = calendar_cache.render(availability(resource, START, END))
    _db.session.rollback()
    return current_app.json.dumps(body).encode() + b"\n"


def test_the_document_is_what_the_service_computes(
    app: Any, db: Any, make_lab: Any, make_instrument: Any, make_user: Any, make_booking: Any
) -> None:
    env = env_of(db, make_lab, make_instrument, make_user, make_booking)
    store = calendar_cache.cache_of(app)
    store.clear()
    # one after the other without clearing: the second lab's week must not be the first's
    for rid in env.ids:
        doc = calendar_cache.calendar_document(rid, MONDAY, MONDAY + dt.timedelta(days=7))
        _db.session.rollback()
        assert doc.body == service_body(rid), rid
        reasons = {b["reason"] for b in json.loads(doc.body)["busy"]}
        assert reasons, rid
    first = json.loads(
        calendar_cache.calendar_document(env.ids[0], MONDAY, MONDAY + dt.timedelta(days=7)).body
    )
    assert {"booked", "buffer", "closure", "closed", "offered"} <= {
        b["reason"] for b in first["busy"]
    }


def test_the_rows_through_the_driver_are_the_rows_sqlalchemy_gives(
    app: Any, db: Any, make_lab: Any, make_instrument: Any, make_user: Any, make_booking: Any
) -> None:
    env = env_of(db, make_lab, make_instrument, make_user, make_booking)
    for rid in env.ids:
        params = calendar_read.params(rid, START, END, NOW)
        with _db.engine.connect() as conn:
            raw = calendar_read.execute(conn, calendar_read.CALENDAR, params)
            subject = calendar_read.execute(conn, calendar_read.SUBJECT, {"rid": rid})
        typed = [tuple(r) for r in _db.session.execute(calendar_read.CALENDAR, params)]
        typed_subject = [tuple(r) for r in _db.session.execute(calendar_read.SUBJECT, {"rid": rid})]
        _db.session.rollback()
        key = repr
        assert sorted(map(tuple, raw), key=key) == sorted(typed, key=key)
        assert [tuple(r) for r in subject] == typed_subject
        for a, b in zip(sorted(raw, key=key), sorted(typed, key=key), strict=True):
            assert [type(x) for x in a] == [type(x) for x in b]
        assert raw[0]._fields == tuple(_db.session.execute(calendar_read.CALENDAR, params).keys())
        _db.session.rollback()


def test_an_unknown_resource_has_no_document(app: Any, db: Any) -> None:
    with _db.engine.connect() as conn:
        store = calendar_cache.cache_of(app)
        assert calendar_cache.document_of(store, conn, 999_999, START, END, json.dumps) is None
