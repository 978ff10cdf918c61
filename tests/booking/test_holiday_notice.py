"""A holiday added over bookings made before it was known: each institute's staff are
told once (in-app and mail through the outbox), naming the bookings with links to
them; reloading or re-adding tells nobody again. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from labshare.booking import holiday_admin
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import BookingStatus, Notification, Role
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import bearer, error_of
from tests.jobsutil import SmtpServer

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 9, 1, 0, 0, tzinfo=dt.UTC)
KIND = "holiday_bookings"


def local(day: str, hour: int) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), SH)


def _told(user_id: int) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.kind == KIND, Notification.user_id == user_id)
            .order_by(Notification.id)
        )
    )


def _world() -> dict[str, Any]:
    set_clock(lambda: NOW)
    instrument = factories.make_instrument()
    other = factories.make_instrument()  # another institute
    staff_zh = factories.make_user(Role.STAFF, institute=instrument.institute, locale="zh_CN")
    staff_en = factories.make_user(Role.STAFF, institute=instrument.institute, locale="en")
    factories.make_user(Role.STAFF, institute=instrument.institute, active=False)
    other_staff = factories.make_user(Role.STAFF, institute=other.institute)
    on_day = factories.make_booking(
        resource=instrument, status=BookingStatus.APPROVED, start=local("2030-10-01", 10)
    )
    pending = factories.make_booking(resource=instrument, start=local("2030-10-02", 10))
    cancelled = factories.make_booking(
        resource=instrument, status=BookingStatus.CANCELLED, start=local("2030-10-01", 13)
    )
    elsewhere = factories.make_booking(resource=other, start=local("2030-10-02", 14))
    db.session.commit()
    return {
        "instrument": instrument,
        "staff_zh": staff_zh,
        "staff_en": staff_en,
        "other_staff": other_staff,
        "on_day": on_day,
        "pending": pending,
        "cancelled": cancelled,
        "elsewhere": elsewhere,
    }


def test_adding_a_holiday_tells_the_institutes_staff_once(app: Any) -> None:
    w = _world()
    holiday_admin.put_day(None, day="2030-10-01", kind="holiday", name="国庆节")
    db.session.commit()
    [zh] = _told(w["staff_zh"].id)
    [en] = _told(w["staff_en"].id)
    assert not zh.subject.isascii() and en.subject.isascii()
    assert "日历中新增的法定节假日" in zh.body_text and "public holiday" in en.body_text
    for note in (zh, en):
        assert f"/bookings/{w['on_day'].id}" in note.body_text
        assert f"/bookings/{w['on_day'].id}" in (note.body_html or "")
        assert f"/bookings/{w['cancelled'].id}" not in note.body_text
        assert f"/bookings/{w['pending'].id}" not in note.body_text
    assert _told(w["other_staff"].id) == []
    # the same day again (replaced), a make-up day, another day with none: nobody again
    holiday_admin.put_day(None, day="2030-10-01", kind="holiday", name="国庆节", name_en="ND")
    holiday_admin.put_day(None, day="2030-09-28", kind="workday", name="国庆节")
    holiday_admin.put_day(None, day="2030-10-05", kind="holiday", name="国庆节")
    db.session.commit()
    assert len(_told(w["staff_zh"].id)) == 1
    # the next day covers a pending booking here and one of the other institute
    holiday_admin.put_day(None, day="2030-10-02", kind="holiday", name="国庆节")
    db.session.commit()
    later = _told(w["staff_zh"].id)[-1]
    assert f"/bookings/{w['pending'].id}" in later.body_text
    assert f"/bookings/{w['on_day'].id}" not in later.body_text  # told already
    [there] = _told(w["other_staff"].id)
    assert f"/bookings/{w['elsewhere'].id}" in there.body_text


def test_reloading_a_year_does_not_tell_again(app: Any, tmp_path: Path) -> None:
    w = _world()
    path = tmp_path / "holidays.json"

    def write(*days: str) -> None:
        entries = [{"date": d, "kind": "holiday", "name": "国庆节"} for d in days]
        path.write_text(json.dumps({"years": {"2030": entries}}), encoding="utf-8")

    app.config["HOLIDAYS_FILE"] = str(path)
    try:
        write("2030-10-01", "2030-10-02")
        loaded = holiday_admin.load_year(2030, None)
        db.session.commit()
        assert sorted(loaded.bookings_inside) == sorted(
            [w["on_day"].id, w["pending"].id, w["elsewhere"].id]
        )
        [note] = _told(w["staff_zh"].id)
        assert f"/bookings/{w['on_day'].id}" in note.body_text
        assert f"/bookings/{w['pending'].id}" in note.body_text
        assert len(_told(w["other_staff"].id)) == 1
        # the same year again: unchanged, nothing told
        assert holiday_admin.load_year(2030, None).changed is False
        db.session.commit()
        # a changed file that still covers the same bookings: listed, not told again
        write("2030-10-01", "2030-10-02", "2030-10-03")
        again = holiday_admin.load_year(2030, None)
        db.session.commit()
        assert again.changed and w["on_day"].id in again.bookings_inside
    finally:
        app.config.pop("HOLIDAYS_FILE")
    assert len(_told(w["staff_zh"].id)) == 1
    assert len(_told(w["staff_en"].id)) == 1
    assert len(_told(w["other_staff"].id)) == 1


def test_a_lab_that_opted_out_is_not_told(app: Any) -> None:
    w = _world()
    holiday_admin.set_lab_follows(None, w["instrument"].lab, False)
    db.session.commit()
    holiday_admin.put_day(None, day="2030-10-01", kind="holiday", name="国庆节")
    db.session.commit()
    assert _told(w["staff_zh"].id) == []


def test_through_the_api_and_bad_input_tells_nobody(client: Any, app: Any) -> None:
    w = _world()
    admin = factories.make_user(Role.ADMIN, locale="en")
    db.session.commit()
    body = {"date": "2030-10-01", "kind": "holiday", "name": "国庆节"}
    bad = client.post(
        "/api/v1/holidays", json={**body, "date": "2030-10-32"}, headers=bearer(admin)
    )
    assert bad.status_code == 422
    assert error_of(bad)["field"] == "date"
    assert db.session.scalar(select(func.count(Notification.id))) == 0
    created = client.post("/api/v1/holidays", json=body, headers=bearer(admin))
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["bookings_inside"] == [w["on_day"].id]
    assert len(_told(w["staff_zh"].id)) == 1
    assert client.post("/api/v1/holidays", json=body, headers=bearer(admin)).status_code == 201
    assert len(_told(w["staff_zh"].id)) == 1


def test_the_staff_get_it_by_mail_in_their_language(app: Any, smtp: SmtpServer) -> None:
    w = _world()
    holiday_admin.put_day(None, day="2030-10-01", kind="holiday", name="国庆节")
    db.session.commit()
    run_job("deliver")
    run_job("deliver")  # nothing twice
    by_to = {m["To"]: m for m in smtp.messages}
    booker = w["on_day"].user.email  # told too, once (holiday_bookings' own tests)
    assert [m["To"] for m in smtp.messages].count(booker) == 1
    assert set(by_to) == {w["staff_zh"].email, w["staff_en"].email, booker}
    assert "法定节假日" in str(by_to[w["staff_zh"].email]["Subject"])
    assert "public holiday" in str(by_to[w["staff_en"].email]["Subject"])
    body = by_to[w["staff_en"].email].get_body(("plain",))
    assert body is not None and f"/bookings/{w['on_day'].id}" in body.get_content()


def test_a_moved_booking_on_a_later_holiday_is_told_again(app: Any) -> None:
    w = _world()
    holiday_admin.put_day(None, day="2030-10-01", kind="holiday", name="国庆节")
    db.session.commit()
    booking = w["on_day"]
    booking.start_at = local("2030-10-03", 10)
    booking.end_at = local("2030-10-03", 12)
    booking.moves = 1
    db.session.commit()
    holiday_admin.put_day(None, day="2030-10-03", kind="holiday", name="国庆节")
    db.session.commit()
    notes = _told(w["staff_zh"].id)
    assert len(notes) == 2 and f"/bookings/{booking.id}" in notes[-1].body_text


def test_the_linked_page_lets_staff_cancel(client: Any, app: Any, login: Any) -> None:
    w = _world()
    holiday_admin.put_day(None, day="2030-10-01", kind="holiday", name="国庆节")
    db.session.commit()
    booking_id = w["on_day"].id
    login(w["staff_en"])
    page = client.get(f"/bookings/{booking_id}")
    assert page.status_code == 200
    assert f"/bookings/{booking_id}/cancel" in page.get_data(as_text=True)
    assert "booking.holiday_notice" in page.get_data(as_text=True)  # its history says so
