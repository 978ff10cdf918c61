"""The iCalendar feed behind each user's secret link."""

from __future__ import annotations

import datetime as dt
from typing import Any

import icalendar

from labshare.accounts.tokens import calendar_token
from labshare.models import BookingStatus, Role
from labshare.timeutil import set_clock
from tests.helpers import NOW


def _feed(client: Any, db: Any, user: Any) -> icalendar.Calendar:
    token = calendar_token(user)
    db.session.commit()
    response = client.get(f"/calendar/{token}.ics")
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    assert b"\r\n" in response.data  # RFC 5545 line endings
    return icalendar.Calendar.from_ical(response.data)


def _events(cal: icalendar.Calendar) -> dict[str, Any]:
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def test_feed_parses_with_timezone_and_stable_uids(
    db: Any,
    client: Any,
    make_institute: Any,
    make_instrument: Any,
    make_user: Any,
    make_booking: Any,
) -> None:
    set_clock(lambda: NOW)
    berlin = make_institute(timezone="Europe/Berlin")
    inst = make_instrument(institute=berlin)
    sme = make_user(Role.SME)
    colleague = make_user(Role.SME, company=sme.company)
    start = dt.datetime(2030, 7, 1, 8, 0, tzinfo=dt.UTC)  # 10:00 summer time in Berlin
    kept = make_booking(resource=inst, user=sme, start=start, status=BookingStatus.APPROVED)
    cancelled = make_booking(
        resource=inst,
        user=sme,
        start=start + dt.timedelta(days=1),
        status=BookingStatus.CANCELLED,
    )
    theirs = make_booking(resource=inst, user=colleague, start=start + dt.timedelta(days=2))
    db.session.commit()

    cal = _feed(client, db, sme)
    assert cal["VERSION"] == "2.0"
    zones = [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")]
    assert zones == ["Europe/Berlin"]
    events = _events(cal)
    assert len(events) == 2  # an SME's own bookings only, not the colleague's
    assert all(str(theirs.id) not in uid.split("@")[0].split("-") for uid in events)
    first = next(e for e in events.values() if e["DTSTART"].dt == start)
    assert str(first["STATUS"]) == "CONFIRMED"
    assert first["DTSTART"].dt.utcoffset() == dt.timedelta(hours=2)
    assert str(first["DTSTART"].params["TZID"]) == "Europe/Berlin"
    assert first["DTEND"].dt == kept.end_at
    assert inst.name in str(first["SUMMARY"])
    gone = next(e for e in events.values() if e["DTSTART"].dt == cancelled.start_at)
    assert str(gone["STATUS"]) == "CANCELLED"

    # UIDs do not change when the booking changes.
    kept.status = BookingStatus.CANCELLED
    db.session.commit()
    again = _events(_feed(client, db, sme))
    assert set(again) == set(events)
    assert str(again[str(first["UID"])]["STATUS"]) == "CANCELLED"
    assert int(again[str(first["UID"])]["SEQUENCE"]) > int(first["SEQUENCE"])


def test_staff_feed_has_the_institutes_bookings(
    db: Any, client: Any, make_instrument: Any, make_user: Any, make_booking: Any
) -> None:
    set_clock(lambda: NOW)
    inst = make_instrument()
    elsewhere = make_instrument()
    staff = make_user(Role.STAFF, institute=inst.institute)
    ours = make_booking(resource=inst)
    make_booking(resource=elsewhere)
    db.session.commit()
    events = _events(_feed(client, db, staff))
    assert len(events) == 1
    (event,) = events.values()
    assert event["DTSTART"].dt == ours.start_at
    assert str(event["STATUS"]) == "TENTATIVE"  # pending


def test_unknown_or_reset_link_is_404(db: Any, client: Any, make_user: Any) -> None:
    assert client.get("/calendar/not-a-real-token.ics").status_code == 404
    user = make_user(Role.SME)
    token = calendar_token(user)
    user.active = False
    db.session.commit()
    assert client.get(f"/calendar/{token}.ics").status_code == 404


def test_old_bookings_drop_out(
    db: Any, client: Any, make_instrument: Any, make_user: Any, make_booking: Any
) -> None:
    set_clock(lambda: NOW)
    user = make_user(Role.SME)
    make_booking(user=user, start=NOW - dt.timedelta(days=400))
    recent = make_booking(user=user, start=NOW - dt.timedelta(days=10))
    db.session.commit()
    events = _events(_feed(client, db, user))
    assert [e["DTSTART"].dt for e in events.values()] == [recent.start_at]
