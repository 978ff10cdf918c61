"""Institute staff pages: dashboard, approve/reject, usage, catalogue management."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from labshare.models import (
    Booking,
    BookingRules,
    BookingStatus,
    Closure,
    Instrument,
    Lab,
    Qualification,
    Role,
    UsageRecord,
)
from labshare.timeutil import set_clock
from tests.helpers import count_rows

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)  # Tuesday 08:00 in Shanghai


@pytest.fixture
def world(app: Any, db: Any, make_institute: Any, make_instrument: Any, make_user: Any) -> Any:
    set_clock(lambda: NOW)
    institute = make_institute()
    other_institute = make_institute()
    instrument = make_instrument(institute=institute)
    lab = instrument.lab
    other_instrument = make_instrument(institute=other_institute)
    sme = make_user(Role.SME)
    other_sme = make_user(Role.SME)
    staff = make_user(Role.STAFF, institute=institute)
    other_staff = make_user(Role.STAFF, institute=other_institute)
    admin = make_user(Role.ADMIN)
    db.session.commit()

    class W:
        pass

    w = W()
    w.__dict__.update(locals())
    return w


def pending(w: Any, make_booking: Any, db: Any, **kw: Any) -> Booking:
    kw.setdefault("resource", w.instrument)
    kw.setdefault("user", w.sme)
    kw.setdefault("start", dt.datetime(2030, 1, 3, 2, 0, tzinfo=dt.UTC))
    booking = make_booking(**kw)
    db.session.commit()
    return booking


ROLES = ["anonymous", "sme", "staff", "other_staff", "admin"]
STAFF_ONLY = {"anonymous": 302, "sme": 403, "staff": 200, "other_staff": 200, "admin": 403}
OWN_ONLY = {"anonymous": 302, "sme": 403, "staff": 200, "other_staff": 404, "admin": 403}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/manage", STAFF_ONLY),
        ("/manage/resources", STAFF_ONLY),
        ("/manage/labs/new", STAFF_ONLY),
        ("/manage/instruments/new", STAFF_ONLY),
        ("/manage/import", STAFF_ONLY),
        ("/manage/labs/{lab}/edit", OWN_ONLY),
        ("/manage/labs/{lab}/hours", OWN_ONLY),
        ("/manage/instruments/{instrument}/edit", OWN_ONLY),
        ("/manage/instruments/{instrument}/qualifications", OWN_ONLY),
        ("/manage/resources/{instrument}/rules", OWN_ONLY),
        ("/manage/resources/{lab}/closures", OWN_ONLY),
        ("/manage/bookings/{booking}/reject", OWN_ONLY),
        ("/manage/bookings/{booking}/usage", OWN_ONLY),
    ],
)
@pytest.mark.parametrize("role", ROLES)
def test_page_access(
    client: Any,
    login: Any,
    world: Any,
    make_booking: Any,
    db: Any,
    path: str,
    expected: dict[str, int],
    role: str,
) -> None:
    booking = pending(world, make_booking, db)
    if role != "anonymous":
        login(getattr(world, role))
    url = path.format(lab=world.lab.id, instrument=world.instrument.id, booking=booking.id)
    response = client.get(url)
    assert response.status_code == expected[role], (url, role)
    if expected[role] == 302:
        assert "/login" in response.headers["Location"]


def test_lab_id_is_not_an_instrument(client: Any, login: Any, world: Any) -> None:
    login(world.staff)
    assert client.get(f"/manage/labs/{world.instrument.id}/edit").status_code == 404
    assert client.get(f"/manage/instruments/{world.lab.id}/edit").status_code == 404


# -- the dashboard ------------------------------------------------------------------------


def test_dashboard_shows_queue_with_conflicts_and_history(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    request = pending(world, make_booking, db)
    pending(
        world,
        make_booking,
        db,
        status=BookingStatus.COMPLETED,
        start=dt.datetime(2029, 12, 1, 2, tzinfo=dt.UTC),
    )
    pending(world, make_booking, db, resource=world.other_instrument, user=world.other_sme)
    db.session.add(
        Closure(
            resource_id=world.lab.id,
            start_at=dt.datetime(2030, 1, 3, 0, tzinfo=dt.UTC),
            end_at=dt.datetime(2030, 1, 3, 3, tzinfo=dt.UTC),
        )
    )
    db.session.commit()
    login(world.staff)
    html = client.get("/manage").get_data(as_text=True)
    assert f'id="request-{request.id}"' in html
    assert "A closure falls in this time." in html
    assert "Completed" in html  # the company's history here
    assert world.other_sme.company.name not in html  # another institute's request


def test_approve(client: Any, login: Any, world: Any, db: Any, make_booking: Any) -> None:
    booking = pending(world, make_booking, db)
    login(world.staff)
    response = client.post(f"/manage/bookings/{booking.id}/approve")
    assert response.status_code == 302
    db.session.refresh(booking)
    assert booking.status == BookingStatus.APPROVED
    assert "approved" in client.get("/manage").get_data(as_text=True)


def test_approve_refused_by_the_engine_is_shown(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    booking = pending(world, make_booking, db)
    db.session.add(
        Closure(
            resource_id=world.instrument.id,
            start_at=dt.datetime(2030, 1, 3, 0, tzinfo=dt.UTC),
            end_at=dt.datetime(2030, 1, 4, 0, tzinfo=dt.UTC),
        )
    )
    db.session.commit()
    login(world.staff)
    response = client.post(f"/manage/bookings/{booking.id}/approve", follow_redirects=True)
    assert "was not approved" in response.get_data(as_text=True)
    db.session.refresh(booking)
    assert booking.status == BookingStatus.PENDING


def test_other_institute_cannot_approve_or_reject(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    booking = pending(world, make_booking, db)
    login(world.other_staff)
    assert client.post(f"/manage/bookings/{booking.id}/approve").status_code == 404
    assert (
        client.post(f"/manage/bookings/{booking.id}/reject", data={"reason": "x"}).status_code
        == 404
    )
    db.session.refresh(booking)
    assert booking.status == BookingStatus.PENDING


def test_reject_needs_a_reason(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    booking = pending(world, make_booking, db)
    login(world.staff)
    response = client.post(f"/manage/bookings/{booking.id}/reject", data={"reason": "  "})
    assert response.status_code == 422
    assert 'id="reason-error"' in response.get_data(as_text=True)
    db.session.refresh(booking)
    assert booking.status == BookingStatus.PENDING
    response = client.post(f"/manage/bookings/{booking.id}/reject", data={"reason": "仪器维修"})
    assert response.status_code == 302
    db.session.refresh(booking)
    assert booking.status == BookingStatus.REJECTED
    assert booking.decision_reason == "仪器维修"


def test_usage_form_records_and_completes(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    booking = pending(world, make_booking, db, status=BookingStatus.APPROVED)
    login(world.staff)
    page = client.get(f"/manage/bookings/{booking.id}/usage").get_data(as_text=True)
    assert 'value="2030-01-03T10:00"' in page  # check-in defaults to the start, local time
    data = {
        "checked_in_at": "2030-01-03T10:05",
        "checked_out_at": "2030-01-03T11:50",
        "service_type": "calibration",
        "samples_count": "4",
        "problem_solved": "yes",
        "notes": "ok",
    }
    bad = client.post(
        f"/manage/bookings/{booking.id}/usage", data={**data, "checked_out_at": "2030-01-03T09:00"}
    )
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "check-out time must be after" in html.split('id="checked_out_at-error"', 1)[1]
    assert 'value="2030-01-03T10:05"' in html
    assert count_rows(UsageRecord) == 0
    db.session.refresh(booking)
    assert booking.status == BookingStatus.APPROVED
    set_clock(lambda: booking.end_at)  # recorded once it has happened
    assert client.post(f"/manage/bookings/{booking.id}/usage", data=data).status_code == 302
    usage = db.session.scalars(select(UsageRecord)).one()
    assert usage.checked_in_at == dt.datetime(2030, 1, 3, 2, 5, tzinfo=dt.UTC)
    assert usage.samples_count == 4 and usage.problem_solved is True
    db.session.refresh(booking)
    assert booking.status == BookingStatus.COMPLETED


# -- labs and instruments -----------------------------------------------------------------

LAB = {
    "name": "热工开放实验室",
    "name_en": "Thermal lab",
    "field": "thermal",
    "status": "available",
    "fee_per_hour": "0",
    "fee_waiver_percent": "0",
    "location": "B 栋",
    "capacity": "2",
}


def test_create_lab_and_bad_input(client: Any, login: Any, world: Any, db: Any) -> None:
    login(world.staff)
    before = count_rows(Lab)
    bad = client.post("/manage/labs/new", data={**LAB, "capacity": "0"})
    assert bad.status_code == 422
    assert 'id="capacity-error"' in bad.get_data(as_text=True)
    assert "热工开放实验室" in bad.get_data(as_text=True)
    assert count_rows(Lab) == before
    response = client.post("/manage/labs/new", data=LAB)
    assert response.status_code == 302
    lab = db.session.scalars(select(Lab).where(Lab.name == "热工开放实验室")).one()
    assert lab.institute_id == world.institute.id and lab.capacity == 2


def test_edit_other_institutes_lab_is_404(client: Any, login: Any, world: Any, db: Any) -> None:
    login(world.other_staff)
    assert client.post(f"/manage/labs/{world.lab.id}/edit", data=LAB).status_code == 404
    db.session.refresh(world.lab)
    assert world.lab.name != LAB["name"]


INSTRUMENT = {
    "name": "铂电阻温度计",
    "field": "thermal",
    "status": "available",
    "fee_per_hour": "80",
    "fee_waiver_percent": "50",
    "measurand": "temperature",
    "unit": "°C",
    "range_min": "-80",
    "range_max": "300",
    "accuracy": "±0.01 °C",
    "calibration_valid_until": "2030-06-30",
    "certificate_number": "CAL-2029-001",
}


def test_create_instrument_normalises_capability(
    client: Any, login: Any, world: Any, db: Any
) -> None:
    login(world.staff)
    data = {**INSTRUMENT, "lab_id": str(world.lab.id)}
    response = client.post("/manage/instruments/new", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    ins = db.session.scalars(select(Instrument).where(Instrument.name == "铂电阻温度计")).one()
    assert ins.range_min_base == pytest.approx(193.15)
    assert ins.calibration_valid_until == dt.date(2030, 6, 30)
    assert ins.fee_per_hour == Decimal("80.00")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"unit": "MPa"}, "unit"),
        ({"range_max": "-100"}, "range_max"),
        ({"name": ""}, "name"),
        ({"fee_waiver_percent": "150"}, "fee_waiver_percent"),
    ],
)
def test_bad_instrument_input_is_shown_and_writes_nothing(
    client: Any, login: Any, world: Any, db: Any, change: dict[str, str], field: str
) -> None:
    login(world.staff)
    before = count_rows(Instrument)
    response = client.post(
        "/manage/instruments/new", data={**INSTRUMENT, "lab_id": str(world.lab.id), **change}
    )
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert count_rows(Instrument) == before


def test_instrument_in_another_institutes_lab_is_refused(
    client: Any, login: Any, world: Any, db: Any
) -> None:
    login(world.staff)
    before = count_rows(Instrument)
    response = client.post(
        "/manage/instruments/new",
        data={**INSTRUMENT, "lab_id": str(world.other_instrument.lab_id)},
    )
    assert response.status_code == 422
    assert 'id="lab_id-error"' in response.get_data(as_text=True)
    assert count_rows(Instrument) == before


def test_edit_instrument_calibration(client: Any, login: Any, world: Any, db: Any) -> None:
    login(world.staff)
    page = client.get(f"/manage/instruments/{world.instrument.id}/edit").get_data(as_text=True)
    assert 'value="2099-12-31"' in page
    data = {**INSTRUMENT, "lab_id": str(world.lab.id), "unit": "K", "range_min": "200"}
    response = client.post(f"/manage/instruments/{world.instrument.id}/edit", data=data)
    assert response.status_code == 302
    db.session.refresh(world.instrument)
    assert world.instrument.unit == "K" and world.instrument.range_min_base == 200
    assert world.instrument.certificate_number == "CAL-2029-001"


# -- rules, hours, closures, qualifications -----------------------------------------------

RULES = {
    "slot_minutes": "60",
    "min_minutes": "60",
    "max_minutes": "240",
    "lead_time_hours": "48",
    "horizon_days": "30",
    "requires_approval": "y",
    "max_active_per_company": "2",
    "cancel_deadline_hours": "12",
}


def test_rules(client: Any, login: Any, world: Any, db: Any) -> None:
    login(world.staff)
    bad = client.post(
        f"/manage/resources/{world.instrument.id}/rules", data={**RULES, "max_minutes": "30"}
    )
    assert bad.status_code == 422
    assert 'id="max_minutes-error"' in bad.get_data(as_text=True)
    assert count_rows(BookingRules) == 0
    ok = client.post(f"/manage/resources/{world.instrument.id}/rules", data=RULES)
    assert ok.status_code == 302
    rules = db.session.scalars(select(BookingRules)).one()
    assert rules.resource_id == world.instrument.id and rules.lead_time_hours == 48
    assert client.post(f"/manage/resources/{world.instrument.id}/rules/clear").status_code == 302
    assert count_rows(BookingRules) == 0


def test_opening_hours(client: Any, login: Any, world: Any, db: Any) -> None:
    login(world.staff)
    url = f"/manage/labs/{world.lab.id}/hours"
    bad = client.post(url, data={"day_0": "08:00-12:00, 11:00-13:00"})
    assert bad.status_code == 422
    assert "must not overlap" in bad.get_data(as_text=True).split('id="day_0-error"', 1)[1]
    garbage = client.post(url, data={"day_1": "morning"})
    assert garbage.status_code == 422 and 'id="day_1-error"' in garbage.get_data(as_text=True)
    db.session.refresh(world.lab)
    assert len(world.lab.opening_periods) == 7  # unchanged
    ok = client.post(url, data={"day_0": "08:30-12:00, 13:30-17:00", "day_2": "09:00-24:00"})
    assert ok.status_code == 302
    db.session.expire_all()
    lab = db.session.get(Lab, world.lab.id)
    assert [(p.weekday, p.opens.isoformat("minutes")) for p in lab.opening_periods] == [
        (0, "08:30"),
        (0, "13:30"),
        (2, "09:00"),
    ]


def test_closures(client: Any, login: Any, world: Any, db: Any, make_booking: Any) -> None:
    pending(world, make_booking, db)
    login(world.staff)
    url = f"/manage/resources/{world.instrument.id}/closures"
    bad = client.post(
        url, data={"start": "2030-01-03T12:00", "end": "2030-01-03T08:00", "kind": "holiday"}
    )
    assert bad.status_code == 422 and 'id="end-error"' in bad.get_data(as_text=True)
    assert count_rows(Closure) == 0
    data = {"start": "2030-01-03T08:00", "end": "2030-01-03T18:00", "kind": "maintenance"}
    # the bookings it covers are shown first, and nothing is written yet
    shown = client.post(url, data=data)
    html = shown.get_data(as_text=True)
    assert shown.status_code == 200 and "1 booking falls in this closure" in html
    assert 'name="on_bookings"' in html
    assert count_rows(Closure) == 0
    bad_choice = client.post(url, data={**data, "on_bookings": "ignore"})
    assert bad_choice.status_code == 422 and count_rows(Closure) == 0
    ok = client.post(
        url, data={**data, "on_bookings": "cancel", "message": "停电检修"}, follow_redirects=True
    )
    assert "their companies were told" in ok.get_data(as_text=True) or "was told" in ok.get_data(
        as_text=True
    )
    assert db.session.scalars(select(Booking)).one().status == BookingStatus.CANCELLED
    closure = db.session.scalars(select(Closure)).one()
    assert closure.start_at == dt.datetime(2030, 1, 3, 0, tzinfo=dt.UTC)
    login(world.other_staff)
    assert client.post(f"/manage/closures/{closure.id}/delete").status_code == 404
    login(world.staff)
    assert client.post(f"/manage/closures/{closure.id}/delete").status_code == 302
    assert count_rows(Closure) == 0


def test_qualifications(client: Any, login: Any, world: Any, db: Any) -> None:
    login(world.staff)
    url = f"/manage/instruments/{world.instrument.id}/qualifications"
    unknown = client.post(url, data={"email": "nobody@example.com"})
    assert unknown.status_code == 422 and 'id="email-error"' in unknown.get_data(as_text=True)
    not_sme = client.post(url, data={"email": world.other_staff.email})
    assert not_sme.status_code == 422 and 'id="email-error"' in not_sme.get_data(as_text=True)
    assert count_rows(Qualification) == 0
    assert client.post(url, data={"email": world.sme.email.upper()}).status_code == 302
    assert count_rows(Qualification) == 1
    assert world.sme.name in client.get(url).get_data(as_text=True)
    revoke = f"/manage/instruments/{world.instrument.id}/qualifications/{world.sme.id}/revoke"
    assert client.post(revoke).status_code == 302
    assert count_rows(Qualification) == 0
