"""Every life-cycle move inside its time window (services/windows.py), approval
re-running the creation checks, the one no-show definition, and the waitlist's
offers against the buffer and the lead time. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from labshare.booking.bookings import (
    approve_booking,
    cancel_booking,
    create_booking,
    mark_no_show,
    record_usage,
    reject_booking,
)
from labshare.booking.policies import waitlist
from labshare.booking.windows import WINDOWS, Move
from labshare.errors import InvalidTransition, RuleViolation, SlotTaken, ValidationFailed
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import (
    AuditLog,
    Booking,
    BookingQuota,
    BookingRules,
    BookingStatus,
    Qualification,
    Role,
    ServiceType,
    UsageRecord,
    WaitlistStatus,
)
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import bearer, error_of

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
END = dt.datetime(2030, 1, 7, 11, tzinfo=SH)
HOUR = dt.timedelta(hours=1)
MIN = dt.timedelta(minutes=1)
RULES = {**factories.OPEN_RULES, "requires_approval": True, "max_active_per_company": 10}

pytestmark = pytest.mark.usefixtures("cheap_passwords")


def at(moment: dt.datetime) -> None:
    set_clock(lambda: moment)


@pytest.fixture
def env(app: Any) -> SimpleNamespace:
    at(NOW)
    lab = factories.make_lab(hours=factories.weekday_hours("08:00", "18:00"))
    inst = factories.make_instrument(lab=lab, rules=dict(RULES))
    sme = factories.make_user(Role.SME)
    staff = factories.make_user(Role.STAFF, institute=inst.institute)
    db.session.commit()
    return SimpleNamespace(lab=lab, inst=inst, sme=sme, staff=staff)


def request(env: SimpleNamespace, start: dt.datetime = START, end: dt.datetime = END) -> Booking:
    booking = create_booking(env.inst, env.sme, start, end, purpose="校准")
    db.session.commit()
    assert booking.status == BookingStatus.PENDING
    return booking


def approved(env: SimpleNamespace) -> Booking:
    booking = request(env)
    approve_booking(booking, env.staff)
    db.session.commit()
    return booking


def usage(**kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "checked_in_at": START,
        "checked_out_at": END,
        "service_type": ServiceType.CALIBRATION,
        "samples_count": 1,
        "problem_solved": True,
    }
    values.update(kw)
    return values


def refused(move: Any, booking: Booking, status: BookingStatus) -> InvalidTransition:
    with pytest.raises(InvalidTransition) as caught:
        move()
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == status
    return caught.value


# -- the table ------------------------------------------------------------------------------


def test_every_move_has_a_window_and_a_reason_for_each_bound() -> None:
    assert set(WINDOWS) == set(Move)
    for move, window in WINDOWS.items():
        assert (window.opens is None) == (window.too_early is None), move
        assert (window.closes is None) == (window.too_late is None), move


# -- approve --------------------------------------------------------------------------------


def test_staff_cannot_approve_a_request_that_has_begun_or_ended(env: SimpleNamespace) -> None:
    booking = request(env)
    for moment in (START, START + 10 * MIN, END + HOUR):
        at(moment.astimezone(dt.UTC))
        error = refused(lambda: approve_booking(booking, env.staff), booking, BookingStatus.PENDING)
        assert "2030-01-07 09:00" in str(error.message)
    approvals = select(func.count(AuditLog.id)).where(AuditLog.action == "booking.approve")
    assert db.session.scalar(approvals) == 0
    # rejecting it stays possible: staff can always clear a request nobody decided
    reject_booking(booking, env.staff, "too late")
    db.session.commit()
    assert booking.status == BookingStatus.REJECTED


def test_approval_just_before_the_start_is_allowed(env: SimpleNamespace) -> None:
    booking = request(env)
    at(START.astimezone(dt.UTC) - MIN)  # inside the lead time: judged at request time
    approve_booking(booking, env.staff)
    db.session.commit()
    assert booking.status == BookingStatus.APPROVED


def test_the_api_says_why_in_chinese(client: Any, env: SimpleNamespace) -> None:
    booking = request(env)
    env.staff.locale = "zh_CN"
    db.session.commit()
    at(START.astimezone(dt.UTC) + MIN)
    response = client.post(f"/api/v1/bookings/{booking.id}/approve", headers=bearer(env.staff))
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "invalid_state"
    assert "已开始" in error["message"] and "2030-01-07 09:00" in error["message"]


# -- approval re-runs the creation checks ----------------------------------------------------


def test_approval_rechecks_opening_hours(env: SimpleNamespace) -> None:
    booking = request(env)
    for period in env.lab.opening_periods:
        period.opens = dt.time(10, 0)  # now opens after the request's start
    db.session.commit()
    with pytest.raises(RuleViolation) as caught:
        approve_booking(booking, env.staff)
    assert caught.value.rule == "opening_hours"


def test_approval_rechecks_a_revoked_or_lapsed_qualification(env: SimpleNamespace) -> None:
    env.inst.requires_qualification = True
    qualification = Qualification(user_id=env.sme.id, resource_id=env.inst.id)
    db.session.add(qualification)
    db.session.commit()
    booking = request(env)
    qualification.valid_until = dt.date(2030, 1, 6)  # lapses before the booking's day
    db.session.commit()
    with pytest.raises(RuleViolation) as caught:
        approve_booking(booking, env.staff)
    assert caught.value.rule == "qualification"
    db.session.rollback()
    db.session.delete(db.session.get(Qualification, qualification.id))  # revoked
    db.session.commit()
    with pytest.raises(RuleViolation) as caught:
        approve_booking(booking, env.staff)
    assert caught.value.rule == "qualification"


def test_approval_rechecks_tightened_quotas(env: SimpleNamespace) -> None:
    first = request(env)
    second = request(env, START + 3 * HOUR, END + 3 * HOUR)
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.max_active_per_company = 1
    db.session.commit()
    with pytest.raises(RuleViolation) as caught:
        approve_booking(first, env.staff)  # the company holds two; one is allowed
    assert caught.value.rule == "company_quota"
    db.session.rollback()
    rules.max_active_per_company = 10
    cancel_booking(second, env.sme)
    quota = BookingQuota(
        institute_id=env.inst.institute_id,
        resource_id=env.inst.id,
        period="week",
        max_hours=Decimal("1"),
    )
    db.session.add(quota)
    db.session.commit()
    with pytest.raises(RuleViolation) as caught:
        approve_booking(first, env.staff)  # 2 hours > 1
    assert caught.value.rule == "quota_hours"
    db.session.rollback()
    quota.max_hours = Decimal("2")
    db.session.commit()
    approve_booking(first, env.staff)  # the request itself is not counted twice
    db.session.commit()
    assert first.status == BookingStatus.APPROVED


def test_approval_does_not_recheck_lead_time_or_horizon(env: SimpleNamespace) -> None:
    booking = request(env)
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.lead_time_hours = 24 * 30
    rules.horizon_days = 1
    db.session.commit()
    approve_booking(booking, env.staff)
    db.session.commit()
    assert booking.status == BookingStatus.APPROVED


# -- cancel ---------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["staff", "sme"])
@pytest.mark.parametrize("when", ["in_progress", "over"])
def test_nobody_cancels_a_booking_in_progress_or_over(
    env: SimpleNamespace, who: str, when: str
) -> None:
    booking = approved(env)
    at(START.astimezone(dt.UTC) + 30 * MIN if when == "in_progress" else END + HOUR)
    actor = getattr(env, who)
    error = refused(lambda: cancel_booking(booking, actor), booking, BookingStatus.APPROVED)
    assert "in progress or over" in str(error.message)


def test_staff_cancel_until_the_start(env: SimpleNamespace) -> None:
    booking = approved(env)
    at(START.astimezone(dt.UTC) - MIN)
    cancel_booking(booking, env.staff, "instrument broke")
    db.session.commit()
    assert booking.status == BookingStatus.CANCELLED


def test_a_cancelled_over_booking_keeps_its_no_show(env: SimpleNamespace) -> None:
    """The job's no-show is not erased by a late cancellation."""
    booking = approved(env)
    at(END + 2 * HOUR)
    run_job("no-shows")
    db.session.refresh(booking)
    assert booking.status == BookingStatus.NO_SHOW
    refused(lambda: cancel_booking(booking, env.staff), booking, BookingStatus.NO_SHOW)


# -- usage, no-show, complete ---------------------------------------------------------------


def test_usage_cannot_be_recorded_before_the_start(env: SimpleNamespace) -> None:
    booking = approved(env)
    at(START.astimezone(dt.UTC) - MIN)
    error = refused(
        lambda: record_usage(
            booking, env.staff, **usage(checked_out_at=START - HOUR, checked_in_at=START - 2 * HOUR)
        ),
        booking,
        BookingStatus.APPROVED,
    )
    assert "only once it has begun" in str(error.message)
    assert db.session.scalar(select(func.count(UsageRecord.id))) == 0


@pytest.mark.parametrize("field", ["checked_in_at", "checked_out_at"])
def test_usage_times_are_not_in_the_future(env: SimpleNamespace, field: str) -> None:
    booking = approved(env)
    at(START.astimezone(dt.UTC) + 30 * MIN)  # in progress
    kw = usage(checked_in_at=START, checked_out_at=START + 20 * MIN)
    if field == "checked_in_at":
        kw.update(checked_in_at=START + 31 * MIN, checked_out_at=START + 32 * MIN)
    else:
        kw.update(checked_out_at=START + 40 * MIN)
    with pytest.raises(ValidationFailed) as caught:
        record_usage(booking, env.staff, **kw)
    assert caught.value.field == field
    db.session.rollback()
    assert db.session.scalar(select(func.count(UsageRecord.id))) == 0
    record_usage(booking, env.staff, **usage(checked_out_at=START + 30 * MIN))
    db.session.commit()
    assert booking.status == BookingStatus.COMPLETED


def test_usage_form_in_the_future_names_the_field(client: Any, env: SimpleNamespace) -> None:
    booking = approved(env)
    at(START.astimezone(dt.UTC) + 30 * MIN)
    env.staff.locale = "zh_CN"
    db.session.commit()
    response = client.post(
        f"/api/v1/bookings/{booking.id}/usage",
        json={
            "checked_in_at": "2030-01-07T09:00:00+08:00",
            "checked_out_at": "2030-01-07T11:00:00+08:00",
            "service_type": "calibration",
            "samples_count": 1,
            "problem_solved": True,
        },
        headers=bearer(env.staff),
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "checked_out_at" and "将来" in error["message"]


def test_staff_no_show_before_the_start_is_refused(env: SimpleNamespace) -> None:
    booking = approved(env)
    at(START.astimezone(dt.UTC) - MIN)
    refused(lambda: mark_no_show(booking, env.staff), booking, BookingStatus.APPROVED)


def test_the_one_no_show_never_takes_a_booking_with_usage(env: SimpleNamespace) -> None:
    """Usage recorded (its completion not yet run) means somebody came: the job's,
    the release's and staff's no-show are the same conditional UPDATE, and it
    refuses."""
    booking = approved(env)
    db.session.add(
        UsageRecord(
            booking_id=booking.id,
            checked_in_at=START,
            checked_out_at=END + 5 * HOUR,  # check-out still ahead: not completed yet
            service_type=ServiceType.TESTING,
            samples_count=0,
            problem_solved=True,
            recorded_by_id=env.staff.id,
        )
    )
    db.session.commit()
    at(END + 2 * HOUR)
    assert mark_no_show(booking, quiet=True) is False
    assert booking.status == BookingStatus.APPROVED


def test_the_one_no_show_never_takes_a_booking_not_begun(env: SimpleNamespace) -> None:
    booking = approved(env)
    assert mark_no_show(booking, quiet=True, now=START.astimezone(dt.UTC) - MIN) is False
    assert booking.status == BookingStatus.APPROVED


def test_complete_job_waits_for_the_start(env: SimpleNamespace) -> None:
    booking = approved(env)
    db.session.add(
        UsageRecord(
            booking_id=booking.id,
            checked_in_at=START - 2 * HOUR,  # an imported row with odd times
            checked_out_at=START - HOUR,
            service_type=ServiceType.TESTING,
            samples_count=0,
            problem_solved=True,
            recorded_by_id=env.staff.id,
        )
    )
    db.session.commit()
    at(START.astimezone(dt.UTC) - 30 * MIN)
    assert run_job("complete")["completed"] == 0
    at(START.astimezone(dt.UTC))
    assert run_job("complete")["completed"] == 1


# -- waitlist -------------------------------------------------------------------------------


def _instrument(**rules: Any) -> Any:
    inst = factories.make_instrument(rules={**factories.OPEN_RULES, **rules})
    db.session.commit()
    return inst


def test_an_entry_blocked_only_by_the_buffer_is_offered_when_the_booking_goes(
    app: Any,
) -> None:
    at(NOW)
    inst = _instrument(buffer_minutes=30)
    holder, a, third = (factories.make_user(Role.SME) for _ in range(3))
    blocking = create_booking(inst, holder, START, END, purpose="first")
    db.session.commit()
    with pytest.raises(SlotTaken) as caught:
        create_booking(inst, a, END, END + HOUR, purpose="right after")
    assert caught.value.details.get("buffer_minutes") == 30
    db.session.rollback()
    entry = waitlist.join(inst, a, END, END + HOUR, purpose="right after")
    db.session.commit()
    cancel_booking(blocking, holder, "plans changed")
    db.session.commit()
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.OFFERED
    with pytest.raises(SlotTaken):  # a third company cannot jump the line
        create_booking(inst, third, END, END + HOUR, purpose="me first")
    db.session.rollback()
    booking = waitlist.accept_offer(entry, a)
    db.session.commit()
    assert booking.start_at == END.astimezone(dt.UTC)


def test_an_offer_expires_by_the_last_moment_it_can_be_taken(app: Any) -> None:
    at(NOW)
    inst = _instrument(lead_time_hours=24, waitlist_offer_minutes=24 * 60)
    holder, a = factories.make_user(Role.SME), factories.make_user(Role.SME)
    blocking = create_booking(inst, holder, START, END, purpose="first")
    db.session.commit()
    entry = waitlist.join(inst, a, START, END, purpose="same")
    db.session.commit()
    freed = START.astimezone(dt.UTC) - 36 * HOUR  # 36 h ahead: lead time 24 h, offer 24 h
    at(freed)
    cancel_booking(blocking, holder)
    db.session.commit()
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.OFFERED
    deadline = START.astimezone(dt.UTC) - 24 * HOUR
    assert entry.offer_expires_at == deadline  # not freed + 24 h
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "waitlist.offer"))
    assert audit.data["offer_expires_at"] == deadline.isoformat()
    at(deadline)
    with pytest.raises(InvalidTransition):
        waitlist.accept_offer(entry, a)
    db.session.rollback()
    run_job("waitlist-offers")
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.EXPIRED


def test_an_old_offer_past_the_lead_time_cannot_be_taken(app: Any) -> None:
    """An offer made before expiries knew the lead time: the window still refuses."""
    at(NOW)
    inst = _instrument(lead_time_hours=24)
    holder, a = factories.make_user(Role.SME), factories.make_user(Role.SME)
    blocking = create_booking(inst, holder, START, END, purpose="first")
    db.session.commit()
    entry = waitlist.join(inst, a, START, END, purpose="same")
    db.session.commit()
    cancel_booking(blocking, holder)
    db.session.commit()
    db.session.refresh(entry)
    entry.offer_expires_at = START.astimezone(dt.UTC)  # as the old code set it
    db.session.commit()
    at(START.astimezone(dt.UTC) - 2 * HOUR)
    with pytest.raises(InvalidTransition) as caught:
        waitlist.accept_offer(entry, a)
    assert "lead time" in str(caught.value.message)
