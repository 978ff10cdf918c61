"""Recurring bookings: expansion, preview, all-or-nothing vs
skip, whole-series transitions, permissions, the iCal feed. Both databases."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from sqlalchemy import func, select

from labshare.accounts.tokens import calendar_token
from labshare.booking.bookings import cancel_booking
from labshare.booking.policies import recurrence
from labshare.booking.policies.recurrence import (
    MAX_OCCURRENCES,
    RecurrenceSpec,
    approve_series,
    cancel_series,
    create_series,
    expand,
    preview_series,
    reject_series,
    series_bookings,
    validate_spec,
)
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
    BookingSeries,
    BookingStatus,
    Closure,
    ClosureKind,
    Notification,
    Role,
)
from labshare.timeutil import set_clock
from tests.factories import weekday_hours
from tests.helpers import count_rows

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)  # Tuesday
SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)  # Monday
END = dt.datetime(2030, 1, 7, 11, tzinfo=SH)
FAR = NOW + dt.timedelta(days=3650)
RULES = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 0,
    "horizon_days": 365,
    "requires_approval": False,
    "max_active_per_company": 200,
    "cancel_deadline_hours": 0,
}


def rules(**kw: Any) -> dict[str, Any]:
    return {**RULES, **kw}


def local(spans: list[tuple[dt.datetime, dt.datetime]], tz: ZoneInfo) -> list[str]:
    return [f"{s.astimezone(tz):%Y-%m-%d %a %H:%M}-{e.astimezone(tz):%H:%M}" for s, e in spans]


@pytest.fixture
def clock() -> None:
    set_clock(lambda: NOW)


# -- expansion ----------------------------------------------------------------------------


def test_weekly_on_chosen_weekdays(app: Any) -> None:
    spec = validate_spec("weekly", weekdays=[0, 2], count=5)
    got = expand(spec, START, END, "Asia/Shanghai", FAR)
    assert local(got.occurrences, SH) == [
        "2030-01-07 Mon 09:00-11:00",
        "2030-01-09 Wed 09:00-11:00",
        "2030-01-14 Mon 09:00-11:00",
        "2030-01-16 Wed 09:00-11:00",
        "2030-01-21 Mon 09:00-11:00",
    ]
    assert not got.cut_at_horizon


def test_weekly_without_weekdays_uses_the_first_days_weekday_and_interval(app: Any) -> None:
    spec = validate_spec("weekly", interval=2, count=3)
    got = expand(spec, START, END, "Asia/Shanghai", FAR)
    assert local(got.occurrences, SH) == [
        "2030-01-07 Mon 09:00-11:00",
        "2030-01-21 Mon 09:00-11:00",
        "2030-02-04 Mon 09:00-11:00",
    ]


def test_monthly_with_interval(app: Any) -> None:
    spec = validate_spec("monthly", interval=2, count=3)
    got = expand(spec, START, END, "Asia/Shanghai", FAR)
    assert [s.astimezone(SH).date().isoformat() for s, _e in got.occurrences] == [
        "2030-01-07",
        "2030-03-07",
        "2030-05-07",
    ]


def test_daily_until_is_inclusive_and_count_is_exact(app: Any) -> None:
    by_until = expand(
        validate_spec("daily", interval=3, until=dt.date(2030, 1, 13)),
        START,
        END,
        "Asia/Shanghai",
        FAR,
    )
    assert [s.astimezone(SH).day for s, _e in by_until.occurrences] == [7, 10, 13]
    by_count = expand(validate_spec("daily", count=4), START, END, "Asia/Shanghai", FAR)
    assert [s.astimezone(SH).day for s, _e in by_count.occurrences] == [7, 8, 9, 10]


def test_wall_clock_time_kept_across_dst_in_berlin(app: Any) -> None:
    """Berlin goes to summer time on Sunday 2030-03-31: 09:00-11:00 stays local,
    the UTC instants move by an hour."""
    start = dt.datetime(2030, 3, 25, 9, tzinfo=BERLIN)
    spec = validate_spec("weekly", count=3)
    got = expand(spec, start, start + dt.timedelta(hours=2), "Europe/Berlin", FAR)
    assert local(got.occurrences, BERLIN) == [
        "2030-03-25 Mon 09:00-11:00",
        "2030-04-01 Mon 09:00-11:00",
        "2030-04-08 Mon 09:00-11:00",
    ]
    assert [s.astimezone(dt.UTC).hour for s, _e in got.occurrences] == [8, 7, 7]
    # and back in October (2030-10-27)
    autumn = dt.datetime(2030, 10, 21, 9, tzinfo=BERLIN)
    got = expand(spec, autumn, autumn + dt.timedelta(hours=2), "Europe/Berlin", FAR)
    assert [s.astimezone(dt.UTC).hour for s, _e in got.occurrences] == [7, 8, 8]
    assert all(s.astimezone(BERLIN).hour == 9 for s, _e in got.occurrences)


def test_cut_at_the_horizon(app: Any) -> None:
    horizon = NOW + dt.timedelta(days=10)
    got = expand(validate_spec("daily", count=30), START, END, "Asia/Shanghai", horizon)
    assert got.cut_at_horizon
    assert got.occurrences[-1][0] <= horizon
    assert len(got.occurrences) == 4  # 7th..10th; the 11th at 09:00 +08 is past 2030-01-11 00:00Z


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"freq": "hourly", "count": 2}, "recurrence.freq"),
        ({"freq": "daily", "interval": 0, "count": 2}, "recurrence.interval"),
        ({"freq": "daily", "interval": 100, "count": 2}, "recurrence.interval"),
        ({"freq": "daily"}, "recurrence.until"),
        ({"freq": "daily", "count": 2, "until": dt.date(2030, 2, 1)}, "recurrence.count"),
        ({"freq": "daily", "count": 0}, "recurrence.count"),
        ({"freq": "daily", "count": MAX_OCCURRENCES + 1}, "recurrence.count"),
        ({"freq": "daily", "weekdays": [0], "count": 2}, "recurrence.weekdays"),
        ({"freq": "weekly", "weekdays": [7], "count": 2}, "recurrence.weekdays"),
    ],
)
def test_bad_rules_name_the_field(app: Any, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_spec(**kwargs)
    assert info.value.field == field


def test_too_many_occurrences_until_the_horizon_is_refused(app: Any) -> None:
    spec = validate_spec("daily", until=dt.date(2030, 12, 31))
    with pytest.raises(ValidationFailed) as info:
        expand(spec, START, END, "Asia/Shanghai", FAR)
    assert info.value.field == "recurrence.until"


def test_until_before_start_overlap_and_no_occurrence(app: Any) -> None:
    with pytest.raises(ValidationFailed) as info:
        expand(validate_spec("daily", until=dt.date(2030, 1, 6)), START, END, "Asia/Shanghai", FAR)
    assert info.value.field == "recurrence.until"
    with pytest.raises(ValidationFailed) as info:
        expand(
            validate_spec("daily", count=3),
            START,
            START + dt.timedelta(hours=30),
            "Asia/Shanghai",
            FAR,
        )
    assert info.value.field == "end"
    with pytest.raises(RuleViolation) as rv:
        expand(validate_spec("daily", count=3), START, END, "Asia/Shanghai", NOW)
    assert rv.value.rule == "horizon"


# -- preview ------------------------------------------------------------------------------


def test_preview_marks_conflicts_and_rule_breaks_and_writes_nothing(
    db: Any, clock: None, make_lab: Any, make_instrument: Any, make_user: Any, make_booking: Any
) -> None:
    lab = make_lab(rules=rules(), hours=weekday_hours("08:00", "18:00", range(5)))  # Mon-Fri
    inst = make_instrument(lab=lab, rules=rules())
    sme = make_user(Role.SME)
    other = make_user(Role.SME)
    make_booking(
        resource=inst,
        user=other,
        start=START + dt.timedelta(days=1),
        end=END + dt.timedelta(days=1),
        status=BookingStatus.APPROVED,
    )
    db.session.add(
        Closure(
            resource_id=inst.id,
            kind=ClosureKind.MAINTENANCE,
            start_at=START + dt.timedelta(days=2),
            end_at=END + dt.timedelta(days=2),
            note="service",
        )
    )
    db.session.commit()
    before = (count_rows(Booking), count_rows(Notification), count_rows(AuditLog))
    plan = preview_series(
        inst, sme, START, END, validate_spec("daily", count=6), purpose="calibration"
    )
    fates = [(o.ok, o.code, o.rule) for o in plan.occurrences]
    assert fates == [
        (True, None, None),  # Mon
        (False, "conflict", None),  # Tue: taken
        (False, "rule_violation", "closure"),  # Wed
        (True, None, None),  # Thu
        (True, None, None),  # Fri
        (False, "rule_violation", "opening_hours"),  # Sat
    ]
    assert all(o.message for o in plan.failed)
    db.session.rollback()
    assert (count_rows(Booking), count_rows(Notification), count_rows(AuditLog)) == before


def test_preview_counts_earlier_occurrences_against_a_period_quota(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    """At most 2 bookings a week: the preview marks the 3rd and 4th days, as creation
    would, and still keeps nothing even when the caller commits."""
    from labshare.models import BookingQuota

    inst = make_instrument(rules=rules(max_active_per_company=10))
    sme = make_user(Role.SME)
    db.session.add(
        BookingQuota(
            institute_id=inst.institute_id, resource_id=inst.id, period="week", max_bookings=2
        )
    )
    db.session.commit()
    before = (count_rows(Booking), count_rows(Notification), count_rows(AuditLog))
    spec = validate_spec("daily", count=4)
    plan = preview_series(inst, sme, START, END, spec, purpose="x")
    db.session.commit()
    rules_hit = [o.rule for o in plan.occurrences]
    assert rules_hit == [None, None, "quota_bookings", "quota_bookings"]
    assert (count_rows(Booking), count_rows(Notification), count_rows(AuditLog)) == before
    created = create_series(inst, sme, START, END, spec, purpose="x", skip_conflicting=True)
    assert [o.rule for o in created.occurrences] == rules_hit


def test_preview_counts_earlier_occurrences_against_the_company_quota(
    db: Any, clock: None, make_instrument: Any, make_user: Any, make_booking: Any
) -> None:
    inst = make_instrument(rules=rules(max_active_per_company=3))
    sme = make_user(Role.SME)
    make_booking(
        resource=inst,
        user=sme,
        start=START - dt.timedelta(hours=4),
        end=START - dt.timedelta(hours=3),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()
    plan = preview_series(inst, sme, START, END, validate_spec("daily", count=4), purpose="x")
    assert [o.rule for o in plan.occurrences] == [None, None, "company_quota", "company_quota"]
    # creation agrees: skip books two
    created = create_series(
        inst, sme, START, END, validate_spec("daily", count=4), purpose="x", skip_conflicting=True
    )
    assert [o.ok for o in created.occurrences] == [True, True, False, False]


# -- creation -----------------------------------------------------------------------------


def _setup(db: Any, make_instrument: Any, make_user: Any, **kw: Any) -> tuple[Any, Any, Any]:
    inst = make_instrument(rules=rules(**kw))
    sme = make_user(Role.SME)
    staff = make_user(Role.STAFF, institute=inst.institute)
    db.session.commit()
    return inst, sme, staff


def test_all_or_nothing_writes_nothing_and_lists_failures(
    db: Any, clock: None, make_instrument: Any, make_user: Any, make_booking: Any
) -> None:
    inst, sme, _staff = _setup(db, make_instrument, make_user)
    taken = make_booking(
        resource=inst,
        user=make_user(Role.SME),
        start=START + dt.timedelta(days=2),
        end=END + dt.timedelta(days=2),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()
    before = (count_rows(Booking), count_rows(Notification), count_rows(AuditLog))
    with pytest.raises(SlotTaken) as info:
        create_series(
            inst,
            sme,
            START,
            END,
            validate_spec("daily", count=5),
            purpose="x",
            skip_conflicting=False,
        )
    failed = info.value.to_dict()["occurrences"]
    assert [o["index"] for o in failed] == [2]
    assert failed[0]["code"] == "conflict"
    # nothing written, even before the caller rolls back
    assert count_rows(BookingSeries) == 0
    assert (count_rows(Booking), count_rows(Notification), count_rows(AuditLog)) == before
    db.session.rollback()
    assert count_rows(Booking) == 1 and taken.id


def test_all_or_nothing_with_a_rule_break_is_a_rule_violation(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    inst, sme, _staff = _setup(db, make_instrument, make_user, horizon_days=365)
    db.session.add(
        Closure(
            resource_id=inst.id,
            kind=ClosureKind.HOLIDAY,
            start_at=START + dt.timedelta(days=1),
            end_at=END + dt.timedelta(days=1),
            note="holiday",
        )
    )
    db.session.commit()
    with pytest.raises(RuleViolation) as info:
        create_series(
            inst,
            sme,
            START,
            END,
            validate_spec("daily", count=3),
            purpose="x",
            skip_conflicting=False,
        )
    assert info.value.rule == "closure"
    assert [o["index"] for o in info.value.to_dict()["occurrences"]] == [1]
    db.session.rollback()
    assert count_rows(Booking) == 0


def test_skip_books_the_rest_with_one_message_per_event(
    db: Any, clock: None, make_instrument: Any, make_user: Any, make_booking: Any
) -> None:
    inst, sme, staff = _setup(db, make_instrument, make_user, requires_approval=True)
    make_booking(
        resource=inst,
        user=make_user(Role.SME),
        start=START + dt.timedelta(days=7),
        end=END + dt.timedelta(days=7),
        status=BookingStatus.APPROVED,
    )
    db.session.commit()
    plan = create_series(
        inst,
        sme,
        START,
        END,
        validate_spec("weekly", weekdays=[0, 3], count=10),
        purpose="weekly check",
        skip_conflicting=True,
    )
    db.session.commit()
    assert plan.series is not None
    assert [o.index for o in plan.failed] == [2]  # the second Monday
    booked = series_bookings(plan.series)
    assert len(booked) == 9
    assert all(b.series_id == plan.series.id and b.status == BookingStatus.PENDING for b in booked)
    assert [b.id for b in booked] == [o.booking_id for o in plan.occurrences if o.ok]
    # one "received" to the booker and one "requested" per staff member, not 9 each
    kinds = sorted(db.session.execute(select(Notification.kind, Notification.user_id)).all())
    assert kinds == sorted([("series_received", sme.id), ("series_requested", staff.id)])
    note = db.session.scalar(select(Notification).where(Notification.user_id == sme.id))
    assert f"/series/{plan.series.id}" in note.body_text
    assert note.body_text.count("Booking ") >= 9
    creates = db.session.scalar(
        select(func.count()).select_from(AuditLog).where(AuditLog.action == "booking.create")
    )
    assert creates == 9
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "series.create")) is not None


def test_skip_with_nothing_bookable_is_an_error(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    inst, sme, _staff = _setup(db, make_instrument, make_user, lead_time_hours=24 * 365)
    with pytest.raises(RuleViolation) as info:
        create_series(
            inst,
            sme,
            START,
            END,
            validate_spec("daily", count=3),
            purpose="x",
            skip_conflicting=True,
        )
    assert info.value.rule == "lead_time"
    assert len(info.value.to_dict()["occurrences"]) == 3
    db.session.rollback()
    assert count_rows(BookingSeries) == 0


def test_series_never_books_two_occurrences_into_each_other_with_the_existing_booking(
    db: Any, clock: None, make_lab: Any, make_user: Any
) -> None:
    """A lab of capacity 1 behaves as an instrument; the exclusion/conflict check
    applies per occurrence through book_locked."""
    lab = make_lab(rules=rules(), capacity=1)
    sme = make_user(Role.SME)
    db.session.commit()
    create_series(
        lab, sme, START, END, validate_spec("daily", count=2), purpose="a", skip_conflicting=False
    )
    db.session.commit()
    with pytest.raises(SlotTaken):
        create_series(
            lab,
            sme,
            START,
            END,
            validate_spec("daily", count=2),
            purpose="b",
            skip_conflicting=True,
        )


# -- whole-series transitions -------------------------------------------------------------


def _pending_series(db: Any, inst: Any, sme: Any, n: int = 4) -> Any:
    plan = create_series(
        inst, sme, START, END, validate_spec("daily", count=n), purpose="p", skip_conflicting=False
    )
    db.session.commit()
    return plan.series


def test_approve_series_mixed_states(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    inst, sme, staff = _setup(db, make_instrument, make_user, requires_approval=True)
    series = _pending_series(db, inst, sme)
    first, second, third, fourth = series_bookings(series)
    cancel_booking(second, sme)
    db.session.commit()
    db.session.execute(select(Notification))  # (outbox rows so far are irrelevant)
    outcome = approve_series(series, staff)
    db.session.commit()
    assert {b.id for b in outcome.changed} == {first.id, third.id, fourth.id}
    states = [b.status for b in series_bookings(series)]
    assert states == [
        BookingStatus.APPROVED,
        BookingStatus.CANCELLED,
        BookingStatus.APPROVED,
        BookingStatus.APPROVED,
    ]
    approvals = db.session.scalars(
        select(AuditLog.object_id).where(AuditLog.action == "booking.approve")
    ).all()
    assert sorted(approvals) == sorted([first.id, third.id, fourth.id])
    confirmed = db.session.scalars(
        select(Notification.kind).where(
            Notification.user_id == sme.id, Notification.kind.like("%confirmed")
        )
    ).all()
    assert confirmed == ["series_confirmed"]
    with pytest.raises(InvalidTransition):  # nothing pending any more
        approve_series(series, staff)


def test_approve_series_leaves_an_occurrence_refused_on_recheck_pending(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    """Approval re-checks each occurrence (here: a closure set meanwhile); the
    refused one stays pending and is reported, the others are approved."""
    inst, sme, staff = _setup(db, make_instrument, make_user, requires_approval=True)
    series = _pending_series(db, inst, sme, n=3)
    clash = series_bookings(series)[1]
    db.session.add(
        Closure(
            resource_id=inst.id,
            kind=ClosureKind.MAINTENANCE,
            start_at=clash.start_at,
            end_at=clash.end_at,
            note="repair",
        )
    )
    db.session.commit()
    outcome = approve_series(series, staff)
    db.session.commit()
    assert [(b.id, e.rule) for b, e in outcome.skipped] == [(clash.id, "closure")]
    assert [b.status for b in series_bookings(series)] == [
        BookingStatus.APPROVED,
        BookingStatus.PENDING,
        BookingStatus.APPROVED,
    ]


def test_reject_series_needs_a_reason_and_rejects_pending_ones(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    inst, sme, staff = _setup(db, make_instrument, make_user, requires_approval=True)
    series = _pending_series(db, inst, sme, n=3)
    with pytest.raises(ValidationFailed) as info:
        reject_series(series, staff, "  ")
    assert info.value.field == "reason"
    first = series_bookings(series)[0]
    from labshare.booking.bookings import approve_booking

    approve_booking(first, staff)  # one occurrence approved on its own
    db.session.commit()
    outcome = reject_series(series, staff, "instrument booked for a key comparison")
    db.session.commit()
    assert len(outcome.changed) == 2
    states = [b.status for b in series_bookings(series)]
    assert states == [BookingStatus.APPROVED, BookingStatus.REJECTED, BookingStatus.REJECTED]
    assert series_bookings(series)[1].decision_reason == "instrument booked for a key comparison"
    rejected = db.session.scalars(
        select(Notification.kind).where(
            Notification.user_id == sme.id, Notification.kind.like("%rejected")
        )
    ).all()
    assert rejected == ["series_rejected"]


def test_cancel_series_by_the_company_respects_each_deadline(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    """Deadline 24 h; now is 2030-01-07 00:00 Shanghai: the first occurrence (09:00
    the same day) is inside it, the others are not."""
    inst, sme, staff = _setup(db, make_instrument, make_user, cancel_deadline_hours=24)
    series = _pending_series(db, inst, sme, n=3)
    set_clock(lambda: dt.datetime(2030, 1, 7, 0, tzinfo=SH))
    outcome = cancel_series(series, sme, "project postponed")
    db.session.commit()
    assert [e.rule for _b, e in outcome.skipped] == ["cancellation_deadline"]
    states = [b.status for b in series_bookings(series)]
    assert states == [BookingStatus.APPROVED, BookingStatus.CANCELLED, BookingStatus.CANCELLED]
    cancels = db.session.scalar(
        select(func.count()).select_from(AuditLog).where(AuditLog.action == "booking.cancel")
    )
    assert cancels == 2
    # staff may cancel the rest, deadline or not
    outcome = cancel_series(series, staff)
    db.session.commit()
    assert len(outcome.changed) == 1
    assert all(b.status == BookingStatus.CANCELLED for b in series_bookings(series))
    with pytest.raises(InvalidTransition):
        cancel_series(series, staff)


def test_cancel_series_all_inside_the_deadline_is_the_rule_violation(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    inst, sme, _staff = _setup(db, make_instrument, make_user, cancel_deadline_hours=24 * 30)
    series = _pending_series(db, inst, sme, n=2)
    with pytest.raises(RuleViolation) as info:
        cancel_series(series, sme)
    assert info.value.rule == "cancellation_deadline"
    assert len(info.value.to_dict()["occurrences"]) == 2


def test_series_permissions_and_tenancy(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    inst, sme, staff = _setup(db, make_instrument, make_user, requires_approval=True)
    series = _pending_series(db, inst, sme, n=2)
    colleague = make_user(Role.SME, company=sme.company)
    stranger = make_user(Role.SME)
    other_staff = make_user(Role.STAFF)
    db.session.commit()
    with pytest.raises(NotFound):
        recurrence.get_series(series.id, stranger)
    with pytest.raises(NotFound):
        recurrence.get_series(series.id, other_staff)
    assert recurrence.get_series(series.id, colleague) is series
    assert recurrence.get_series(series.id, staff) is series
    with pytest.raises(NotAllowed):
        approve_series(series, sme)
    with pytest.raises(NotFound):
        approve_series(series, other_staff)
    with pytest.raises(NotFound):
        cancel_series(series, stranger)
    with pytest.raises(NotFound):
        reject_series(series, other_staff, "no")
    cancel_series(series, colleague)  # a colleague of the same company may cancel
    db.session.commit()
    assert all(b.status == BookingStatus.CANCELLED for b in series_bookings(series))


def test_only_members_of_a_company_can_create_a_series(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    inst, _sme, staff = _setup(db, make_instrument, make_user)
    with pytest.raises(NotAllowed):
        create_series(
            inst,
            staff,
            START,
            END,
            validate_spec("daily", count=2),
            purpose="x",
            skip_conflicting=False,
        )


# -- iCal feed ----------------------------------------------------------------------------


def test_feed_shows_each_occurrence_as_its_own_event(
    db: Any, client: Any, clock: None, make_institute: Any, make_instrument: Any, make_user: Any
) -> None:
    berlin = make_institute(timezone="Europe/Berlin")
    inst = make_instrument(institute=berlin, rules=rules())
    sme = make_user(Role.SME)
    db.session.commit()
    start = dt.datetime(2030, 3, 25, 9, tzinfo=BERLIN)
    plan = create_series(
        inst,
        sme,
        start,
        start + dt.timedelta(hours=2),
        validate_spec("weekly", count=3),
        purpose="x",
        skip_conflicting=False,
    )
    db.session.commit()
    token = calendar_token(sme)
    db.session.commit()
    response = client.get(f"/calendar/{token}.ics")
    assert response.status_code == 200
    cal = icalendar.Calendar.from_ical(response.data)
    events = cal.walk("VEVENT")
    assert len(events) == 3
    assert len({str(e["UID"]) for e in events}) == 3
    starts = sorted(e.decoded("DTSTART") for e in events)
    assert [s.astimezone(BERLIN).strftime("%m-%d %H:%M") for s in starts] == [
        "03-25 09:00",
        "04-01 09:00",
        "04-08 09:00",
    ]
    assert plan.series is not None


def test_spec_is_stored(db: Any, clock: None, make_instrument: Any, make_user: Any) -> None:
    inst, sme, _staff = _setup(db, make_instrument, make_user)
    plan = create_series(
        inst,
        sme,
        START,
        END,
        RecurrenceSpec("weekly", 1, (0, 4), dt.date(2030, 1, 31), None),
        purpose="x",
        skip_conflicting=False,
    )
    db.session.commit()
    series = db.session.get(BookingSeries, plan.series.id)
    assert (
        series.freq,
        series.interval_n,
        series.weekday_list,
        series.until_date,
        series.count_n,
    ) == (
        "weekly",
        1,
        [0, 4],
        dt.date(2030, 1, 31),
        None,
    )
    assert series.timezone == "Asia/Shanghai"
    assert len(series_bookings(series)) == 7  # Mon 7, 14, 21, 28; Fri 11, 18, 25


def test_a_booked_together_instrument_cannot_be_booked_as_a_series(
    db: Any, clock: None, make_instrument: Any, make_user: Any
) -> None:
    inst = make_instrument(rules=rules(), bundle="tensile rig")
    sme = make_user(Role.SME)
    db.session.commit()
    for call in (preview_series, create_series):
        kwargs: dict[str, Any] = {"purpose": "x"}
        if call is create_series:
            kwargs["skip_conflicting"] = True
        with pytest.raises(ValidationFailed) as info:
            call(inst, sme, START, END, validate_spec("daily", count=2), **kwargs)
        assert info.value.field == "resource_id"
    assert count_rows(Booking) == 0


def test_monthly_on_the_31st_skips_shorter_months(app: Any) -> None:
    """RFC 5545 (dateutil): a monthly rule never moves a day; months without it are
    skipped, so "count" counts real occurrences."""
    start = dt.datetime(2030, 1, 31, 9, tzinfo=SH)
    got = expand(
        validate_spec("monthly", count=3),
        start,
        start + dt.timedelta(hours=1),
        "Asia/Shanghai",
        FAR,
    )
    assert [s.astimezone(SH).date().isoformat() for s, _e in got.occurrences] == [
        "2030-01-31",
        "2030-03-31",
        "2030-05-31",
    ]
