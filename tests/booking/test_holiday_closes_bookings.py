"""A public holiday added over bookings made before it was known closes them as a
closure does: cancelled or put back to pending (never left approved), each booker told
once with alternatives that avoid every holiday, the staff notice kept; a province's
day touches only that province; reloading tells nobody twice; removing a day does
nothing to bookings; the bookings on the day are found in bounded statements. On
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from labshare.booking import displaced, holiday_admin, holiday_bookings
from labshare.extensions import db
from labshare.models import AuditLog, Booking, BookingStatus, CalendarDay, Notification, Role
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import bearer, error_of, sent_statements

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 9, 1, 0, 0, tzinfo=dt.UTC)
DAY = dt.date(2030, 10, 1)  # a Tuesday
NEXT = dt.date(2030, 10, 2)  # already a holiday in these tests
NOTICE = "closure_notice"
STAFF_NOTICE = "holiday_bookings"


def local(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), SH)


def _notices(kind: str = NOTICE) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification).where(Notification.kind == kind).order_by(Notification.id)
        )
    )


def _approved_on_day() -> int:
    return int(
        db.session.scalar(
            select(func.count(Booking.id)).where(
                Booking.status == BookingStatus.APPROVED,
                Booking.start_at < local(DAY + dt.timedelta(days=1), 0),
                Booking.end_at > local(DAY, 0),
            )
        )
        or 0
    )


@pytest.fixture
def world(db: Any) -> SimpleNamespace:
    """Three approved bookings on DAY of two companies (the first company's two by one
    booker), an equivalent in the same lab and one in a lab that works through holidays,
    and 2 October already a holiday."""
    set_clock(lambda: NOW)
    lab = factories.make_lab(hours=factories.weekday_hours("08:00", "18:00", range(5)))
    inst = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    twin = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    open_lab = factories.make_lab(
        hours=factories.weekday_hours("08:00", "18:00", range(5)), follows_holidays=False
    )
    works = factories.make_instrument(lab=open_lab, rules=dict(factories.OPEN_RULES))
    staff = factories.make_user(Role.STAFF, institute=inst.institute, locale="zh_CN")
    first = factories.make_user(Role.SME, locale="zh_CN")
    second = factories.make_user(Role.SME)
    booked = [
        factories.make_booking(
            resource=inst,
            user=user,
            start=local(DAY, h),
            end=local(DAY, h + 1),
            status=BookingStatus.APPROVED,
        )
        for user, h in ((first, 9), (first, 11), (second, 14))
    ]
    admin = factories.make_user(Role.ADMIN)
    holiday_admin.put_day(None, day=NEXT.isoformat(), kind="holiday", name="国庆节")
    db.session.commit()
    return SimpleNamespace(
        inst=inst,
        twin=twin,
        works=works,
        staff=staff,
        first=first,
        second=second,
        bookings=booked,
        admin=admin,
    )


def _add(client: Any, world: SimpleNamespace, **extra: Any) -> Any:
    body = {"date": DAY.isoformat(), "kind": "holiday", "name": "国庆节", **extra}
    return client.post("/api/v1/holidays", json=body, headers=bearer(world.admin))


@pytest.mark.parametrize(
    ("choice", "status"),
    [
        (None, BookingStatus.PENDING),
        ("ask_move", BookingStatus.PENDING),
        ("cancel", BookingStatus.CANCELLED),
    ],
)
def test_a_holiday_over_three_bookings_of_two_companies(
    client: Any, world: SimpleNamespace, choice: str | None, status: BookingStatus
) -> None:
    extra = {"message": "国庆放假，请改期"}
    if choice is not None:
        extra["on_bookings"] = choice
    response = _add(client, world, **extra)
    assert response.status_code == 201, response.get_json()
    assert sorted(response.get_json()["bookings_inside"]) == sorted(b.id for b in world.bookings)
    db.session.expire_all()
    assert {db.session.get(Booking, b.id).status for b in world.bookings} == {status}
    assert _approved_on_day() == 0  # nothing stays approved on the holiday
    notices = _notices()
    # one message per booker (so per company here), listing all their bookings
    assert sorted(n.user_id for n in notices) == sorted([world.first.id, world.second.id])
    for notice in notices:
        assert "国庆放假，请改期" in notice.body_text
        assert f"/resources/{world.works.id}" in notice.body_text  # open that day
    mine = next(n for n in notices if n.user_id == world.first.id)
    assert "法定节假日" in mine.subject and "2030-10-01" in mine.body_text
    for booking in world.bookings[:2]:
        assert f"/bookings/{booking.id}" in mine.body_text
    # the standard cancellation notice is replaced: one message per booker
    per_user = db.session.execute(
        select(Notification.user_id, func.count(Notification.id))
        .where(Notification.user_id.in_([world.first.id, world.second.id]))
        .group_by(Notification.user_id)
    ).all()
    assert all(count == 1 for _user, count in per_user)
    # the staff are still told, once
    assert [n.user_id for n in _notices(STAFF_NOTICE)] == [world.staff.id]
    held = db.session.scalar(
        select(func.count(AuditLog.id)).where(AuditLog.action == "booking.holiday_hold")
    )
    assert held == (3 if status == BookingStatus.PENDING else 0)


def test_alternatives_avoid_every_holiday(world: SimpleNamespace) -> None:
    """The own instrument's and the twin's alternatives skip 1 and 2 October (both
    holidays for their lab); the instrument of a lab that works through holidays may
    be offered on the day itself."""
    added = holiday_admin.add_day(None, day=DAY.isoformat(), kind="holiday", name="国庆节")
    inside = holiday_bookings.bookings_inside([DAY])
    assert sorted(i.booking_id for i in inside) == sorted(added.bookings_inside)
    closed_until = local(NEXT + dt.timedelta(days=1), 0)
    for item in inside:
        booking = db.session.get(Booking, item.booking_id)
        alts = displaced.alternatives(
            displaced.Displaced(booking, item.span), displaced.Search(holiday_bookings._closed_on)
        )
        by_resource = {a.resource.id: a for a in alts}
        assert by_resource[world.inst.id].start >= closed_until
        if world.twin.id in by_resource:
            assert by_resource[world.twin.id].start >= closed_until
        assert world.works.id in by_resource
    db.session.rollback()


def test_loading_the_same_year_twice_tells_nobody_twice(
    app: Any, world: SimpleNamespace, tmp_path: Path
) -> None:
    data = {
        "years": {
            "2030": [
                {"date": DAY.isoformat(), "kind": "holiday", "name": "国庆节"},
                {"date": NEXT.isoformat(), "kind": "holiday", "name": "国庆节"},
            ]
        }
    }
    path = tmp_path / "holidays.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    app.config["HOLIDAYS_FILE"] = str(path)
    first = holiday_admin.load_year(2030, None)
    db.session.commit()
    assert first.changed and sorted(first.bookings_inside) == sorted(b.id for b in world.bookings)
    told = (len(_notices()), len(_notices(STAFF_NOTICE)))
    assert told == (2, 1)
    again = holiday_admin.load_year(2030, None)
    db.session.commit()
    assert not again.changed and again.bookings_inside == []
    # the day re-added by an admin: the bookings are pending already and were told
    holiday_admin.put_day(None, day=DAY.isoformat(), kind="holiday", name="国庆节")
    db.session.commit()
    assert (len(_notices()), len(_notices(STAFF_NOTICE))) == told
    assert _approved_on_day() == 0


def test_another_provinces_holiday_touches_nothing(client: Any, world: SimpleNamespace) -> None:
    other = "110000"
    assert world.inst.institute.province_code != other
    response = _add(client, world, region=other, on_bookings="cancel")
    assert response.status_code == 201 and response.get_json()["bookings_inside"] == []
    db.session.expire_all()
    assert {db.session.get(Booking, b.id).status for b in world.bookings} == {
        BookingStatus.APPROVED
    }
    assert _notices() == [] and _notices(STAFF_NOTICE) == []
    own = _add(client, world, region=world.inst.institute.province_code)
    assert own.status_code == 201 and len(own.get_json()["bookings_inside"]) == 3
    assert _approved_on_day() == 0


def test_removing_a_holiday_or_a_make_up_day_does_nothing_to_bookings(
    client: Any, world: SimpleNamespace
) -> None:
    made = _add(client, world)
    workday = client.post(
        "/api/v1/holidays",
        json={"date": "2030-09-28", "kind": "workday", "name": "国庆节"},
        headers=bearer(world.admin),
    )
    assert workday.status_code == 201 and workday.get_json()["bookings_inside"] == []
    before = len(_notices()), len(_notices(STAFF_NOTICE))
    for day_id in (made.get_json()["id"], workday.get_json()["id"]):
        gone = client.delete(f"/api/v1/holidays/{day_id}", headers=bearer(world.admin))
        assert gone.status_code == 204
    db.session.expire_all()
    assert {db.session.get(Booking, b.id).status for b in world.bookings} == {BookingStatus.PENDING}
    assert (len(_notices()), len(_notices(STAFF_NOTICE))) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"on_bookings": "ignore"}, "on_bookings"),
        ({"on_bookings": "ask_move", "message": "x" * 501}, "message"),
        ({"message": "bad\x00text"}, "message"),
    ],
)
def test_bad_choices_are_named_and_write_nothing(
    client: Any, world: SimpleNamespace, body: dict[str, Any], field: str
) -> None:
    response = _add(client, world, **body)
    assert response.status_code == 422 and error_of(response)["field"] == field
    admin_zh = factories.make_user(Role.ADMIN, locale="zh_CN")
    db.session.commit()
    zh = client.post(
        "/api/v1/holidays",
        json={"date": DAY.isoformat(), "kind": "holiday", "name": "国庆节", **body},
        headers=bearer(admin_zh),
    )
    assert zh.status_code == 422 and not error_of(zh)["message"].isascii()
    assert db.session.scalar(select(func.count(CalendarDay.id))) == 1  # only 2 October
    assert _notices() == [] and _approved_on_day() == 3


def test_the_command_line_cancels_when_asked(app: Any, world: SimpleNamespace) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "holidays",
            "add",
            DAY.isoformat(),
            "--kind",
            "holiday",
            "--name",
            "国庆节",
            "--on-bookings",
            "cancel",
            "--message",
            "国庆闭馆",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "now cancelled" in result.output
    db.session.expire_all()
    assert {db.session.get(Booking, b.id).status for b in world.bookings} == {
        BookingStatus.CANCELLED
    }
    assert len(_notices()) == 2
    bad = runner.invoke(
        args=[
            "holidays",
            "add",
            "2030-10-03",
            "--kind",
            "holiday",
            "--name",
            "国庆节",
            "--on-bookings",
            "nothing",
        ]
    )
    assert bad.exit_code != 0 and "on-bookings" in bad.output


def test_the_bookings_on_a_day_are_found_in_bounded_statements(world: SimpleNamespace) -> None:
    """One joined statement (and the calendar, once), however many bookings and
    resources: no read of each booking's resource."""
    holiday_admin.put_day(None, day=DAY.isoformat(), kind="holiday", name="国庆节")
    holiday_admin.put_day(None, day="2030-10-03", kind="holiday", name="国庆节")
    db.session.commit()
    for n in range(6):
        extra = factories.make_instrument(rules=dict(factories.OPEN_RULES))
        factories.make_booking(
            resource=extra,
            start=local(dt.date(2030, 10, 3), 9 + n),
            status=BookingStatus.APPROVED,
        )
    db.session.commit()
    db.session.remove()
    with sent_statements() as sent:
        few = holiday_bookings.bookings_inside([DAY])
    db.session.rollback()
    one_day = [s for s in sent if s.startswith("SELECT")]
    with sent_statements() as sent:
        many = holiday_bookings.bookings_inside([DAY, dt.date(2030, 10, 3)])
    db.session.rollback()
    two_days = [s for s in sent if s.startswith("SELECT")]
    assert len(few) == 3 and len(many) == 9
    # the bookings, the token, the calendar (when this process has no copy yet)
    assert len(one_day) <= 3 and len(two_days) <= 3, "\n".join(one_day + two_days)


def test_the_openapi_document_names_the_new_fields(client: Any, app: Any) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    for body in ("HolidayBody", "LoadBody"):
        assert {"on_bookings", "message"} <= set(schemas[body]["properties"]), body
