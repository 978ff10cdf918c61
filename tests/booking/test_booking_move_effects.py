"""Moving a booking, what follows it (waitlist, reminders, calendar feed and cache,
series, messages) and the web pages (the move page, the booking page, the calendar)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.booking import move as moving
from labshare.booking.policies import waitlist
from labshare.jobs import run_job
from labshare.jobs.reminders import send_reminders
from labshare.messaging.calendar_feed import build_feed
from labshare.models import (
    Booking,
    BookingSeries,
    JobMarker,
    Notification,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.timeutil import set_clock
from tests.booking.move_support import (
    OLD_START,
    UTC,
    _require_approval,
    book,
    local,
    make_env,
    post_move,
    times,
)
from tests.helpers import NOW, bearer


@pytest.fixture
def env(db: Any) -> SimpleNamespace:
    return make_env()


# -- what follows ------------------------------------------------------------------------


def test_the_freed_time_is_offered_to_the_waitlist(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    entry = waitlist.join(
        env.inst, env.other_sme, OLD_START, OLD_START + dt.timedelta(hours=1), purpose="等候"
    )
    db.session.commit()
    assert post_move(client, env.sme, b.id, local(4, 14), local(4, 15)).status_code == 200
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, entry.id).status == WaitlistStatus.OFFERED


def test_a_failed_move_offers_nothing(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    entry = waitlist.join(
        env.inst, env.other_sme, OLD_START, OLD_START + dt.timedelta(hours=1), purpose="等候"
    )
    db.session.commit()
    assert post_move(client, env.sme, b.id, local(4, 14, 10), local(4, 15)).status_code == 422
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, entry.id).status == WaitlistStatus.WAITING


def test_reminders_follow_the_new_time(
    app: Any, client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    app.config["REMINDER_HOURS"] = [24]
    b = book(env, make_booking, db)
    set_clock(lambda: OLD_START - dt.timedelta(hours=30))
    assert post_move(client, env.sme, b.id, local(4, 14), local(4, 15)).status_code == 200
    new_start = dt.datetime(2030, 1, 4, 6, tzinfo=UTC)
    # a reminder had gone out for the old time before the move? simulate one for a
    # second move: send at the new time's 24 h mark, then move again
    set_clock(lambda: new_start - dt.timedelta(hours=23))
    assert send_reminders()["sent"] == 1
    db.session.commit()
    run_job("deliver")  # delivered: kept as sent (an unsent one would be dropped)
    staff_move = post_move(client, env.staff, b.id, local(5, 14), local(5, 15))
    assert staff_move.status_code == 200
    assert (
        db.session.scalar(
            select(func.count(JobMarker.id)).where(JobMarker.key.like(f"reminder:{b.id}:%"))
        )
        == 0
    )
    set_clock(lambda: new_start + dt.timedelta(hours=1))  # 23 h before the newest start
    assert send_reminders()["sent"] == 1
    db.session.commit()
    reminders = db.session.scalar(
        select(func.count(Notification.id)).where(
            Notification.booking_id == b.id, Notification.kind == "reminder"
        )
    )
    assert reminders == 2


def test_calendar_feed_same_uid_higher_sequence(
    app: Any, client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    before = build_feed(env.sme, domain="labshare.test").decode()
    assert post_move(client, env.sme, b.id, local(4, 14), local(4, 15)).status_code == 200
    db.session.expire_all()
    sme = db.session.get(type(env.sme), env.sme.id)
    after = build_feed(sme, domain="labshare.test").decode()
    uid = f"UID:booking-{b.id}@labshare.test"
    assert uid in before and uid in after
    seq = lambda text: int(text.split("SEQUENCE:")[1].split("\r\n")[0])  # noqa: E731
    assert seq(after) > seq(before)
    assert "DTSTART;TZID=Asia/Shanghai:20300104T140000" in after


def test_calendar_shows_both_slots_changed(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    url = (
        f"/api/v1/resources/{env.inst.id}/availability"
        f"?from=2030-01-03T00:00:00%2B08:00&to=2030-01-05T00:00:00%2B08:00"
    )

    def busy() -> list[str]:
        document = client.get(url).get_json()
        return [s["start"] for s in document.get("busy", document.get("booked", []))]

    first = client.get(url)
    assert first.status_code == 200
    etag = first.headers.get("ETag")
    before = first.get_data(as_text=True)
    assert post_move(client, env.sme, b.id, local(4, 14), local(4, 15)).status_code == 200
    second = client.get(url, headers={"If-None-Match": etag} if etag else {})
    assert second.status_code == 200  # not a stale 304
    after = second.get_data(as_text=True)
    assert before != after
    assert "2030-01-03T10:00:00+08:00" in before and "2030-01-03T10:00:00+08:00" not in after
    assert "2030-01-04T14:00:00+08:00" in after


def test_a_series_occurrence_moves_alone_and_stays_in_its_series(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    series = db.session.scalar(select(BookingSeries).limit(1))
    assert series is None
    from labshare.booking.policies import recurrence

    created = client.post(
        "/api/v1/series",
        json={
            "resource_id": env.inst.id,
            "start": local(3, 10),
            "end": local(3, 11),
            "purpose": "每周校准",
            "recurrence": {"freq": "weekly", "count": 3},
        },
        headers=bearer(env.sme),
    )
    assert created.status_code == 201, created.get_json()
    assert recurrence  # the module that owns series
    occurrences = list(
        db.session.scalars(
            select(Booking)
            .where(Booking.series_id == created.get_json()["id"])
            .order_by(Booking.start_at)
        )
    )
    first, second = occurrences[0], occurrences[1]
    second_start = second.start_at
    assert post_move(client, env.sme, first.id, local(4, 14), local(4, 15)).status_code == 200
    db.session.expire_all()
    assert db.session.get(Booking, first.id).series_id == created.get_json()["id"]
    assert db.session.get(Booking, second.id).start_at == second_start


def test_service_may_move_agrees_with_the_rules(
    env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    assert moving.may_move(env.sme, b, NOW)
    assert moving.may_move(env.staff, b, NOW)
    assert not moving.may_move(env.other_sme, b, NOW)
    late = OLD_START - dt.timedelta(hours=1)
    assert not moving.may_move(env.sme, b, late)
    assert moving.may_move(env.staff, b, late)
    assert not moving.may_move(env.staff, b, OLD_START)


# -- the web pages -----------------------------------------------------------------------


def test_detail_offers_move_and_the_page_shows_the_week_grid(
    client: Any, login: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    login(env.sme)
    detail = client.get(f"/bookings/{b.id}").get_data(as_text=True)
    assert f"/bookings/{b.id}/move" in detail
    page = client.get(f"/bookings/{b.id}/move")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'class="calendar"' in html
    assert f"/bookings/{b.id}/move?start=2030-01-04T" in html  # free slots move here
    assert 'value="2030-01-03T10:00"' in html  # the current time, local
    chosen = client.get(f"/bookings/{b.id}/move?start=2030-01-04T14:00").get_data(as_text=True)
    assert 'value="2030-01-04T15:00"' in chosen  # the booking's length kept


def test_web_move_in_the_institute_zone(
    client: Any, login: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    login(env.sme)
    response = client.post(
        f"/bookings/{b.id}/move", data={"start": "2030-01-04T14:00", "end": "2030-01-04T15:00"}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert times(db, b.id)[0] == dt.datetime(2030, 1, 4, 6, tzinfo=UTC)
    assert "was moved" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_web_move_errors_next_to_the_field_and_nothing_changes(
    client: Any, login: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    book(env, make_booking, db, user=env.other_sme, start=dt.datetime(2030, 1, 4, 6, tzinfo=UTC))
    login(env.sme)
    taken = client.post(
        f"/bookings/{b.id}/move", data={"start": "2030-01-04T14:00", "end": "2030-01-04T15:00"}
    )
    assert taken.status_code == 409
    assert "already booked" in taken.get_data(as_text=True)
    missing = client.post(f"/bookings/{b.id}/move", data={"start": "2030-01-04T14:00"})
    assert missing.status_code == 422
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + dt.timedelta(hours=1))


def test_web_move_needs_csrf(
    app: Any, client: Any, login: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    login(env.sme)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = client.post(
            f"/bookings/{b.id}/move",
            data={"start": "2030-01-04T14:00", "end": "2030-01-04T15:00"},
        )
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert response.status_code in (400, 422)
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + dt.timedelta(hours=1))


@pytest.mark.parametrize(("who", "status"), [("other_sme", 404), ("other_staff", 404)])
def test_web_move_of_another_tenants_booking_is_404(
    client: Any,
    login: Any,
    env: SimpleNamespace,
    db: Any,
    make_booking: Any,
    who: str,
    status: int,
) -> None:
    b = book(env, make_booking, db)
    login(getattr(env, who))
    assert client.get(f"/bookings/{b.id}/move").status_code == status
    response = client.post(
        f"/bookings/{b.id}/move", data={"start": "2030-01-04T14:00", "end": "2030-01-04T15:00"}
    )
    assert response.status_code == status
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + dt.timedelta(hours=1))


def test_web_move_page_refused_after_the_deadline(
    client: Any, login: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    set_clock(lambda: OLD_START - dt.timedelta(hours=2))
    login(env.sme)
    assert f"/bookings/{b.id}/move" not in client.get(f"/bookings/{b.id}").get_data(as_text=True)
    assert client.get(f"/bookings/{b.id}/move").status_code == 403


def test_calendar_offers_move_for_the_viewers_bookings(
    client: Any, login: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    theirs = book(
        env, make_booking, db, user=env.other_sme, start=dt.datetime(2030, 1, 4, 2, tzinfo=UTC)
    )
    login(env.sme)
    html = client.get(f"/resources/{env.inst.id}/calendar?week=2030-W01").get_data(as_text=True)
    assert f"/bookings/{b.id}/move" in html
    assert f"/bookings/{theirs.id}/move" not in html
    client.get("/logout")
    login(env.other_staff)
    html = client.get(f"/resources/{env.inst.id}/calendar?week=2030-W01").get_data(as_text=True)
    assert "/move" not in html


def test_the_moved_message_renders_in_each_language(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    from labshare.messaging.notify import render_event

    _require_approval(env, db)
    env.staff.locale = "zh_CN"
    db.session.commit()
    b = book(env, make_booking, db)
    assert post_move(client, env.sme, b.id, local(4, 14), local(4, 15)).status_code == 200
    notes = {
        n.user_id: n
        for n in db.session.scalars(
            select(Notification).where(
                Notification.booking_id == b.id, Notification.kind == "booking_moved_pending"
            )
        )
    }
    subject, text, _ = render_event(notes[env.sme.id])
    assert f"Booking {b.id} moved, waiting for approval" in subject
    assert "January 4, 2030 14:00" in text
    subject, text, _ = render_event(notes[env.staff.id])
    assert "改期" in subject and "等待机构批准" in text
