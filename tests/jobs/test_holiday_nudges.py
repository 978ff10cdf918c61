"""Nudges to staff wait for a working day of their institute; booking reminders to
SMEs do not. A moving clock across a make-up Saturday and 1 October, on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from labshare.booking import holiday_admin
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import BookingStatus, Notification, Role
from tests import factories
from tests.jobsutil import freeze

SH = ZoneInfo("Asia/Shanghai")
NATIONAL_DAY = dt.date(2030, 10, 1)  # a Tuesday
MAKE_UP = dt.date(2030, 9, 28)  # a Saturday


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), SH)


def _calendar() -> None:
    holiday_admin.put_day(None, day=NATIONAL_DAY.isoformat(), kind="holiday", name="国庆节")
    holiday_admin.put_day(None, day=MAKE_UP.isoformat(), kind="workday", name="国庆节")


def _nudges(user_id: int) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification).where(
                Notification.kind == "pending_nudge", Notification.user_id == user_id
            )
        )
    )


def _setup(**institute_kw: Any) -> tuple[Any, Any]:
    institute = factories.make_institute(**institute_kw)
    instrument = factories.make_instrument(institute=institute)
    staff = factories.make_user(Role.STAFF, institute=institute)
    return instrument, staff


def test_a_nudge_waits_for_the_next_working_day_and_is_sent_once(app: Any) -> None:
    freeze(local(MAKE_UP, 8) - dt.timedelta(days=3))
    instrument, staff = _setup()
    _calendar()
    start = local(dt.date(2030, 10, 10), 9)
    early = factories.make_booking(resource=instrument, start=start)
    db.session.commit()

    # the make-up Saturday is a working day: the old request is nudged
    freeze(local(MAKE_UP, 10))
    assert run_job("pending-nudges") == {"bookings": 1, "messages": 1}
    assert len(_nudges(staff.id)) == 1

    freeze(local(dt.date(2030, 9, 30), 10))
    late = factories.make_booking(resource=instrument, start=start + dt.timedelta(hours=3))
    db.session.commit()
    # 07:30 on 1 October in Shanghai (still 30 September in UTC): the holiday, wait
    freeze(local(NATIONAL_DAY, 7, 30))
    assert local(NATIONAL_DAY, 7, 30).astimezone(dt.UTC).date() == dt.date(2030, 9, 30)
    assert run_job("pending-nudges") == {"bookings": 0, "messages": 0}  # not old enough
    for hour in (10, 15, 23):
        freeze(local(NATIONAL_DAY, hour, 30))
        assert run_job("pending-nudges") == {"bookings": 0, "messages": 0, "holiday": 1}
    assert len(_nudges(staff.id)) == 1
    # 00:30 on 2 October in Shanghai (still 1 October in UTC): a working day again
    freeze(local(NATIONAL_DAY + dt.timedelta(days=1), 0, 30))
    assert run_job("pending-nudges") == {"bookings": 1, "messages": 1}
    assert run_job("pending-nudges") == {"bookings": 0, "messages": 0}
    notes = _nudges(staff.id)
    assert len(notes) == 2
    assert f"/bookings/{late.id}" in notes[-1].body_text
    assert f"/bookings/{early.id}" not in notes[-1].body_text
    # later runs, holidays or not, never send it again
    for day in (dt.date(2030, 10, 3), dt.date(2030, 10, 8)):
        freeze(local(day, 10))
        assert run_job("pending-nudges") == {"bookings": 0, "messages": 0}
    assert len(_nudges(staff.id)) == 2


def test_institutes_and_labs_that_opted_out_are_nudged_on_the_holiday(app: Any) -> None:
    freeze(local(NATIONAL_DAY, 10) - dt.timedelta(days=3))
    opted_out, staff_a = _setup()
    own_lab, staff_b = _setup()
    follows, staff_c = _setup()
    _calendar()
    holiday_admin.set_institute_follows(None, opted_out.institute, False)
    holiday_admin.set_lab_follows(None, own_lab.lab, False)
    for instrument in (opted_out, own_lab, follows):
        factories.make_booking(resource=instrument, start=local(dt.date(2030, 10, 10), 9))
    db.session.commit()

    freeze(local(NATIONAL_DAY, 10))
    assert run_job("pending-nudges") == {"bookings": 2, "messages": 2, "holiday": 1}
    assert [len(_nudges(s.id)) for s in (staff_a, staff_b, staff_c)] == [1, 1, 0]
    freeze(local(NATIONAL_DAY + dt.timedelta(days=1), 9))
    assert run_job("pending-nudges") == {"bookings": 1, "messages": 1}
    assert [len(_nudges(s.id)) for s in (staff_a, staff_b, staff_c)] == [1, 1, 1]


def test_a_provinces_holiday_holds_only_its_institutes_nudges(app: Any) -> None:
    day = dt.date(2030, 10, 9)
    freeze(local(day, 10) - dt.timedelta(days=3))
    here, staff_here = _setup()  # the factory's province, 320000
    there, staff_there = _setup(province_code="110000")
    holiday_admin.put_day(None, day=day.isoformat(), kind="holiday", name="地方节", region="110000")
    for instrument in (here, there):
        factories.make_booking(resource=instrument, start=local(dt.date(2030, 10, 20), 9))
    db.session.commit()
    freeze(local(day, 10))
    assert run_job("pending-nudges") == {"bookings": 1, "messages": 1, "holiday": 1}
    assert (len(_nudges(staff_here.id)), len(_nudges(staff_there.id))) == (1, 0)


def test_booking_reminders_to_smes_keep_to_elapsed_time(app: Any) -> None:
    freeze(local(MAKE_UP, 8))
    instrument, _staff = _setup()
    _calendar()
    booking = factories.make_booking(
        resource=instrument,
        status=BookingStatus.APPROVED,
        start=local(NATIONAL_DAY + dt.timedelta(days=1), 9),
    )
    db.session.commit()
    freeze(local(NATIONAL_DAY, 9, 30))  # on the holiday, 23.5 hours before
    assert run_job("reminders")["sent"] == 1
    [note] = db.session.scalars(select(Notification).where(Notification.kind == "reminder"))
    assert note.booking_id == booking.id
