"""The SME pages: calendar, booking form, My bookings, cancel, notifications."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from labshare.models import Booking, BookingStatus, Closure, Notification, Role
from labshare.timeutil import set_clock
from tests.helpers import count_rows

# Tuesday 2030-01-01 08:00 in Shanghai.
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(app: Any, db: Any, make_institute: Any, make_instrument: Any, make_user: Any) -> Any:
    set_clock(lambda: NOW)
    institute = make_institute()
    other_institute = make_institute()
    instrument = make_instrument(institute=institute)
    sme = make_user(Role.SME)
    colleague = make_user(Role.SME, company=sme.company)
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


def booking_for(w: Any, make_booking: Any, db: Any, **kw: Any) -> Booking:
    kw.setdefault("start", dt.datetime(2030, 1, 3, 2, 0, tzinfo=dt.UTC))  # 10:00 local
    kw.setdefault("user", w.sme)
    booking = make_booking(resource=w.instrument, **kw)
    db.session.commit()
    return booking


# -- who may open what --------------------------------------------------------------------

ROLES = ["anonymous", "sme", "other_sme", "staff", "other_staff", "admin"]


def _as(login: Any, w: Any, role: str) -> None:
    if role != "anonymous":
        login(getattr(w, role))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/resources/{instrument}/calendar", dict.fromkeys(ROLES, 200)),
        (
            "/resources/{instrument}/book",
            {
                "anonymous": 302,
                "sme": 200,
                "other_sme": 200,
                "staff": 403,
                "other_staff": 403,
                "admin": 403,
            },
        ),
        (
            "/bookings",
            {
                "anonymous": 302,
                "sme": 200,
                "other_sme": 200,
                "staff": 403,
                "other_staff": 403,
                "admin": 403,
            },
        ),
        (
            "/bookings/all",
            {
                "anonymous": 302,
                "sme": 403,
                "other_sme": 403,
                "staff": 403,
                "other_staff": 403,
                "admin": 200,
            },
        ),
        (
            "/bookings/{booking}",
            {
                "anonymous": 302,
                "sme": 200,
                "other_sme": 404,
                "staff": 200,
                "other_staff": 404,
                "admin": 200,
            },
        ),
        ("/notifications", {**dict.fromkeys(ROLES, 200), "anonymous": 302}),
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
    booking = booking_for(world, make_booking, db)
    _as(login, world, role)
    url = path.format(instrument=world.instrument.id, booking=booking.id)
    response = client.get(url)
    assert response.status_code == expected[role], (url, role)
    if expected[role] == 302:
        assert "/login" in response.headers["Location"]


def test_unknown_or_inactive_resource_is_404(client: Any, world: Any, db: Any) -> None:
    assert client.get("/resources/999999/calendar").status_code == 404
    world.institute.active = False
    db.session.commit()
    assert client.get(f"/resources/{world.instrument.id}/calendar").status_code == 404


# -- the week calendar --------------------------------------------------------------------


def test_calendar_shows_free_and_booked_slots_in_local_time(
    client: Any, world: Any, make_booking: Any, db: Any
) -> None:
    booking_for(world, make_booking, db)  # Thu 2030-01-03 10:00-12:00 local
    html = client.get(f"/resources/{world.instrument.id}/calendar?week=2030-W01").get_data(
        as_text=True
    )
    assert "2029-12-31 – 2030-01-06" in html
    # a free slot links to the booking form with local times and the minimum length
    assert "start=2030-01-04T10:00&amp;end=2030-01-04T10:30" in html
    # the booked slot is not a link
    assert "start=2030-01-03T10:00" not in html
    assert "Booked" in html
    # within the 24 h lead time: not bookable
    assert "start=2030-01-01T14:00" not in html
    assert "week=2029-W52" in html and "week=2030-W02" in html


def test_calendar_marks_closures(client: Any, world: Any, db: Any) -> None:
    db.session.add(
        Closure(
            resource_id=world.instrument.lab_id,
            start_at=dt.datetime(2030, 1, 4, 0, 0, tzinfo=dt.UTC),
            end_at=dt.datetime(2030, 1, 5, 0, 0, tzinfo=dt.UTC),
        )
    )
    db.session.commit()
    html = client.get(f"/resources/{world.instrument.id}/calendar?week=2030-W01").get_data(
        as_text=True
    )
    assert "start=2030-01-04T10:00" not in html
    assert "slot-closure" in html


def test_calendar_bad_week_falls_back_to_this_week(client: Any, world: Any) -> None:
    response = client.get(f"/resources/{world.instrument.id}/calendar?week=2030-W99")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "2029-12-31 – 2030-01-06" in html
    assert "Unknown week" in html


# -- the booking form ---------------------------------------------------------------------


def _post_booking(client: Any, w: Any, **data: str) -> Any:
    form = {
        "start": "2030-01-03T10:00",
        "end": "2030-01-03T11:00",
        "purpose": "校准压力变送器",
        "samples": "3 台",
    }
    form.update(data)
    return client.post(f"/resources/{w.instrument.id}/book", data=form)


def test_booking_form_prefills_from_the_calendar(client: Any, login: Any, world: Any) -> None:
    login(world.sme)
    html = client.get(
        f"/resources/{world.instrument.id}/book?start=2030-01-03T10:00&end=2030-01-03T10:30"
    ).get_data(as_text=True)
    assert 'value="2030-01-03T10:00"' in html
    assert 'value="2030-01-03T10:30"' in html


def test_booking_is_created_pending_in_the_institute_zone(
    client: Any, login: Any, world: Any, db: Any
) -> None:
    login(world.sme)
    response = _post_booking(client, world)
    assert response.status_code == 302
    booking = db.session.scalars(select(Booking)).one()
    assert booking.status == BookingStatus.PENDING
    assert booking.start_at == dt.datetime(2030, 1, 3, 2, 0, tzinfo=dt.UTC)
    assert booking.samples == "3 台"
    page = client.get(response.headers["Location"])
    assert "Your request was sent" in page.get_data(as_text=True)
    assert "Pending approval" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "field_id", "message"),
    [
        ({"start": "2030-01-01T10:00", "end": "2030-01-01T11:00"}, "start", "hours ahead"),
        ({"start": "2030-01-03T10:10", "end": "2030-01-03T11:00"}, "start", "slot grid"),
        ({"end": "2030-01-03T10:00"}, "end", "end must be after"),
        ({"end": "2030-01-04T10:00"}, "end", "at most"),
        ({"purpose": ""}, "purpose", "fill in"),
        ({"start": "not a time"}, "start", "Not a valid"),
    ],
)
def test_booking_errors_appear_next_to_their_field_and_write_nothing(
    client: Any, login: Any, world: Any, db: Any, data: dict[str, str], field_id: str, message: str
) -> None:
    login(world.sme)
    response = _post_booking(client, world, **data)
    assert response.status_code in (409, 422)
    html = response.get_data(as_text=True)
    error = html.split(f'id="{field_id}-error"', 1)
    assert len(error) == 2, html[:3000]
    assert message in error[1].split("</p>", 1)[0]
    assert count_rows(Booking) == 0
    # what was typed is kept
    assert "校准压力变送器" in html or data.get("purpose") == ""


def test_nonexistent_local_time_is_a_field_error(
    client: Any, login: Any, world: Any, db: Any, make_instrument: Any, make_institute: Any
) -> None:
    set_clock(lambda: dt.datetime(2030, 3, 1, tzinfo=dt.UTC))
    ny = make_institute(timezone="America/New_York")
    instrument = make_instrument(institute=ny)
    db.session.commit()
    login(world.sme)
    response = client.post(
        f"/resources/{instrument.id}/book",
        data={"start": "2030-03-10T02:30", "end": "2030-03-10T03:30", "purpose": "x"},
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "does not exist" in html.split('id="start-error"', 1)[1].split("</p>", 1)[0]
    assert count_rows(Booking) == 0


def test_taken_slot_is_a_conflict_next_to_start(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    booking_for(world, make_booking, db, user=world.other_sme)
    login(world.sme)
    response = _post_booking(client, world)
    assert response.status_code == 409
    assert "already booked" in response.get_data(as_text=True).split('id="start-error"', 1)[1]
    assert count_rows(Booking) == 1


# -- My bookings and cancel ---------------------------------------------------------------


def test_my_bookings_lists_the_companys_bookings_with_deadline_and_feed(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    mine = booking_for(world, make_booking, db, user=world.colleague)
    theirs = booking_for(
        world,
        make_booking,
        db,
        user=world.other_sme,
        start=dt.datetime(2030, 1, 4, 2, 0, tzinfo=dt.UTC),
    )
    login(world.sme)
    html = client.get("/bookings").get_data(as_text=True)
    assert f"#{mine.id}<" in html
    assert f"#{theirs.id}<" not in html
    assert "2030-01-02 10:00" in html  # cancellation deadline: 24 h before, local time
    assert "/calendar/" in html and ".ics" in html


def test_cancel_before_deadline(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    booking = booking_for(world, make_booking, db)
    login(world.sme)
    response = client.post(f"/bookings/{booking.id}/cancel", data={"reason": "计划变更"})
    assert response.status_code == 302
    db.session.refresh(booking)
    assert booking.status == BookingStatus.CANCELLED
    assert "was cancelled" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_cancel_after_deadline_is_refused_and_keeps_the_reason(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    booking = booking_for(world, make_booking, db, start=dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC))
    login(world.sme)
    response = client.post(f"/bookings/{booking.id}/cancel", data={"reason": "生病"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "contact the institute" in html
    assert 'value="生病"' in html
    db.session.refresh(booking)
    assert booking.status == BookingStatus.PENDING


def test_other_company_cannot_cancel(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    booking = booking_for(world, make_booking, db)
    login(world.other_sme)
    assert client.post(f"/bookings/{booking.id}/cancel").status_code == 404
    db.session.refresh(booking)
    assert booking.status == BookingStatus.PENDING


def test_staff_cancel_any_time(
    client: Any, login: Any, world: Any, db: Any, make_booking: Any
) -> None:
    booking = booking_for(world, make_booking, db, start=dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC))
    login(world.staff)
    assert client.post(f"/bookings/{booking.id}/cancel").status_code == 302
    db.session.refresh(booking)
    assert booking.status == BookingStatus.CANCELLED


# -- notifications ------------------------------------------------------------------------


def _notification(db: Any, user: Any, key: str) -> Notification:
    n = Notification(
        user_id=user.id, kind="test", subject=f"Subject {key}", body_text="Body", dedupe_key=key
    )
    db.session.add(n)
    db.session.commit()
    return n


def test_notifications_list_and_mark_read(client: Any, login: Any, world: Any, db: Any) -> None:
    mine = _notification(db, world.sme, "a")
    theirs = _notification(db, world.other_sme, "b")
    login(world.sme)
    html = client.get("/notifications").get_data(as_text=True)
    assert "Subject a" in html and "Subject b" not in html
    assert client.post(f"/notifications/{theirs.id}/read").status_code == 404
    assert client.post(f"/notifications/{mine.id}/read").status_code == 302
    db.session.refresh(mine)
    db.session.refresh(theirs)
    assert mine.read_at is not None and theirs.read_at is None


def test_mark_all_read_only_touches_own(client: Any, login: Any, world: Any, db: Any) -> None:
    _notification(db, world.sme, "a")
    _notification(db, world.sme, "c")
    theirs = _notification(db, world.other_sme, "b")
    login(world.sme)
    assert client.post("/notifications/read-all").status_code == 302
    unread = db.session.scalars(select(Notification).where(Notification.read_at.is_(None))).all()
    assert [n.id for n in unread] == [theirs.id]
