"""Moving a booking (booking/move.py, POST /api/v1/bookings/<id>/move): every rule of
a new booking judges the new time, the booking itself left out; who may move and
until when; approval again; the waitlist, reminders, calendar feed, messages and
audit that follow; bad input named by field, writing nothing."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.booking.policies import waitlist
from labshare.models import (
    Booking,
    BookingGroup,
    BookingQuota,
    BookingRules,
    BookingStatus,
    Closure,
    Notification,
    Qualification,
    ResourceStatus,
    Role,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.timeutil import set_clock
from tests.booking.move_support import (
    AUTO,
    OLD_START,
    UTC,
    _require_approval,
    _rules,
    audit_moves,
    book,
    local,
    make_env,
    post_move,
    times,
)
from tests.helpers import NOW, bearer, error_of


@pytest.fixture
def env(db: Any) -> SimpleNamespace:
    return make_env()


# -- the move itself ---------------------------------------------------------------------


def test_company_moves_its_booking_keeping_id_state_and_history(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    response = post_move(client, env.colleague, b.id, local(4, 14), local(4, 16))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == b.id
    assert body["status"] == "approved"
    assert body["start"].startswith("2030-01-04T14:00")
    db.session.expire_all()
    moved = db.session.get(Booking, b.id)
    assert moved.start_at == dt.datetime(2030, 1, 4, 6, 0, tzinfo=UTC)
    assert moved.end_at == dt.datetime(2030, 1, 4, 8, 0, tzinfo=UTC)
    assert moved.moves == 1
    assert str(moved.fee) == "300.00"  # two hours at 150, recomputed
    [row] = audit_moves(db, b.id)
    assert row.actor_id == env.colleague.id
    assert row.data["from_start"] == OLD_START.isoformat()
    assert row.data["to_start"] == moved.start_at.isoformat()
    kinds = {
        (n.user_id, n.kind)
        for n in db.session.scalars(select(Notification).where(Notification.booking_id == b.id))
    }
    assert (env.sme.id, "booking_moved") in kinds  # the booker
    assert (env.staff.id, "booking_moved") in kinds  # and the staff


def test_a_second_move_is_told_again(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    assert post_move(client, env.sme, b.id, local(4, 14), local(4, 15)).status_code == 200
    assert post_move(client, env.sme, b.id, local(5, 14), local(5, 15)).status_code == 200
    n = db.session.scalar(
        select(func.count(Notification.id)).where(
            Notification.booking_id == b.id,
            Notification.kind == "booking_moved",
            Notification.user_id == env.sme.id,
        )
    )
    assert n == 2
    assert len(audit_moves(db, b.id)) == 2


def test_move_overlapping_its_own_old_time_is_allowed(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    response = post_move(client, env.sme, b.id, local(3, 10, 30), local(3, 11, 30))
    assert response.status_code == 200, response.get_json()


def test_move_into_a_taken_slot_is_409_and_keeps_the_original(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    book(env, make_booking, db, user=env.other_sme, start=dt.datetime(2030, 1, 4, 6, tzinfo=UTC))
    response = post_move(client, env.sme, b.id, local(4, 14, 30), local(4, 15, 30))
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert times(db, b.id) == (OLD_START, OLD_START + dt.timedelta(hours=1), "approved")
    assert audit_moves(db, b.id) == []


def test_buffer_is_judged_without_the_booking_itself(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.buffer_minutes = 60
    db.session.commit()
    b = book(env, make_booking, db)
    # right after its own old time: only itself was there
    assert post_move(client, env.sme, b.id, local(3, 11), local(3, 12)).status_code == 200
    book(env, make_booking, db, user=env.other_sme, start=dt.datetime(2030, 1, 5, 2, tzinfo=UTC))
    response = post_move(client, env.sme, b.id, local(5, 11, 30), local(5, 12))
    assert response.status_code == 409
    assert "buffer" in error_of(response)["message"]


def test_company_quota_leaves_the_booking_itself_out(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.max_active_per_company = 1
    db.session.commit()
    b = book(env, make_booking, db)
    assert post_move(client, env.sme, b.id, local(4, 14), local(4, 15)).status_code == 200


@pytest.mark.parametrize(
    ("start", "end", "rule", "field"),
    [
        (local(4, 14, 10), local(4, 15, 10), "granularity", "start"),
        (local(4, 14), local(4, 14, 0), None, "end"),  # end == start
        (local(4, 14), local(4, 23, 30), "max_duration", "end"),
        ("2030-01-01T09:00:00+08:00", "2030-01-01T10:00:00+08:00", "lead_time", "start"),
        ("2029-12-31T09:00:00+08:00", "2029-12-31T10:00:00+08:00", "lead_time", "start"),  # past
        ("2030-06-03T09:00:00+08:00", "2030-06-03T10:00:00+08:00", "horizon", "start"),
    ],
)
def test_every_rule_of_a_new_booking_judges_the_new_time(
    client: Any,
    env: SimpleNamespace,
    db: Any,
    make_booking: Any,
    start: str,
    end: str,
    rule: str | None,
    field: str,
) -> None:
    b = book(env, make_booking, db)
    response = post_move(client, env.staff, b.id, start, end)
    assert response.status_code == 422, response.get_json()
    error = error_of(response)
    assert error.get("field") == field, error
    if rule is not None:
        assert error.get("rule") == rule, error
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + dt.timedelta(hours=1))
    assert audit_moves(db, b.id) == []


def test_closure_and_opening_hours_refuse_the_new_time(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    db.session.add(
        Closure(
            resource_id=env.inst.id,
            start_at=dt.datetime(2030, 1, 4, 0, tzinfo=UTC),
            end_at=dt.datetime(2030, 1, 5, 0, tzinfo=UTC),
            note="保养",
        )
    )
    db.session.commit()
    b = book(env, make_booking, db)
    response = post_move(client, env.sme, b.id, local(4, 14), local(4, 15))
    assert response.status_code == 422
    assert error_of(response)["rule"] == "closure"


def test_opening_hours_in_the_institute_zone_across_midnight(
    client: Any, db: Any, make_lab: Any, make_instrument: Any, make_user: Any, make_booking: Any
) -> None:
    from tests.factories import weekday_hours

    set_clock(lambda: NOW)
    lab = make_lab(hours=weekday_hours("08:00", "18:00"))
    inst = make_instrument(lab=lab, rules=AUTO)
    sme = make_user(Role.SME)
    db.session.commit()
    b = make_booking(resource=inst, user=sme, start=OLD_START, status=BookingStatus.APPROVED)
    db.session.commit()
    # 17:00-19:00 local runs past closing; 23:30-00:30 crosses midnight out of hours
    for start, end in [(local(4, 17), local(4, 19)), (local(4, 23, 30), local(5, 0, 30))]:
        response = post_move(client, sme, b.id, start, end)
        assert response.status_code == 422
        assert error_of(response)["rule"] == "opening_hours"
    # the same instant written in UTC is the same local slot: 09:00-10:00 local
    response = post_move(client, sme, b.id, "2030-01-04T01:00:00Z", "2030-01-04T02:00:00Z")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["start"].startswith("2030-01-04T09:00:00+08:00")


def test_midnight_in_an_all_day_lab(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    response = post_move(client, env.sme, b.id, local(4, 23), local(5, 1))
    assert response.status_code == 200, response.get_json()


def test_unavailable_instrument_refuses_the_move(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    env.inst.status = ResourceStatus.MAINTENANCE
    db.session.commit()
    response = post_move(client, env.sme, b.id, local(4, 14), local(4, 15))
    assert response.status_code == 422
    assert error_of(response)["rule"] == "instrument_unavailable"


def test_calibration_expiring_before_the_new_end_refuses(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    env.inst.calibration_valid_until = dt.date(2030, 1, 4)
    db.session.commit()
    assert post_move(client, env.sme, b.id, local(4, 14), local(4, 15)).status_code == 200
    response = post_move(client, env.sme, b.id, local(5, 14), local(5, 15))
    assert response.status_code == 422
    assert error_of(response)["rule"] == "calibration_expired"


def test_qualification_is_required_of_the_booker(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    env.inst.requires_qualification = True
    db.session.commit()
    response = post_move(client, env.staff, b.id, local(4, 14), local(4, 15))
    assert response.status_code == 422
    assert error_of(response)["rule"] == "qualification"
    db.session.add(Qualification(user_id=env.sme.id, resource_id=env.inst.id))
    db.session.commit()
    assert post_move(client, env.staff, b.id, local(4, 14), local(4, 15)).status_code == 200


def test_period_quota_counts_other_bookings_not_this_one(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    db.session.add(
        BookingQuota(
            institute_id=env.inst.institute_id,
            resource_id=env.inst.id,
            period="day",
            max_bookings=1,
        )
    )
    db.session.commit()
    b = book(env, make_booking, db)
    book(env, make_booking, db, start=dt.datetime(2030, 1, 4, 1, tzinfo=UTC))  # day 4, 09:00
    # within its own day: only itself counted there
    assert post_move(client, env.sme, b.id, local(3, 14), local(3, 15)).status_code == 200
    response = post_move(client, env.sme, b.id, local(4, 14), local(4, 15))
    assert response.status_code == 422
    assert error_of(response)["rule"] == "quota_bookings"


def test_no_show_record_sends_a_company_move_back_to_approval(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    _rules(env, db, no_show_approval_threshold=1)
    book(env, make_booking, db, start=NOW - dt.timedelta(days=3), status=BookingStatus.NO_SHOW)
    b = book(env, make_booking, db)
    response = post_move(client, env.sme, b.id, local(4, 14), local(4, 15))
    assert response.get_json()["status"] == "pending"
    other = book(env, make_booking, db, start=dt.datetime(2030, 1, 6, 2, tzinfo=UTC))
    response = post_move(client, env.staff, other.id, local(6, 14), local(6, 15))
    assert response.get_json()["status"] == "approved"  # staff decided it


def test_an_open_waitlist_offer_holds_its_slot_against_a_move(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    taken = book(
        env, make_booking, db, user=env.other_sme, start=dt.datetime(2030, 1, 4, 6, tzinfo=UTC)
    )
    third = make_user_like(env, db)
    entry = waitlist.join(env.inst, third, taken.start_at, taken.end_at, purpose="等候")
    db.session.commit()
    cancelled = client.post(
        f"/api/v1/bookings/{taken.id}/cancel", json={}, headers=bearer(env.staff)
    )
    assert cancelled.status_code == 200
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, entry.id).status == WaitlistStatus.OFFERED
    b = book(env, make_booking, db)
    response = post_move(client, env.sme, b.id, local(4, 14), local(4, 15))
    assert response.status_code == 409
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + dt.timedelta(hours=1))


def make_user_like(env: SimpleNamespace, db: Any) -> Any:
    from tests import factories

    user = factories.make_user(Role.SME)
    db.session.commit()
    return user


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2030-01-04T14:00:00", local(4, 15), "start"),  # naive
        (local(4, 14), "2030-01-04T15:00:00", "end"),  # naive
        ("tomorrow", local(4, 15), "start"),
        (None, local(4, 15), "start"),
        (local(4, 14), None, "end"),
    ],
)
def test_bad_times_are_422_naming_the_field(
    client: Any,
    env: SimpleNamespace,
    db: Any,
    make_booking: Any,
    start: Any,
    end: Any,
    field: str,
) -> None:
    b = book(env, make_booking, db)
    response = post_move(client, env.sme, b.id, start, end)
    assert response.status_code == 422
    error = error_of(response)
    assert field in str(error.get("field") or error.get("details")), error
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + dt.timedelta(hours=1))


def test_naive_time_refusal_in_chinese(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    env.sme.locale = "zh_CN"
    db.session.commit()
    response = post_move(client, env.sme, b.id, "2030-01-04T14:00:00", local(4, 15))
    assert response.status_code == 422
    message = error_of(response)["message"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in message), message


def test_the_same_time_is_refused(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    response = post_move(client, env.sme, b.id, local(3, 10), local(3, 11))
    assert response.status_code == 422
    assert error_of(response)["field"] == "start"


def test_unknown_booking_is_404(client: Any, env: SimpleNamespace) -> None:
    assert post_move(client, env.sme, 999999, local(4, 14), local(4, 15)).status_code == 404


def test_without_a_token_is_401(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    response = client.post(
        f"/api/v1/bookings/{b.id}/move", json={"start": local(4, 14), "end": local(4, 15)}
    )
    assert response.status_code == 401


# -- who and when ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"), [("other_sme", 404), ("other_staff", 404), ("admin", 403)]
)
def test_others_may_not_move(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any, who: str, status: int
) -> None:
    b = book(env, make_booking, db)
    response = post_move(client, getattr(env, who), b.id, local(4, 14), local(4, 15))
    assert response.status_code == status
    assert times(db, b.id)[:2] == (OLD_START, OLD_START + dt.timedelta(hours=1))


def test_company_after_its_deadline_is_refused_but_staff_may(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    set_clock(lambda: OLD_START - dt.timedelta(hours=23))  # inside the 24 h deadline
    response = post_move(client, env.sme, b.id, local(5, 14), local(5, 15))
    assert response.status_code == 422
    assert error_of(response)["rule"] == "cancellation_deadline"
    response = post_move(client, env.staff, b.id, local(5, 14), local(5, 15))
    assert response.status_code == 200, response.get_json()


def test_nobody_moves_a_booking_that_has_begun(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    set_clock(lambda: OLD_START + dt.timedelta(minutes=1))
    response = post_move(client, env.staff, b.id, local(5, 14), local(5, 15))
    assert response.status_code == 409
    assert error_of(response)["code"] == "invalid_state"


@pytest.mark.parametrize("status", [BookingStatus.CANCELLED, BookingStatus.REJECTED])
def test_only_holding_bookings_move(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any, status: BookingStatus
) -> None:
    b = book(env, make_booking, db, status=status)
    response = post_move(client, env.staff, b.id, local(4, 14), local(4, 15))
    assert response.status_code == 409


def test_a_checked_in_booking_does_not_move(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db, checked_in_at=NOW)
    assert post_move(client, env.staff, b.id, local(4, 14), local(4, 15)).status_code == 409


def test_a_group_member_is_refused_with_a_reason(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    group = BookingGroup(
        lab_id=env.inst.lab_id,
        institute_id=env.inst.institute_id,
        company_id=env.sme.company_id,
        user_id=env.sme.id,
        purpose="一起",
    )
    db.session.add(group)
    db.session.flush()
    b = book(env, make_booking, db, group_id=group.id)
    response = post_move(client, env.sme, b.id, local(4, 14), local(4, 15))
    assert response.status_code == 422
    assert error_of(response)["rule"] == "booking_group"


def test_a_booker_who_left_the_company_blocks_the_move(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db)
    env.sme.active = False
    db.session.commit()
    response = post_move(client, env.staff, b.id, local(4, 14), local(4, 15))
    assert response.status_code == 403


# -- approval ----------------------------------------------------------------------------


def test_company_move_of_an_approved_booking_needs_approval_again(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    _require_approval(env, db)
    b = book(env, make_booking, db, decided_by_id=env.staff.id, decided_at=NOW)
    response = post_move(client, env.sme, b.id, local(4, 14), local(4, 15))
    assert response.status_code == 200
    assert response.get_json()["status"] == "pending"
    db.session.expire_all()
    moved = db.session.get(Booking, b.id)
    assert moved.decided_by_id is None
    [row] = audit_moves(db, b.id)
    assert (row.from_state, row.to_state) == ("approved", "pending")
    kinds = set(
        db.session.scalars(
            select(Notification.kind).where(
                Notification.booking_id == b.id, Notification.user_id == env.staff.id
            )
        )
    )
    assert "booking_moved_pending" in kinds
    # staff approve the new time as any request
    approved = client.post(f"/api/v1/bookings/{b.id}/approve", headers=bearer(env.staff))
    assert approved.status_code == 200
    assert approved.get_json()["status"] == "approved"


def test_staff_move_keeps_the_approval(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    _require_approval(env, db)
    b = book(env, make_booking, db)
    response = post_move(client, env.staff, b.id, local(4, 14), local(4, 15))
    assert response.get_json()["status"] == "approved"


def test_pending_stays_pending(
    client: Any, env: SimpleNamespace, db: Any, make_booking: Any
) -> None:
    b = book(env, make_booking, db, status=BookingStatus.PENDING)
    response = post_move(client, env.sme, b.id, local(4, 14), local(4, 15))
    assert response.get_json()["status"] == "pending"
