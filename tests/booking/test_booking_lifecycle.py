"""The booking life cycle: every allowed transition, every forbidden one, audit
and outbox rows in the same transaction, and who may do what."""

from __future__ import annotations

import datetime as dt
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
from labshare.booking.permissions import can_view_booking, is_staff_of, visible_bookings
from labshare.errors import (
    InvalidTransition,
    NotAllowed,
    NotFound,
    RuleViolation,
    SlotTaken,
    ValidationFailed,
)
from labshare.models import (
    AuditLog,
    Booking,
    BookingStatus,
    Closure,
    Notification,
    ResourceStatus,
    Role,
    ServiceType,
    UsageRecord,
)
from labshare.timeutil import set_clock
from tests.factories import weekday_hours

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
END = dt.datetime(2030, 1, 7, 11, tzinfo=SH)
RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 24,
    "horizon_days": 90,
    "requires_approval": True,
    "max_active_per_company": 10,
    "cancel_deadline_hours": 48,
}


pytestmark = pytest.mark.usefixtures("cheap_passwords")


@pytest.fixture
def env(db: Any, make_lab: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    lab = make_lab(hours=weekday_hours("08:00", "18:00"))
    inst = make_instrument(lab=lab, rules=dict(RULES))
    sme = make_user(Role.SME)
    colleague = make_user(Role.SME, company=sme.company)
    stranger = make_user(Role.SME)  # another company
    staff = make_user(Role.STAFF, institute=inst.institute)
    other_staff = make_user(Role.STAFF)  # another institute
    admin = make_user(Role.ADMIN)
    db.session.commit()
    return SimpleNamespace(
        lab=lab,
        inst=inst,
        sme=sme,
        colleague=colleague,
        stranger=stranger,
        staff=staff,
        other_staff=other_staff,
        admin=admin,
    )


def pending(db: Any, env: SimpleNamespace, **kw: Any) -> Booking:
    booking = create_booking(
        env.inst, env.sme, kw.pop("start", START), kw.pop("end", END), purpose="校准", **kw
    )
    db.session.commit()
    return booking


def in_status(db: Any, env: SimpleNamespace, status: BookingStatus, make_booking: Any) -> Booking:
    booking = make_booking(resource=env.inst, user=env.sme, start=START, end=END, status=status)
    db.session.commit()
    return booking


def usage_kw(**kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "checked_in_at": START,
        "checked_out_at": END,
        "service_type": ServiceType.CALIBRATION,
        "samples_count": 3,
        "problem_solved": True,
        "notes": "ok",
    }
    values.update(kw)
    return values


def audits(db: Any, booking: Booking) -> list[tuple[str, str | None, str | None, int | None]]:
    rows = db.session.scalars(
        select(AuditLog)
        .where(AuditLog.object_type == "booking", AuditLog.object_id == booking.id)
        .order_by(AuditLog.id)
    )
    return [(r.action, r.from_state, r.to_state, r.actor_id) for r in rows]


def kinds(db: Any, booking: Booking) -> list[str]:
    return sorted(
        db.session.scalars(select(Notification.kind).where(Notification.booking_id == booking.id))
    )


# -- allowed transitions -------------------------------------------------------------------


def test_pending_to_approved(db, env):
    booking = pending(db, env)
    approve_booking(booking, env.staff)
    db.session.commit()
    assert booking.status == BookingStatus.APPROVED
    assert booking.decided_by_id == env.staff.id and booking.decided_at == NOW
    assert audits(db, booking)[-1] == ("booking.approve", "pending", "approved", env.staff.id)
    assert "booking_confirmed" in kinds(db, booking)


def test_pending_to_rejected_with_reason(db, env):
    booking = pending(db, env)
    reject_booking(booking, env.staff, "  设备临时送检  ")
    db.session.commit()
    assert booking.status == BookingStatus.REJECTED
    assert booking.decision_reason == "设备临时送检"
    entry = db.session.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
    assert (entry.action, entry.from_state, entry.to_state, entry.reason) == (
        "booking.reject",
        "pending",
        "rejected",
        "设备临时送检",
    )
    assert "booking_rejected" in kinds(db, booking)


@pytest.mark.parametrize("approved", [False, True])
@pytest.mark.parametrize("who", ["sme", "colleague", "staff"])
def test_cancel_pending_or_approved(db, env, approved, who):
    booking = pending(db, env)
    if approved:
        approve_booking(booking, env.staff)
        db.session.commit()
    actor = getattr(env, who)
    cancel_booking(booking, actor, "计划有变")
    db.session.commit()
    assert booking.status == BookingStatus.CANCELLED
    assert booking.cancelled_by_id == actor.id and booking.cancelled_at == NOW
    assert audits(db, booking)[-1] == (
        "booking.cancel",
        "approved" if approved else "pending",
        "cancelled",
        actor.id,
    )
    assert "booking_cancelled" in kinds(db, booking)
    # the slot is free again
    create_booking(env.inst, env.stranger, START, END, purpose="x")


def test_approved_to_completed_by_usage(db, env):
    booking = pending(db, env)
    approve_booking(booking, env.staff)
    db.session.commit()
    set_clock(lambda: END)  # usage is recorded once the booking has begun
    usage = record_usage(booking, env.staff, **usage_kw(service_type="testing"))
    db.session.commit()
    assert booking.status == BookingStatus.COMPLETED
    assert usage.service_type == ServiceType.TESTING and usage.recorded_by_id == env.staff.id
    assert usage.checked_in_at == START.astimezone(dt.UTC)
    assert audits(db, booking)[-1][:3] == ("booking.complete", "approved", "completed")
    assert "booking_completed" in kinds(db, booking)


def test_approved_to_no_show(db, env):
    booking = pending(db, env)
    approve_booking(booking, env.staff)
    db.session.commit()
    set_clock(lambda: booking.end_at)  # staff mark a no-show once the booking has begun
    mark_no_show(booking)
    db.session.commit()
    assert booking.status == BookingStatus.NO_SHOW
    assert audits(db, booking)[-1] == ("booking.no_show", "approved", "no_show", None)
    assert "booking_no_show" in kinds(db, booking)


def test_full_history_is_audited(db, env):
    booking = pending(db, env)
    approve_booking(booking, env.staff)
    set_clock(lambda: END)
    record_usage(booking, env.staff, **usage_kw())
    db.session.commit()
    assert [a[:3] for a in audits(db, booking)] == [
        ("booking.create", None, "pending"),
        ("booking.approve", "pending", "approved"),
        ("booking.complete", "approved", "completed"),
    ]


# -- forbidden transitions -----------------------------------------------------------------

ACTIONS = {
    "approve": lambda b, env: approve_booking(b, env.staff),
    "reject": lambda b, env: reject_booking(b, env.staff, "nein"),
    "cancel": lambda b, env: cancel_booking(b, env.staff),
    "usage": lambda b, env: (set_clock(lambda: END), record_usage(b, env.staff, **usage_kw()))[1],
    "no_show": lambda b, env: mark_no_show(b, env.staff, now=b.end_at),
}
ALLOWED = {
    ("approve", BookingStatus.PENDING),
    ("reject", BookingStatus.PENDING),
    ("cancel", BookingStatus.PENDING),
    ("cancel", BookingStatus.APPROVED),
    ("usage", BookingStatus.APPROVED),
    ("no_show", BookingStatus.APPROVED),
}
FORBIDDEN = [(a, s) for a in ACTIONS for s in BookingStatus if (a, s) not in ALLOWED]


@pytest.mark.parametrize(("action", "status"), FORBIDDEN)
def test_forbidden_transition_is_invalid_state(db, env, make_booking, action, status):
    booking = in_status(db, env, status, make_booking)
    with pytest.raises(InvalidTransition):
        ACTIONS[action](booking, env)
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == status
    assert db.session.scalar(select(func.count(AuditLog.id))) == 0
    assert db.session.scalar(select(func.count(Notification.id))) == 0
    assert db.session.scalar(select(func.count(UsageRecord.id))) == 0


@pytest.mark.parametrize(("action", "status"), sorted(ALLOWED))
def test_allowed_transitions_table(db, env, make_booking, action, status):
    booking = in_status(db, env, status, make_booking)
    ACTIONS[action](booking, env)
    db.session.commit()
    assert db.session.get(Booking, booking.id).status != status


# -- outbox and audit are part of the transaction ------------------------------------------


def test_rollback_leaves_no_booking_no_audit_no_outbox(db, env):
    create_booking(env.inst, env.sme, START, END, purpose="x")
    db.session.rollback()
    for model in (Booking, AuditLog, Notification):
        assert db.session.scalar(select(func.count()).select_from(model)) == 0


def test_request_notifies_staff_and_booker(db, env):
    booking = pending(db, env)
    rows = db.session.execute(
        select(Notification.user_id, Notification.kind).where(Notification.booking_id == booking.id)
    ).all()
    assert sorted(rows) == sorted(
        [(env.staff.id, "booking_requested"), (env.sme.id, "booking_received")]
    )


# -- approval re-checks --------------------------------------------------------------------


def test_approval_rechecks_capacity(db, env, make_lab, make_booking):
    """A lab's pending request whose place went to others cannot be approved."""
    lab = make_lab(institute=env.inst.institute, capacity=1, rules=dict(RULES))
    db.session.commit()
    booking = create_booking(lab, env.sme, START, END, purpose="x")
    db.session.commit()
    # Data that bypassed the engine (an import, an old version): an approved overlap.
    make_booking(
        resource=lab,
        user=env.stranger,
        start=END - dt.timedelta(hours=1),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()
    with pytest.raises(SlotTaken):
        approve_booking(booking, env.staff)
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == BookingStatus.PENDING


def test_approval_rechecks_closure(db, env):
    booking = pending(db, env)
    db.session.add(Closure(resource_id=env.lab.id, start_at=START, end_at=END))
    db.session.commit()
    with pytest.raises(RuleViolation) as info:
        approve_booking(booking, env.staff)
    assert info.value.rule == "closure"


def test_approval_rechecks_calibration(db, env):
    booking = pending(db, env)
    env.inst.calibration_valid_until = dt.date(2030, 1, 6)
    db.session.commit()
    with pytest.raises(RuleViolation) as info:
        approve_booking(booking, env.staff)
    assert info.value.rule == "calibration_expired"


def test_approval_rechecks_status(db, env):
    booking = pending(db, env)
    env.inst.status = ResourceStatus.MAINTENANCE
    db.session.commit()
    with pytest.raises(RuleViolation) as info:
        approve_booking(booking, env.staff)
    assert info.value.rule == "instrument_unavailable"


# -- the cancellation deadline -------------------------------------------------------------


def test_sme_cancels_until_the_deadline_not_after(db, env):
    first = pending(db, env)
    second = pending(db, env, start=END, end=END + dt.timedelta(hours=1))
    deadline = START.astimezone(dt.UTC) - dt.timedelta(hours=48)
    set_clock(lambda: deadline)
    cancel_booking(first, env.sme)  # exactly at the deadline
    db.session.commit()
    set_clock(lambda: second.start_at - dt.timedelta(hours=47))
    with pytest.raises(RuleViolation) as info:
        cancel_booking(second, env.sme)
    assert info.value.rule == "cancellation_deadline"
    db.session.rollback()
    assert db.session.get(Booking, second.id).status == BookingStatus.PENDING
    cancel_booking(second, env.staff)  # staff: any time
    db.session.commit()
    assert second.status == BookingStatus.CANCELLED


# -- permissions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "who", "error"),
    [
        ("approve", "other_staff", NotFound),
        ("approve", "stranger", NotFound),
        ("approve", "sme", NotAllowed),
        ("approve", "admin", NotAllowed),
        ("reject", "other_staff", NotFound),
        ("reject", "sme", NotAllowed),
        ("reject", "admin", NotAllowed),
        ("usage", "other_staff", NotFound),
        ("usage", "sme", NotAllowed),
        ("usage", "admin", NotAllowed),
        ("cancel", "stranger", NotFound),
        ("cancel", "other_staff", NotFound),
        ("cancel", "admin", NotAllowed),
        ("no_show", "other_staff", NotFound),
        ("no_show", "sme", NotAllowed),
    ],
)
def test_who_may_act(db, env, make_booking, action, who, error):
    status = BookingStatus.APPROVED if action in ("usage", "no_show") else BookingStatus.PENDING
    booking = in_status(db, env, status, make_booking)
    actor = getattr(env, who)
    calls = {
        "approve": lambda: approve_booking(booking, actor),
        "reject": lambda: reject_booking(booking, actor, "no"),
        "cancel": lambda: cancel_booking(booking, actor),
        "usage": lambda: record_usage(booking, actor, **usage_kw()),
        "no_show": lambda: mark_no_show(booking, actor),
    }
    with pytest.raises(error):
        calls[action]()
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == status
    assert db.session.scalar(select(func.count(AuditLog.id))) == 0


def test_inactive_staff_may_not_approve(db, env):
    booking = pending(db, env)
    env.staff.active = False
    db.session.commit()
    with pytest.raises(NotFound):
        approve_booking(booking, env.staff)


def test_visibility(db, env, make_booking, make_instrument):
    mine = in_status(db, env, BookingStatus.PENDING, make_booking)
    elsewhere = make_booking(user=env.stranger, resource=make_instrument())
    db.session.commit()

    def visible(user: Any) -> set[int]:
        return set(db.session.scalars(select(Booking.id).where(visible_bookings(user))))

    assert visible(env.sme) == visible(env.colleague) == {mine.id}
    assert visible(env.stranger) == {elsewhere.id}
    assert visible(env.staff) == {mine.id}
    assert visible(env.other_staff) == set()
    assert visible(env.admin) == {mine.id, elsewhere.id}
    assert can_view_booking(env.colleague, mine) and not can_view_booking(env.stranger, mine)
    assert can_view_booking(env.staff, mine) and not can_view_booking(env.other_staff, mine)
    env.sme.active = False
    assert visible(env.sme) == set() and not can_view_booking(env.sme, mine)
    assert is_staff_of(env.staff, env.inst.institute_id)
    assert not is_staff_of(env.admin, env.inst.institute_id)


# -- bad input on transitions --------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 501])
def test_reject_needs_a_reason(db, env, reason):
    booking = pending(db, env)
    with pytest.raises(ValidationFailed) as info:
        reject_booking(booking, env.staff, reason)  # type: ignore[arg-type]
    assert info.value.field == "reason"
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == BookingStatus.PENDING


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"checked_out_at": START}, "checked_out_at"),
        ({"checked_out_at": START - dt.timedelta(hours=1)}, "checked_out_at"),
        ({"checked_in_at": dt.datetime(2030, 1, 7, 9)}, "checked_in_at"),
        ({"samples_count": -1}, "samples_count"),
        ({"service_type": "repair"}, "service_type"),
        ({"notes": "x" * 5001}, "notes"),
    ],
)
def test_usage_validation(db, env, make_booking, kw, field):
    booking = in_status(db, env, BookingStatus.APPROVED, make_booking)
    with pytest.raises(ValidationFailed) as info:
        record_usage(booking, env.staff, **usage_kw(**kw))
    assert info.value.field == field
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == BookingStatus.APPROVED
    assert db.session.scalar(select(func.count(UsageRecord.id))) == 0
