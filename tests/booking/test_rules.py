"""Every booking rule refuses by name, every bad input names its field, and a
refusal writes nothing. Service-level, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from labshare.booking.bookings import create_booking
from labshare.booking.policies.qualifications import grant_qualification, revoke_qualification
from labshare.booking.rules import DEFAULT, Rules, effective_rules
from labshare.errors import NotAllowed, RuleViolation, ValidationFailed
from labshare.models import (
    AuditLog,
    Booking,
    BookingRules,
    BookingStatus,
    Closure,
    Notification,
    ResourceStatus,
    Role,
)
from labshare.timeutil import set_clock
from tests.factories import weekday_hours
from tests.helpers import count_rows

SHANGHAI = "Asia/Shanghai"
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)  # Tuesday 08:00 in Shanghai

RULES = {
    "slot_minutes": 30,
    "min_minutes": 60,
    "max_minutes": 240,
    "lead_time_hours": 24,
    "horizon_days": 60,
    "requires_approval": True,
    "max_active_per_company": 2,
    "cancel_deadline_hours": 48,
}


def local(y: int, m: int, d: int, h: int, mi: int = 0, tz: str = SHANGHAI) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime(y, m, d, h, mi, tzinfo=ZoneInfo(tz))


pytestmark = pytest.mark.usefixtures("cheap_passwords")


@pytest.fixture
def env(db: Any, make_lab: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    lab = make_lab(hours=weekday_hours("08:00", "18:00"))
    inst = make_instrument(lab=lab, rules=dict(RULES))
    sme = make_user(Role.SME)
    staff = make_user(Role.STAFF, institute=inst.institute)
    db.session.commit()
    return SimpleNamespace(lab=lab, inst=inst, sme=sme, staff=staff)


def book(env: SimpleNamespace, start: dt.datetime, end: dt.datetime, **kw: Any) -> Booking:
    resource = kw.pop("resource", env.inst)
    booker = kw.pop("booker", env.sme)
    kw.setdefault("purpose", "校准压力变送器")
    return create_booking(resource, booker, start, end, **kw)


def refused(db: Any, exc_type: type[Exception], fn: Any, *args: Any, **kw: Any) -> Any:
    """Call ``fn``, expect ``exc_type``, and check that nothing was written."""
    before = {m: count_rows(m) for m in (Booking, AuditLog, Notification)}
    with pytest.raises(exc_type) as info:
        fn(*args, **kw)
    assert not db.session.new
    db.session.rollback()
    assert {m: count_rows(m) for m in (Booking, AuditLog, Notification)} == before
    assert str(info.value.message)  # a sentence, rendered
    return info.value


def rule_of(db: Any, env: SimpleNamespace, start: dt.datetime, end: dt.datetime, **kw: Any) -> Any:
    err = refused(db, RuleViolation, book, env, start, end, **kw)
    return err.rule, err.field


MON = (2030, 1, 7)  # a Monday, six days after NOW


# -- the happy path ------------------------------------------------------------------------


def test_valid_booking_is_pending_with_fee_audit_and_outbox(db, env):
    booking = book(env, local(*MON, 9), local(*MON, 11))
    db.session.commit()
    assert booking.status == BookingStatus.PENDING
    assert booking.start_at == dt.datetime(2030, 1, 7, 1, tzinfo=dt.UTC)
    assert booking.fee == Decimal("300.00")  # 2 h x 150
    assert booking.fee_waived == Decimal("150.00")  # 50 %
    assert booking.company_id == env.sme.company_id
    assert booking.institute_id == env.inst.institute_id
    entry = db.session.scalar(select(AuditLog).where(AuditLog.object_id == booking.id))
    assert (entry.action, entry.from_state, entry.to_state) == ("booking.create", None, "pending")
    kinds = sorted(db.session.scalars(select(Notification.kind)))
    assert kinds == ["booking_received", "booking_requested"]


def test_auto_approve_creates_approved_booking(db, env):
    db.session.get(BookingRules, env.inst.rules.id).requires_approval = False
    db.session.commit()
    booking = book(env, local(*MON, 9), local(*MON, 10))
    db.session.commit()
    assert booking.status == BookingStatus.APPROVED
    kinds = list(db.session.scalars(select(Notification.kind)))
    assert kinds == ["booking_confirmed"]


def test_fee_rounds_to_cents(db, env):
    env.inst.fee_per_hour = Decimal("33.33")
    env.inst.fee_waiver_percent = 33
    db.session.commit()
    booking = book(env, local(*MON, 9), local(*MON, 10, 30))
    assert booking.fee == Decimal("50.00")  # 1.5 x 33.33 = 49.995
    assert booking.fee_waived == Decimal("16.50")


def test_back_to_back_bookings_are_legal(db, env, make_user):
    book(env, local(*MON, 9), local(*MON, 10))
    db.session.commit()
    other = make_user(Role.SME)
    db.session.commit()
    book(env, local(*MON, 10), local(*MON, 11), booker=other)
    book(env, local(*MON, 8), local(*MON, 9), booker=other)
    db.session.commit()
    assert count_rows(Booking) == 3


# -- effective rules -----------------------------------------------------------------------


def test_effective_rules_instrument_then_lab_then_default(db, make_lab, make_instrument):
    lab = make_lab(rules={"slot_minutes": 15})
    own = make_instrument(lab=lab, rules={"slot_minutes": 60, "requires_approval": False})
    inherits = make_instrument(lab=lab)
    bare = make_instrument()
    db.session.commit()
    assert effective_rules(own).slot_minutes == 60
    assert effective_rules(own).requires_approval is False
    assert effective_rules(inherits).slot_minutes == 15
    assert effective_rules(lab).slot_minutes == 15
    assert effective_rules(bare) == DEFAULT
    assert isinstance(DEFAULT, Rules) and DEFAULT.slot_minutes == 30


# -- each rule, by name --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (local(*MON, 9, 15), local(*MON, 10, 30), "start"),
        (local(*MON, 9), local(*MON, 10, 10), "end"),
        (local(*MON, 9).replace(second=30), local(*MON, 10), "start"),
    ],
)
def test_granularity(db, env, start, end, field):
    assert rule_of(db, env, start, end) == ("granularity", field)


def test_granularity_is_in_the_institute_zone(
    db, make_lab, make_instrument, make_user, make_institute
):
    """Kolkata is UTC+05:30: a 60-minute grid there is on the half hour in UTC."""
    set_clock(lambda: NOW)
    institute = make_institute(timezone="Asia/Kolkata")
    lab = make_lab(institute=institute, hours=weekday_hours("08:00", "18:00"))
    inst = make_instrument(lab=lab, rules={**RULES, "slot_minutes": 60})
    sme = make_user(Role.SME)
    db.session.commit()
    env = SimpleNamespace(inst=inst, sme=sme)
    utc_grid = dt.datetime(2030, 1, 7, 4, 0, tzinfo=dt.UTC)  # 09:30 in Kolkata
    assert rule_of(db, env, utc_grid, utc_grid + dt.timedelta(hours=1))[0] == "granularity"
    booking = book(env, local(*MON, 9, tz="Asia/Kolkata"), local(*MON, 10, tz="Asia/Kolkata"))
    assert booking.start_at == dt.datetime(2030, 1, 7, 3, 30, tzinfo=dt.UTC)


def test_min_and_max_duration(db, env):
    assert rule_of(db, env, local(*MON, 9), local(*MON, 9, 30)) == ("min_duration", "end")
    assert rule_of(db, env, local(*MON, 9), local(*MON, 13, 30)) == ("max_duration", "end")
    book(env, local(*MON, 9), local(*MON, 13))  # exactly the maximum
    book(env, local(*MON, 14), local(*MON, 15))  # exactly the minimum


def test_lead_time(db, env):
    # NOW + 23:30 is 2030-01-01 23:30 UTC = 07:30 local: move opening hours out of the way
    start = NOW + dt.timedelta(hours=23, minutes=30)  # 2030-01-02 07:30 local
    env.lab.opening_periods = weekday_hours("00:00", "23:30")
    db.session.commit()
    assert rule_of(db, env, start, start + dt.timedelta(hours=1)) == ("lead_time", "start")
    ok = NOW + dt.timedelta(hours=24)
    book(env, ok, ok + dt.timedelta(hours=1))


def test_horizon(db, env):
    limit = NOW + dt.timedelta(days=60)  # 08:00 local
    late = limit + dt.timedelta(minutes=30)
    assert rule_of(db, env, late, late + dt.timedelta(hours=1)) == ("horizon", "start")
    book(env, limit, limit + dt.timedelta(hours=1))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (local(*MON, 7, 30), local(*MON, 9)),  # starts before opening
        (local(*MON, 17), local(*MON, 18, 30)),  # ends after closing
        (local(*MON, 20), local(*MON, 21)),  # entirely closed
    ],
)
def test_opening_hours(db, env, start, end):
    assert rule_of(db, env, start, end) == ("opening_hours", "start")


def test_opening_hours_must_fit_one_period(db, env):
    env.lab.opening_periods = weekday_hours("08:00", "12:00") + weekday_hours("13:00", "18:00")
    db.session.commit()
    assert rule_of(db, env, local(*MON, 11), local(*MON, 14))[0] == "opening_hours"
    book(env, local(*MON, 13), local(*MON, 15))


def test_opening_hours_only_on_open_weekdays(db, env):
    env.lab.opening_periods = weekday_hours("08:00", "18:00", days=range(5))  # Mon-Fri
    db.session.commit()
    saturday = (2030, 1, 12)
    assert rule_of(db, env, local(*saturday, 9), local(*saturday, 10))[0] == "opening_hours"


def test_lab_without_opening_periods_is_closed(db, env):
    env.lab.opening_periods = []
    db.session.commit()
    assert rule_of(db, env, local(*MON, 9), local(*MON, 10))[0] == "opening_hours"


@pytest.mark.parametrize("on_lab", [False, True])
def test_closure_of_instrument_or_its_lab(db, env, on_lab):
    target = env.lab if on_lab else env.inst
    db.session.add(Closure(resource_id=target.id, start_at=local(*MON, 10), end_at=local(*MON, 12)))
    db.session.commit()
    assert rule_of(db, env, local(*MON, 9), local(*MON, 11)) == ("closure", "start")
    assert rule_of(db, env, local(*MON, 11), local(*MON, 13))[0] == "closure"
    book(env, local(*MON, 9), local(*MON, 10))  # ends as the closure starts
    book(env, local(*MON, 12), local(*MON, 13))  # starts as it ends


def test_calibration_expired(db, env):
    env.inst.calibration_valid_until = dt.date(2030, 1, 7)
    db.session.commit()
    book(env, local(*MON, 16), local(*MON, 18))  # the valid-until day itself is fine
    db.session.commit()
    tuesday = (2030, 1, 8)
    assert rule_of(db, env, local(*tuesday, 9), local(*tuesday, 10)) == (
        "calibration_expired",
        "end",
    )


def test_no_calibration_date_means_no_limit(db, env):
    env.inst.calibration_valid_until = None
    db.session.commit()
    book(env, local(2030, 2, 25, 9), local(2030, 2, 25, 10))


@pytest.mark.parametrize("status", [ResourceStatus.MAINTENANCE, ResourceStatus.RETIRED])
def test_instrument_unavailable(db, env, status):
    env.inst.status = status
    db.session.commit()
    assert rule_of(db, env, local(*MON, 9), local(*MON, 10)) == (
        "instrument_unavailable",
        "resource_id",
    )


def test_company_quota(db, env, make_user, make_booking):
    colleague = make_user(Role.SME, company=env.sme.company)
    other = make_user(Role.SME)
    # an ended booking and a cancelled one do not count
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=NOW - dt.timedelta(days=2),
        status=BookingStatus.APPROVED,
    )
    make_booking(
        resource=env.inst,
        user=env.sme,
        start=local(2030, 1, 9, 9),
        status=BookingStatus.CANCELLED,
    )
    db.session.commit()
    book(env, local(*MON, 9), local(*MON, 10))
    book(env, local(*MON, 10), local(*MON, 11), booker=colleague)
    db.session.commit()
    assert rule_of(db, env, local(*MON, 11), local(*MON, 12)) == ("company_quota", "resource_id")
    assert rule_of(db, env, local(*MON, 11), local(*MON, 12), booker=colleague)[0] == (
        "company_quota"
    )
    book(env, local(*MON, 11), local(*MON, 12), booker=other)


def test_qualification(db, env):
    env.inst.requires_qualification = True
    db.session.commit()
    assert rule_of(db, env, local(*MON, 9), local(*MON, 10)) == ("qualification", "resource_id")
    grant_qualification(env.staff, env.sme, env.inst, valid_until=dt.date(2030, 1, 6))
    db.session.commit()
    assert rule_of(db, env, local(*MON, 9), local(*MON, 10))[0] == "qualification"  # lapsed
    grant_qualification(env.staff, env.sme, env.inst)
    db.session.commit()
    book(env, local(*MON, 9), local(*MON, 10))
    db.session.commit()
    assert revoke_qualification(env.staff, env.sme, env.inst) is True
    db.session.commit()
    assert rule_of(db, env, local(*MON, 11), local(*MON, 12))[0] == "qualification"


def test_only_own_institute_staff_grant_qualifications(db, env, make_user):
    outsider = make_user(Role.STAFF)
    db.session.commit()
    with pytest.raises(NotAllowed):
        grant_qualification(outsider, env.sme, env.inst)
    with pytest.raises(NotAllowed):
        grant_qualification(env.sme, env.sme, env.inst)


# -- bad input names its field -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"purpose": ""}, "purpose"),
        ({"purpose": "   "}, "purpose"),
        ({"purpose": "x" * 501}, "purpose"),
        ({"samples": "x" * 5001}, "samples"),
        ({"end": local(*MON, 9)}, "end"),
        ({"end": local(*MON, 8)}, "end"),
        ({"start": dt.datetime(2030, 1, 7, 9)}, "start"),
        ({"end": dt.datetime(2030, 1, 7, 10)}, "end"),
    ],
)
def test_validation_names_the_field(db, env, kw, field):
    args: dict[str, Any] = {"start": local(*MON, 9), "end": local(*MON, 10), **kw}
    err = refused(db, ValidationFailed, book, env, args.pop("start"), args.pop("end"), **args)
    assert err.field == field


def test_purpose_of_500_characters_is_fine(db, env):
    assert len(book(env, local(*MON, 9), local(*MON, 10), purpose="计" * 500).purpose) == 500


# -- who may book --------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.STAFF, Role.ADMIN])
def test_staff_and_admin_cannot_book(db, env, make_user, role):
    user = make_user(role, institute=env.inst.institute) if role is Role.STAFF else make_user(role)
    db.session.commit()
    refused(db, NotAllowed, book, env, local(*MON, 9), local(*MON, 10), booker=user)


def test_inactive_sme_cannot_book(db, env):
    env.sme.active = False
    db.session.commit()
    refused(db, NotAllowed, book, env, local(*MON, 9), local(*MON, 10))
