"""Booking policies: buffer time, quotas per period, late cancellation
and the no-show record (with its approval threshold). Services, API and staff
pages, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from labshare.booking.availability import availability
from labshare.booking.bookings import approve_booking, cancel_booking, create_booking
from labshare.booking.calendar_cache import cache, calendar_document
from labshare.booking.policies import quotas
from labshare.booking.policies.no_shows import no_show_count
from labshare.campaign.stats import campaign_totals
from labshare.errors import NotAllowed, NotFound, RuleViolation, SlotTaken, ValidationFailed
from labshare.models import (
    AuditLog,
    Booking,
    BookingQuota,
    BookingRules,
    BookingStatus,
    Role,
)
from labshare.timeutil import set_clock
from tests.helpers import bearer, check_schema, error_of

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)  # Tuesday 08:00 in Shanghai
RULES: dict[str, Any] = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 600,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "requires_approval": False,
    "max_active_per_company": 100,
    "cancel_deadline_hours": 0,
}


def t(month: int, day: int, h: int, mi: int = 0, tz: ZoneInfo = SH) -> dt.datetime:
    """2030-<month>-<day> h:mi local, as UTC."""
    return dt.datetime(2030, month, day, h, mi, tzinfo=tz).astimezone(dt.UTC)


@pytest.fixture
def env(
    db: Any, make_institute: Any, make_lab: Any, make_instrument: Any, make_user: Any
) -> SimpleNamespace:
    set_clock(lambda: NOW)
    institute = make_institute()
    lab = make_lab(institute=institute, rules=dict(RULES))
    inst = make_instrument(lab=lab)  # follows the lab's rules
    inst2 = make_instrument(lab=lab)
    other_lab = make_lab(institute=institute, rules=dict(RULES))
    other_inst = make_instrument(lab=other_lab)
    sme = make_user(Role.SME)
    colleague = make_user(Role.SME, company=sme.company)
    other_sme = make_user(Role.SME)
    staff = make_user(Role.STAFF, institute=institute)
    other_staff = make_user(Role.STAFF)
    db.session.commit()
    return SimpleNamespace(**locals())


def set_rules(db: Any, resource: Any, **changes: Any) -> None:
    row = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == resource.id))
    if row is None:
        row = BookingRules(resource_id=resource.id, **RULES)
        db.session.add(row)
    for key, value in changes.items():
        setattr(row, key, value)
    db.session.commit()


def book(env: Any, resource: Any, start: dt.datetime, end: dt.datetime, user: Any = None) -> Any:
    booking = create_booking(resource, user or env.sme, start, end, purpose="校准")
    env.db.session.commit()
    return booking


# -- buffer time --------------------------------------------------------------------------


def test_buffer_refuses_a_booking_too_close_and_allows_the_edge(db, env):
    set_rules(db, env.lab, buffer_minutes=30)
    book(env, env.inst, t(1, 7, 10), t(1, 7, 11))
    for start, end in (
        (t(1, 7, 11), t(1, 7, 12)),
        (t(1, 7, 9), t(1, 7, 10)),
        (t(1, 7, 11), t(1, 7, 11, 30)),
        (t(1, 7, 9, 30), t(1, 7, 10)),
    ):
        with pytest.raises(SlotTaken) as caught:
            book(env, env.inst, start, end, user=env.other_sme)
        assert "buffer" in str(caught.value.message)
        db.session.rollback()
    with pytest.raises(SlotTaken) as overlap:  # a plain overlap keeps its message
        book(env, env.inst, t(1, 7, 10, 30), t(1, 7, 11, 30), user=env.other_sme)
    assert "buffer" not in str(overlap.value.message)
    db.session.rollback()
    # Exactly at the buffer's edge, on both sides.
    book(env, env.inst, t(1, 7, 11, 30), t(1, 7, 12), user=env.other_sme)
    book(env, env.inst, t(1, 7, 9), t(1, 7, 9, 30), user=env.other_sme)
    # Another instrument of the lab is not affected.
    book(env, env.inst2, t(1, 7, 11), t(1, 7, 12), user=env.other_sme)


def test_no_buffer_by_default_and_cancelled_bookings_keep_none(db, env):
    first = book(env, env.inst, t(1, 7, 10), t(1, 7, 11))
    book(env, env.inst, t(1, 7, 11), t(1, 7, 12), user=env.other_sme)  # default 0: back to back
    set_rules(db, env.lab, buffer_minutes=60)
    cancel_booking(first, env.staff)
    db.session.commit()
    book(env, env.inst, t(1, 7, 9), t(1, 7, 10), user=env.other_sme)  # first's buffer is gone


def test_instrument_rules_override_the_labs_buffer(db, env):
    set_rules(db, env.lab, buffer_minutes=60)
    set_rules(db, env.inst, buffer_minutes=0)
    book(env, env.inst, t(1, 7, 10), t(1, 7, 11))
    book(env, env.inst, t(1, 7, 11), t(1, 7, 12), user=env.other_sme)


def test_buffer_does_not_apply_to_labs_of_capacity_above_one(db, env, make_lab):
    big = make_lab(institute=env.institute, capacity=2, rules={**RULES, "buffer_minutes": 60})
    db.session.commit()
    book(env, big, t(1, 7, 10), t(1, 7, 11))
    book(env, big, t(1, 7, 11), t(1, 7, 12), user=env.other_sme)
    a = availability(big, t(1, 7, 0), t(1, 8, 0))
    assert all(i.reason != "buffer" for i in a.busy)


def test_buffer_applies_to_a_single_place_lab(db, env, make_lab):
    single = make_lab(institute=env.institute, capacity=1, rules={**RULES, "buffer_minutes": 30})
    db.session.commit()
    book(env, single, t(1, 7, 10), t(1, 7, 11))
    with pytest.raises(SlotTaken):
        book(env, single, t(1, 7, 11), t(1, 7, 12), user=env.other_sme)


def test_approval_rechecks_the_buffer(db, env, make_booking):
    set_rules(db, env.lab, buffer_minutes=30, requires_approval=True)
    make_booking(
        resource=env.inst,
        user=env.other_sme,
        start=t(1, 7, 10),
        end=t(1, 7, 11),
        status=BookingStatus.APPROVED,
    )
    waiting = make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 7, 11),
        end=t(1, 7, 12),
        status=BookingStatus.PENDING,
    )
    db.session.commit()
    with pytest.raises(SlotTaken):
        approve_booking(waiting, env.staff)


def test_availability_shows_the_buffer(db, env):
    set_rules(db, env.lab, buffer_minutes=30)
    book(env, env.inst, t(1, 7, 10), t(1, 7, 11))
    a = availability(env.inst, t(1, 7, 0), t(1, 8, 0))
    busy = [(i.start, i.end, i.reason) for i in a.busy]
    assert (t(1, 7, 9, 30), t(1, 7, 10), "buffer") in busy
    assert (t(1, 7, 10), t(1, 7, 11), "booked") in busy
    assert (t(1, 7, 11), t(1, 7, 11, 30), "buffer") in busy
    # A booking just outside the window still shows its buffer inside it.
    edge = availability(env.inst, t(1, 7, 11), t(1, 7, 23))
    assert (edge.busy[0].start, edge.busy[0].end, edge.busy[0].reason) == (
        t(1, 7, 11),
        t(1, 7, 11, 30),
        "buffer",
    )


def _reasons(doc: Any) -> list[str]:
    return [b["reason"] for b in json.loads(doc.body)["busy"]]


@pytest.mark.parametrize("level", ["lab", "instrument"])
def test_calendar_cache_follows_rules_changes(db, env, level):
    cache().clear()
    book(env, env.inst, t(1, 7, 10), t(1, 7, 11))
    window = (t(1, 7, 0), t(1, 8, 0))
    first = calendar_document(env.inst.id, *window)
    assert "buffer" not in _reasons(first)
    assert calendar_document(env.inst.id, *window).etag == first.etag  # served from cache
    target = env.lab if level == "lab" else env.inst
    set_rules(db, target, buffer_minutes=30)  # insert (instrument) or update (lab)
    second = calendar_document(env.inst.id, *window)
    assert second.etag != first.etag and "buffer" in _reasons(second)
    set_rules(db, target, buffer_minutes=60)  # update
    third = calendar_document(env.inst.id, *window)
    assert third.etag != second.etag
    busy = json.loads(third.body)["busy"]
    assert {
        "start": "2030-01-07T09:00:00+08:00",
        "end": "2030-01-07T10:00:00+08:00",
        "reason": "buffer",
    } in busy
    if level == "instrument":  # delete: back to the lab's rules (no buffer)
        db.session.delete(
            db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
        )
        db.session.commit()
        assert "buffer" not in _reasons(calendar_document(env.inst.id, *window))


def test_api_buffer_conflict_and_availability(client, db, env):
    set_rules(db, env.lab, buffer_minutes=30)
    book(env, env.inst, t(1, 7, 10), t(1, 7, 11))
    response = client.post(
        "/api/v1/bookings",
        json={
            "resource_id": env.inst.id,
            "start": "2030-01-07T11:00:00+08:00",
            "end": "2030-01-07T12:00:00+08:00",
            "purpose": "校准",
        },
        headers=bearer(env.other_sme),
    )
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict" and "buffer" in error["message"]
    got = client.get(
        f"/api/v1/resources/{env.inst.id}/availability",
        query_string={"from": "2030-01-07T00:00:00+08:00", "to": "2030-01-08T00:00:00+08:00"},
    )
    assert got.status_code == 200
    assert "buffer" in [b["reason"] for b in got.get_json()["busy"]]
    check_schema(client, "AvailabilityOut", got.get_json())


# -- quotas per period --------------------------------------------------------------------


def add_quota(env: Any, resource: Any = None, **kw: Any) -> BookingQuota:
    quota = quotas.create_quota(
        env.staff, env.institute.id, resource.id if resource is not None else None, **kw
    )
    env.db.session.commit()
    return quota


@pytest.mark.parametrize(
    ("period", "instant", "first", "after"),
    [
        ("day", t(1, 7, 23, 30), dt.date(2030, 1, 7), dt.date(2030, 1, 8)),
        ("week", t(1, 9, 10), dt.date(2030, 1, 7), dt.date(2030, 1, 14)),
        ("week", t(1, 7, 0), dt.date(2030, 1, 7), dt.date(2030, 1, 14)),  # Monday 00:00
        ("week", t(1, 6, 23, 59), dt.date(2029, 12, 31), dt.date(2030, 1, 7)),  # Sunday
        ("week", t(1, 31, 10), dt.date(2030, 1, 28), dt.date(2030, 2, 4)),  # spans a month
        ("month", t(2, 1, 0, 30), dt.date(2030, 2, 1), dt.date(2030, 3, 1)),
        ("year", t(12, 31, 23), dt.date(2030, 1, 1), dt.date(2031, 1, 1)),
    ],
)
def test_period_bounds_in_the_institutes_zone(period, instant, first, after):
    start, end = quotas.period_bounds(period, instant, "Asia/Shanghai")
    assert start == dt.datetime.combine(first, dt.time(0), SH).astimezone(dt.UTC)
    assert end == dt.datetime.combine(after, dt.time(0), SH).astimezone(dt.UTC)


def test_period_bounds_across_a_dst_change():
    # New York leaves DST on Sunday 2030-11-03: that day has 25 hours.
    start, end = quotas.period_bounds("day", t(11, 3, 12, tz=NY), "America/New_York")
    assert end - start == dt.timedelta(hours=25)


def test_hours_quota_per_week(db, env):
    add_quota(env, env.inst, period="week", max_hours="3")
    book(env, env.inst, t(1, 7, 9), t(1, 7, 11))  # Monday, 2 h
    with pytest.raises(RuleViolation) as caught:
        book(env, env.inst, t(1, 9, 9), t(1, 9, 11))  # Wednesday, 2 more
    assert caught.value.rule == "quota_hours"
    assert "1 hours left" in str(caught.value.message)
    assert caught.value.details["remaining_hours"] == 1.0
    db.session.rollback()
    book(env, env.inst, t(1, 9, 9), t(1, 9, 10))  # exactly the rest
    book(env, env.inst, t(1, 14, 9), t(1, 14, 11))  # next Monday: a new week
    # Another company has its own quota.
    book(env, env.inst, t(1, 8, 9), t(1, 8, 12), user=env.other_sme)


def test_hours_left_with_decimals(db, env):
    add_quota(env, env.inst, period="day", max_hours="2.5")
    book(env, env.inst, t(1, 7, 9), t(1, 7, 10))
    with pytest.raises(RuleViolation) as caught:
        book(env, env.inst, t(1, 7, 12), t(1, 7, 14))
    assert "1.5 hours left" in str(caught.value.message)


def test_bookings_quota_per_day(db, env):
    add_quota(env, env.inst, period="day", max_bookings=1)
    book(env, env.inst, t(1, 7, 9), t(1, 7, 10))
    with pytest.raises(RuleViolation) as caught:
        book(env, env.inst, t(1, 7, 14), t(1, 7, 15), user=env.colleague)  # same company
    assert caught.value.rule == "quota_bookings"
    assert caught.value.details["remaining_bookings"] == 0
    db.session.rollback()
    book(env, env.inst, t(1, 8, 9), t(1, 8, 10))  # next day


def test_week_spanning_a_month_and_the_zone(db, env):
    add_quota(env, env.inst, period="week", max_bookings=1)
    book(env, env.inst, t(1, 31, 9), t(1, 31, 10))  # Thursday 31 January
    with pytest.raises(RuleViolation):
        book(env, env.inst, t(2, 1, 9), t(2, 1, 10))  # Friday 1 February: same week
    db.session.rollback()
    # Monday 4 February 07:00 in Shanghai is still Sunday in UTC: a new local week.
    start = t(2, 4, 7)
    assert start.weekday() == 6
    book(env, env.inst, start, start + dt.timedelta(hours=1))


def test_month_quota_resets_on_the_first_local_day(db, env):
    add_quota(env, env.inst, period="month", max_bookings=1)
    book(env, env.inst, t(1, 31, 9), t(1, 31, 10))
    book(env, env.inst, t(2, 1, 0), t(2, 1, 1))  # 1 February 00:00 local = 31 January UTC


def test_completed_bookings_count_only_when_configured(db, env, make_booking):
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 7, 9),
        end=t(1, 7, 10),
        status=BookingStatus.COMPLETED,
    )
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 7, 11),
        end=t(1, 7, 12),
        status=BookingStatus.CANCELLED,
    )
    db.session.commit()
    quota = add_quota(env, env.inst, period="day", max_bookings=1)
    first = book(env, env.inst, t(1, 7, 14), t(1, 7, 15))  # completed and cancelled: not counted
    cancel_booking(first, env.staff)
    db.session.commit()
    quota.count_completed = True
    db.session.commit()
    with pytest.raises(RuleViolation):
        book(env, env.inst, t(1, 7, 14), t(1, 7, 15))


def test_lab_quota_counts_its_instruments(db, env):
    add_quota(env, env.lab, period="week", max_bookings=2)
    book(env, env.inst, t(1, 7, 9), t(1, 7, 10))
    book(env, env.inst2, t(1, 7, 9), t(1, 7, 10))
    for resource in (env.inst, env.lab):
        with pytest.raises(RuleViolation):
            book(env, resource, t(1, 8, 9), t(1, 8, 10))
        db.session.rollback()
    book(env, env.other_inst, t(1, 8, 9), t(1, 8, 10))  # another lab


def test_instrument_quota_is_just_the_instrument(db, env):
    add_quota(env, env.inst, period="week", max_bookings=1)
    book(env, env.inst2, t(1, 7, 9), t(1, 7, 10))
    book(env, env.inst, t(1, 7, 9), t(1, 7, 10))
    with pytest.raises(RuleViolation):
        book(env, env.inst, t(1, 8, 9), t(1, 8, 10))


def test_institute_quota_counts_every_resource(db, env, make_instrument):
    add_quota(env, None, period="month", max_hours="2")
    book(env, env.inst, t(1, 7, 9), t(1, 7, 10))
    with pytest.raises(RuleViolation) as caught:
        book(env, env.other_inst, t(1, 8, 9), t(1, 8, 11))
    assert caught.value.rule == "quota_hours"
    db.session.rollback()
    book(env, env.other_inst, t(1, 8, 9), t(1, 8, 10))
    elsewhere = make_instrument()  # another institute
    db.session.commit()
    book(env, elsewhere, t(1, 9, 9), t(1, 9, 11))


def test_quota_refusal_in_the_api(client, db, env):
    add_quota(env, env.inst, period="day", max_hours="1")
    response = client.post(
        "/api/v1/bookings",
        json={
            "resource_id": env.inst.id,
            "start": "2030-01-07T09:00:00+08:00",
            "end": "2030-01-07T11:00:00+08:00",
            "purpose": "校准",
        },
        headers=bearer(env.sme),
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["rule"] == "quota_hours" and error["remaining_hours"] == 1.0
    assert "1 hours left" in error["message"]
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_quotas_in_the_resource_detail(client, db, env):
    add_quota(env, env.inst, period="week", max_hours="10")
    add_quota(env, env.lab, period="month", max_bookings=5, count_completed=True)
    add_quota(env, None, period="year", max_hours="100", max_bookings=50)
    add_quota(env, env.inst2, period="day", max_bookings=1)  # not inst's
    body = client.get(f"/api/v1/resources/{env.inst.id}").get_json()
    check_schema(client, "ResourceOut", body)
    got = {
        (q["scope"], q["period"], q["max_hours"], q["max_bookings"], q["count_completed"])
        for q in body["quotas"]
    }
    assert got == {
        ("instrument", "week", 10.0, None, False),
        ("lab", "month", None, 5, True),
        ("institute", "year", 100.0, 50, False),
    }
    assert body["rules"]["buffer_minutes"] == 0
    assert body["rules"]["no_show_approval_threshold"] is None


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"period": "fortnight", "max_hours": "2"}, "period"),
        ({"period": "week"}, "max_hours"),
        ({"period": "week", "max_hours": "0"}, "max_hours"),
        ({"period": "week", "max_hours": "abc"}, "max_hours"),
        ({"period": "week", "max_hours": "NaN"}, "max_hours"),
        ({"period": "week", "max_hours": "1.234"}, "max_hours"),
        ({"period": "week", "max_bookings": "-1"}, "max_bookings"),
        ({"period": "week", "max_bookings": "1.5"}, "max_bookings"),
    ],
)
def test_bad_quota_input(db, env, kw, field):
    with pytest.raises(ValidationFailed) as caught:
        quotas.create_quota(env.staff, env.institute.id, env.inst.id, **kw)
    assert caught.value.field == field
    db.session.rollback()
    assert db.session.scalar(select(func.count(BookingQuota.id))) == 0


def test_quota_permissions_in_the_service(db, env):
    with pytest.raises(NotAllowed):
        quotas.create_quota(env.other_staff, env.institute.id, None, period="day", max_bookings=1)
    with pytest.raises(ValidationFailed):  # another institute's resource
        quotas.create_quota(
            env.other_staff, env.other_staff.institute_id, env.inst.id, period="day", max_bookings=1
        )
    db.session.rollback()
    quota = add_quota(env, env.inst, period="day", max_bookings=1)
    with pytest.raises(NotFound):
        quotas.delete_quota(env.other_staff, quota.id, env.other_staff.institute_id)


# -- the staff quota page -----------------------------------------------------------------


def test_quota_page_add_list_remove(client, login, db, env):
    login(env.staff)
    page = client.get("/manage/quotas")
    assert page.status_code == 200 and "csrf_token" in page.get_data(as_text=True)
    response = client.post(
        "/manage/quotas",
        data={
            "scope": str(env.lab.id),
            "period": "week",
            "max_hours": "12.5",
            "max_bookings": "",
            "count_completed": "y",
        },
    )
    assert response.status_code == 302
    quota = db.session.scalars(select(BookingQuota)).one()
    assert (
        quota.resource_id,
        quota.period,
        float(quota.max_hours),
        quota.max_bookings,
        quota.count_completed,
    ) == (env.lab.id, "week", 12.5, None, True)
    response = client.post(
        "/manage/quotas", data={"scope": "institute", "period": "day", "max_bookings": "3"}
    )
    assert response.status_code == 302
    listing = client.get("/manage/quotas").get_data(as_text=True)
    assert "12.5" in listing and env.lab.name in listing
    assert (
        db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "quota.create"))
        == 2
    )
    assert client.post(f"/manage/quotas/{quota.id}/delete").status_code == 302
    assert db.session.scalar(select(func.count(BookingQuota.id))) == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"scope": "institute", "period": "week", "max_hours": "x"}, "max_hours"),
        ({"scope": "institute", "period": "week"}, "max_hours"),
        ({"scope": "institute", "period": "decade", "max_hours": "1"}, "period"),
        ({"scope": "999999", "period": "week", "max_hours": "1"}, "scope"),
        ({"scope": "abc", "period": "week", "max_hours": "1"}, "scope"),
        ({"scope": "institute", "period": "week", "max_bookings": "0"}, "max_bookings"),
    ],
)
def test_quota_page_bad_input_names_the_field(client, login, db, env, data, field):
    login(env.staff)
    response = client.post("/manage/quotas", data=data)
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(BookingQuota.id))) == 0


def test_quota_page_other_institutes_resource_and_quota(client, login, db, env, make_instrument):
    elsewhere = make_instrument()
    db.session.commit()
    login(env.staff)
    response = client.post(
        "/manage/quotas", data={"scope": str(elsewhere.id), "period": "week", "max_hours": "1"}
    )
    assert response.status_code == 422
    assert db.session.scalar(select(func.count(BookingQuota.id))) == 0
    assert (
        db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.action.like("quota.%")))
        == 0
    )


def test_quota_page_hides_other_institutes_quotas(client, login, db, env):
    quota = add_quota(env, env.inst, period="day", max_bookings=7)
    login(env.other_staff)
    assert client.post(f"/manage/quotas/{quota.id}/delete").status_code == 404
    assert f"/manage/quotas/{quota.id}/delete" not in client.get("/manage/quotas").get_data(
        as_text=True
    )
    assert db.session.scalar(select(func.count(BookingQuota.id))) == 1


@pytest.mark.parametrize("who", ["anonymous", "sme", "admin"])
def test_quota_page_is_for_staff_only(client, login, db, env, make_user, who):
    if who == "sme":
        login(env.sme)
    elif who == "admin":
        login(make_user(Role.ADMIN))
        db.session.commit()
    response = client.get("/manage/quotas")
    assert response.status_code in ((302,) if who == "anonymous" else (403,))
    posted = client.post(
        "/manage/quotas", data={"scope": "institute", "period": "day", "max_bookings": "1"}
    )
    assert posted.status_code in (302, 403)
    assert db.session.scalar(select(func.count(BookingQuota.id))) == 0


def test_quota_page_needs_csrf(app, client, login, db, env):
    login(env.staff)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = client.post(
            "/manage/quotas", data={"scope": "institute", "period": "day", "max_bookings": "1"}
        )
        assert response.status_code in (400, 422)
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert db.session.scalar(select(func.count(BookingQuota.id))) == 0


# -- late cancellation and the no-show record ----------------------------------------------


def test_late_cancellation_is_flagged_and_audited(db, env):
    set_rules(db, env.lab, late_cancel_hours=48)
    soon = book(env, env.inst, t(1, 2, 9), t(1, 2, 10))  # 25 hours ahead
    cancel_booking(soon, env.sme, "换了日期")
    db.session.commit()
    assert soon.status == BookingStatus.CANCELLED and soon.late_cancellation is True
    entry = db.session.scalars(
        select(AuditLog).where(AuditLog.action == "booking.late_cancellation")
    ).one()
    assert entry.object_id == soon.id and entry.reason == "换了日期"
    assert entry.actor_id == env.sme.id
    later = book(env, env.inst, t(1, 7, 9), t(1, 7, 10))  # six days ahead: in time
    cancel_booking(later, env.sme)
    db.session.commit()
    assert later.late_cancellation is False


def test_staff_cancellation_is_never_late(db, env):
    set_rules(db, env.lab, late_cancel_hours=48)
    soon = book(env, env.inst, t(1, 2, 9), t(1, 2, 10))
    cancel_booking(soon, env.staff, "仪器故障")
    db.session.commit()
    assert soon.late_cancellation is False
    assert no_show_count(env.sme.company_id, env.institute.id) == 0


def test_late_cancellation_off_by_default(db, env):
    soon = book(env, env.inst, t(1, 1, 9), t(1, 1, 10))  # an hour ahead
    cancel_booking(soon, env.sme)
    db.session.commit()
    assert soon.late_cancellation is False


def test_statistics_count_late_cancellations_as_no_shows(db, env, make_booking):
    set_rules(db, env.lab, late_cancel_hours=48)
    soon = book(env, env.inst, t(1, 2, 9), t(1, 2, 10))
    cancel_booking(soon, env.sme)
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 3, 9),
        end=t(1, 3, 10),
        status=BookingStatus.CANCELLED,
    )
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 4, 9),
        end=t(1, 4, 10),
        status=BookingStatus.NO_SHOW,
    )
    db.session.commit()
    totals = campaign_totals(t(1, 1, 0), t(2, 1, 0), institute_id=env.institute.id)
    assert (totals.no_show, totals.cancelled, totals.requested) == (2, 1, 3)


def test_statistics_service_counts_late_cancellations(db, env, make_booking):
    from labshare.campaign import stats

    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 2, 9),
        end=t(1, 2, 10),
        status=BookingStatus.CANCELLED,
        late_cancellation=True,
    )
    db.session.commit()
    period = stats.Period.month("2030-01")
    by_resource = stats.counters_by(period, stats.Scope.institute(env.institute.id), "resource")
    assert (by_resource[env.inst.id]["no_show"], by_resource[env.inst.id]["cancelled"]) == (1, 0)


def test_no_show_record(db, env, make_booking, make_instrument):
    company = env.sme.company_id
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 2, 9),
        end=t(1, 2, 10),
        status=BookingStatus.NO_SHOW,
    )
    make_booking(
        resource=env.inst,
        user=env.colleague,
        start=t(1, 3, 9),
        end=t(1, 3, 10),
        status=BookingStatus.CANCELLED,
        late_cancellation=True,
    )
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 4, 9),
        end=t(1, 4, 10),
        status=BookingStatus.CANCELLED,
    )  # in time: not counted
    old = NOW - dt.timedelta(days=400)
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=old,
        end=old + dt.timedelta(hours=1),
        status=BookingStatus.NO_SHOW,
    )  # more than a year ago
    elsewhere = make_instrument()
    make_booking(
        resource=elsewhere,
        user=env.sme,
        start=t(1, 2, 9),
        end=t(1, 2, 10),
        status=BookingStatus.NO_SHOW,
    )  # another institute's
    db.session.commit()
    assert no_show_count(company, env.institute.id) == 2
    assert no_show_count(env.other_sme.company_id, env.institute.id) == 0


def test_threshold_sends_bookings_to_approval(db, env, make_booking):
    set_rules(db, env.lab, no_show_approval_threshold=2)
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 2, 9),
        end=t(1, 2, 10),
        status=BookingStatus.NO_SHOW,
    )
    db.session.commit()
    below = book(env, env.inst, t(1, 7, 9), t(1, 7, 10))
    assert below.status == BookingStatus.APPROVED  # 1 < 2
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 3, 9),
        end=t(1, 3, 10),
        status=BookingStatus.CANCELLED,
        late_cancellation=True,
    )
    db.session.commit()
    held = book(env, env.inst, t(1, 8, 9), t(1, 8, 10))
    assert held.status == BookingStatus.PENDING
    entry = db.session.scalars(
        select(AuditLog).where(AuditLog.action == "booking.create", AuditLog.object_id == held.id)
    ).one()
    assert entry.reason and "no-show" in entry.reason
    other = book(env, env.inst, t(1, 9, 9), t(1, 9, 10), user=env.other_sme)
    assert other.status == BookingStatus.APPROVED


def test_no_threshold_by_default(db, env, make_booking):
    for day in (2, 3, 4):
        make_booking(
            resource=env.inst,
            user=env.sme,
            start=t(1, day, 9),
            end=t(1, day, 10),
            status=BookingStatus.NO_SHOW,
        )
    db.session.commit()
    assert book(env, env.inst, t(1, 7, 9), t(1, 7, 10)).status == BookingStatus.APPROVED


def test_sme_cancellation_below_threshold_is_not_flagged(db, env):
    set_rules(db, env.lab, late_cancel_hours=12, no_show_approval_threshold=1)
    early = book(env, env.inst, t(1, 3, 9), t(1, 3, 10))  # 49 hours ahead: not late
    cancel_booking(early, env.sme)
    db.session.commit()
    assert early.late_cancellation is False
    assert book(env, env.inst, t(1, 7, 9), t(1, 7, 10)).status == BookingStatus.APPROVED


def test_company_no_shows_in_the_api_for_staff_only(client, db, env, make_booking):
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 2, 9),
        end=t(1, 2, 10),
        status=BookingStatus.NO_SHOW,
    )
    booking = make_booking(resource=env.inst, user=env.sme, start=t(1, 7, 9), end=t(1, 7, 10))
    db.session.commit()
    as_staff = client.get(f"/api/v1/bookings/{booking.id}", headers=bearer(env.staff))
    assert as_staff.get_json()["company_no_shows"] == 1
    check_schema(client, "BookingOut", as_staff.get_json())
    listed = client.get("/api/v1/bookings", headers=bearer(env.staff)).get_json()["items"]
    assert all(item["company_no_shows"] == 1 for item in listed)
    as_sme = client.get(f"/api/v1/bookings/{booking.id}", headers=bearer(env.sme)).get_json()
    assert "company_no_shows" not in as_sme
    listed = client.get("/api/v1/bookings", headers=bearer(env.sme)).get_json()["items"]
    assert all("company_no_shows" not in item for item in listed)


def test_staff_pages_show_the_no_show_record(client, login, db, env, make_booking):
    for day in (2, 3):
        make_booking(
            resource=env.inst,
            user=env.sme,
            start=t(1, day, 9),
            end=t(1, day, 10),
            status=BookingStatus.NO_SHOW,
        )
    waiting = make_booking(resource=env.inst, user=env.sme, start=t(1, 7, 9), end=t(1, 7, 10))
    db.session.commit()
    login(env.staff)
    dashboard = client.get("/manage").get_data(as_text=True)
    assert 'class="no-show-record">2<' in dashboard
    detail = client.get(f"/bookings/{waiting.id}").get_data(as_text=True)
    assert 'class="no-show-record">2<' in detail


def test_sme_does_not_see_the_no_show_record(client, login, db, env, make_booking):
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=t(1, 2, 9),
        end=t(1, 2, 10),
        status=BookingStatus.NO_SHOW,
    )
    waiting = make_booking(resource=env.inst, user=env.sme, start=t(1, 7, 9), end=t(1, 7, 10))
    db.session.commit()
    login(env.sme)
    page = client.get(f"/bookings/{waiting.id}")
    assert page.status_code == 200 and "no-show-record" not in page.get_data(as_text=True)


def test_rules_page_saves_the_new_rules(client, login, db, env):
    login(env.staff)
    data = {
        **{k: str(v) for k, v in RULES.items() if k != "requires_approval"},
        "buffer_minutes": "15",
        "late_cancel_hours": "36",
        "no_show_approval_threshold": "3",
        "waitlist_offer_minutes": "120",
        "checkin_opens_minutes": "15",
        "checkin_release_minutes": "15",
    }
    response = client.post(f"/manage/resources/{env.inst.id}/rules", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[-3000:]
    row = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    assert (row.buffer_minutes, row.late_cancel_hours, row.no_show_approval_threshold) == (
        15,
        36,
        3,
    )
    data.update(no_show_approval_threshold="", buffer_minutes="-5")
    bad = client.post(f"/manage/resources/{env.inst.id}/rules", data=data)
    assert bad.status_code == 422 and 'id="buffer_minutes-error"' in bad.get_data(as_text=True)
    data.update(buffer_minutes="0")
    assert client.post(f"/manage/resources/{env.inst.id}/rules", data=data).status_code == 302
    db.session.refresh(row)
    assert row.no_show_approval_threshold is None and row.buffer_minutes == 0


def test_booking_page_warns_the_company_before_a_late_cancellation(client, login, db, env):
    set_rules(db, env.lab, late_cancel_hours=48)
    soon = book(env, env.inst, t(1, 2, 9), t(1, 2, 10))  # 25 hours ahead: late
    later = book(env, env.inst, t(1, 7, 9), t(1, 7, 10))
    login(env.sme)
    assert "late-cancel-warning" in client.get(f"/bookings/{soon.id}").get_data(as_text=True)
    assert "late-cancel-warning" not in client.get(f"/bookings/{later.id}").get_data(as_text=True)


def test_staff_see_no_late_cancellation_warning(client, login, db, env):
    set_rules(db, env.lab, late_cancel_hours=48)
    soon = book(env, env.inst, t(1, 2, 9), t(1, 2, 10))
    login(env.staff)
    page = client.get(f"/bookings/{soon.id}").get_data(as_text=True)
    assert "Cancel the booking" in page and "late-cancel-warning" not in page
