"""The waitlist: joining only a taken slot, offers to the first in line
when time frees up, the offer's hold on the slot, taking it through the booking
engine, declining, leaving, expiry by the scheduler (idempotent), tenancy. On
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from labshare.booking.availability import availability
from labshare.booking.bookings import cancel_booking, create_booking, reject_booking
from labshare.booking.policies import waitlist
from labshare.errors import (
    InvalidTransition,
    NotAllowed,
    NotFound,
    RuleViolation,
    SlotTaken,
    ValidationFailed,
)
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import (
    AuditLog,
    Booking,
    BookingRules,
    BookingStatus,
    Notification,
    Resource,
    Role,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.timeutil import set_clock
from tests import factories, raceutil
from tests.factories import OPEN_RULES

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
END = dt.datetime(2030, 1, 7, 11, tzinfo=SH)
RULES = {**OPEN_RULES, "max_active_per_company": 10}  # this file's own limit


@pytest.fixture
def env(app: Any) -> SimpleNamespace:
    """An instrument whose 09:00-11:00 is booked by ``holder``; three other
    companies' members a, b, c; staff of the institute."""
    set_clock(lambda: NOW)
    inst = factories.make_instrument(rules=dict(RULES))
    holder = factories.make_user(Role.SME)
    a, b, c = (factories.make_user(Role.SME) for _ in range(3))
    staff = factories.make_user(Role.STAFF, institute_id=inst.institute_id)
    booking = create_booking(inst, holder, START, END, purpose="first")
    db.session.commit()
    return SimpleNamespace(inst=inst, holder=holder, a=a, b=b, c=c, staff=staff, booking=booking)


def _join(env: SimpleNamespace, user: Any, start: Any = START, end: Any = END) -> WaitlistEntry:
    entry = waitlist.join(env.inst, user, start, end, purpose="calibrate a gauge")
    db.session.commit()
    return entry


def _entries() -> int:
    return int(db.session.scalar(select(func.count(WaitlistEntry.id))) or 0)


def _offers_to(user: Any) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification).where(
                Notification.user_id == user.id, Notification.kind == "waitlist_offer"
            )
        )
    )


# -- joining ---------------------------------------------------------------------------------


def test_join_a_taken_slot_in_order(env: SimpleNamespace) -> None:
    first = _join(env, env.a)
    second = _join(env, env.b)
    assert first.status == WaitlistStatus.WAITING
    assert (first.company_id, first.user_id) == (env.a.company_id, env.a.id)
    assert waitlist.position(first) == 1
    assert waitlist.position(second) == 2
    assert db.session.scalar(select(AuditLog.id).where(AuditLog.action == "waitlist.join"))


def test_join_a_free_slot_is_refused(env: SimpleNamespace) -> None:
    later = START + dt.timedelta(hours=4)
    with pytest.raises(RuleViolation) as info:
        waitlist.join(env.inst, env.a, later, later + dt.timedelta(hours=1), purpose="x")
    assert info.value.rule == "slot_free"
    db.session.rollback()
    assert _entries() == 0


def test_join_a_slot_the_rules_refuse_is_refused(env: SimpleNamespace) -> None:
    """Not on the grid: the rule's own refusal, not a place in line."""
    with pytest.raises(RuleViolation) as info:
        waitlist.join(
            env.inst, env.a, START + dt.timedelta(minutes=10), END, purpose="calibrate a gauge"
        )
    assert info.value.rule == "granularity"
    db.session.rollback()
    assert _entries() == 0


def test_no_duplicate_entry_for_the_same_company_and_slot(env: SimpleNamespace) -> None:
    _join(env, env.a)
    colleague = factories.make_user(Role.SME, company_id=env.a.company_id)
    db.session.commit()
    with pytest.raises(RuleViolation) as info:
        waitlist.join(env.inst, colleague, START, END, purpose="again")
    assert info.value.rule == "waitlist_duplicate"
    db.session.rollback()
    assert _entries() == 1


def test_open_entries_per_company_are_limited(env: SimpleNamespace, monkeypatch: Any) -> None:
    monkeypatch.setattr(waitlist, "MAX_OPEN_PER_COMPANY", 1)
    _join(env, env.a)
    with pytest.raises(RuleViolation) as info:
        waitlist.join(env.inst, env.a, START, START + dt.timedelta(hours=1), purpose="x")
    assert info.value.rule == "waitlist_limit"
    db.session.rollback()
    assert _entries() == 1


def test_waitlist_can_be_switched_off(env: SimpleNamespace) -> None:
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.waitlist_enabled = False
    db.session.commit()
    with pytest.raises(RuleViolation) as info:
        waitlist.join(env.inst, env.a, START, END, purpose="x")
    assert info.value.rule == "waitlist_disabled"
    db.session.rollback()
    assert _entries() == 0


def test_a_booked_together_instrument_has_no_waitlist(env: SimpleNamespace) -> None:
    """Taking an offer books one resource; a bundled instrument would lose its bundle."""
    env.inst.bundle = "pair"
    db.session.commit()
    with pytest.raises(RuleViolation) as info:
        waitlist.join(env.inst, env.a, START, END, purpose="x")
    assert (info.value.rule, info.value.field) == ("waitlist_disabled", "resource_id")
    db.session.rollback()
    assert _entries() == 0


def test_only_sme_members_join(env: SimpleNamespace) -> None:
    with pytest.raises(NotAllowed):
        waitlist.join(env.inst, env.staff, START, END, purpose="x")
    db.session.rollback()
    assert _entries() == 0


@pytest.mark.parametrize(
    ("start", "end", "purpose", "field"),
    [
        (START, START - dt.timedelta(hours=1), "x", "end"),
        (START, END, "   ", "purpose"),
        (START, END, "x" * 501, "purpose"),
        (START.replace(tzinfo=None), END, "x", "start"),
    ],
)
def test_bad_input_names_the_field(
    env: SimpleNamespace, start: Any, end: Any, purpose: str, field: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        waitlist.join(env.inst, env.a, start, end, purpose=purpose)
    assert info.value.field == field
    db.session.rollback()
    assert _entries() == 0


# -- offers ------------------------------------------------------------------------------------


def test_cancellation_offers_the_slot_to_the_first_in_line(env: SimpleNamespace) -> None:
    first, second = _join(env, env.a), _join(env, env.b)
    cancel_booking(env.booking, env.holder, "plans changed")
    db.session.commit()
    db.session.refresh(first)
    db.session.refresh(second)
    assert first.status == WaitlistStatus.OFFERED
    assert first.offered_at == NOW
    assert first.offer_expires_at == NOW + dt.timedelta(minutes=120)
    assert second.status == WaitlistStatus.WAITING
    (note,) = _offers_to(env.a)
    assert "calibrate a gauge" in note.body_text
    assert _offers_to(env.b) == []
    assert db.session.scalar(select(AuditLog.id).where(AuditLog.action == "waitlist.offer"))


def test_rejection_offers_the_slot(env: SimpleNamespace) -> None:
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.requires_approval = True
    later = START + dt.timedelta(days=1)
    pending = create_booking(
        env.inst, env.holder, later, later + dt.timedelta(hours=1), purpose="p"
    )
    db.session.commit()
    entry = _join(env, env.a, later, later + dt.timedelta(hours=1))
    reject_booking(pending, env.staff, "not possible")
    db.session.commit()
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.OFFERED


def test_the_offer_window_is_configurable_and_never_outlasts_the_start(
    env: SimpleNamespace,
) -> None:
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.waitlist_offer_minutes = 30
    db.session.commit()
    entry = _join(env, env.a)
    cancel_booking(env.booking, env.holder)
    db.session.commit()
    db.session.refresh(entry)
    assert entry.offer_expires_at == NOW + dt.timedelta(minutes=30)

    soon = NOW + dt.timedelta(hours=1)  # a slot starting in one hour: held until then
    rules.waitlist_offer_minutes = 600
    db.session.commit()
    near = create_booking(env.inst, env.holder, soon, soon + dt.timedelta(hours=1), purpose="p")
    db.session.commit()
    other = _join(env, env.b, soon, soon + dt.timedelta(hours=1))
    cancel_booking(near, env.holder)
    db.session.commit()
    db.session.refresh(other)
    assert other.offer_expires_at == soon


def test_an_entry_whose_slot_is_still_partly_taken_keeps_waiting(env: SimpleNamespace) -> None:
    """The entry wants 09:00-12:00; only 09:00-11:00 frees up while 11:00-12:00 stays
    booked: not offered. An entry behind it that fits is offered instead."""
    later = END + dt.timedelta(hours=1)
    create_booking(env.inst, env.c, END, later, purpose="next")
    db.session.commit()
    wide = _join(env, env.a, START, later)
    fits = _join(env, env.b)
    cancel_booking(env.booking, env.holder)
    db.session.commit()
    db.session.refresh(wide)
    db.session.refresh(fits)
    assert wide.status == WaitlistStatus.WAITING
    assert fits.status == WaitlistStatus.OFFERED


def test_an_open_offer_holds_the_slot(env: SimpleNamespace) -> None:
    entry = _join(env, env.a)
    version = db.session.scalar(select(Resource.calendar_version).where(Resource.id == env.inst.id))
    cancel_booking(env.booking, env.holder)
    db.session.commit()
    # the calendar cache sees the change (triggers on waitlist_entry)
    after = db.session.scalar(select(Resource.calendar_version).where(Resource.id == env.inst.id))
    assert after != version
    with pytest.raises(SlotTaken) as info:
        create_booking(env.inst, env.c, START + dt.timedelta(hours=1), END, purpose="sneaking in")
    assert info.value.details["reason"] == "offered"
    assert "waitlist" in str(info.value.message)
    db.session.rollback()
    a = availability(env.inst, START - dt.timedelta(hours=1), END + dt.timedelta(hours=1))
    offered = [i for i in a.busy if i.reason == "offered"]
    assert [(i.start, i.end) for i in offered] == [(START, END)]
    db.session.refresh(entry)
    # once the offer has expired (even before the job ran) the time is free again
    set_clock(lambda: NOW + dt.timedelta(minutes=121))
    booking = create_booking(env.inst, env.c, START, END, purpose="after the offer")
    assert booking.status == BookingStatus.APPROVED


def test_offers_stop_when_the_slot_is_offered_once(env: SimpleNamespace) -> None:
    """Two waiting entries for the same slot: only the first gets the offer, the
    second's check sees the first's hold."""
    _join(env, env.a)
    _join(env, env.b)
    cancel_booking(env.booking, env.holder)
    db.session.commit()
    statuses = sorted(str(s) for s in db.session.scalars(select(WaitlistEntry.status)))
    assert statuses == ["offered", "waiting"]


# -- answers -----------------------------------------------------------------------------------


def _offered(env: SimpleNamespace) -> tuple[WaitlistEntry, WaitlistEntry]:
    first, second = _join(env, env.a), _join(env, env.b)
    cancel_booking(env.booking, env.holder)
    db.session.commit()
    return first, second


def test_accept_books_through_the_engine(env: SimpleNamespace) -> None:
    first, _second = _offered(env)
    booking = waitlist.accept_offer(first, env.a)
    db.session.commit()
    assert (booking.start_at, booking.end_at) == (START, END)
    assert booking.company_id == env.a.company_id
    assert booking.status == BookingStatus.APPROVED
    db.session.refresh(first)
    assert first.status == WaitlistStatus.BOOKED
    assert first.booking_id == booking.id
    with pytest.raises(InvalidTransition):
        waitlist.accept_offer(first, env.a)
    db.session.rollback()
    assert (
        db.session.scalar(
            select(func.count(Booking.id)).where(Booking.status == BookingStatus.APPROVED)
        )
        == 1
    )


def test_a_colleague_may_take_the_offer(env: SimpleNamespace) -> None:
    first, _second = _offered(env)
    colleague = factories.make_user(Role.SME, company_id=env.a.company_id)
    db.session.commit()
    booking = waitlist.accept_offer(first, colleague)
    db.session.commit()
    assert booking.user_id == colleague.id


def test_another_company_cannot_see_or_take_the_offer(env: SimpleNamespace) -> None:
    first, _second = _offered(env)
    for stranger in (env.b, env.c, env.staff):
        for action in (waitlist.accept_offer, waitlist.decline_offer, waitlist.leave):
            with pytest.raises(NotFound):
                action(first, stranger)
            db.session.rollback()
    db.session.refresh(first)
    assert first.status == WaitlistStatus.OFFERED


def test_an_expired_offer_cannot_be_taken(env: SimpleNamespace) -> None:
    first, _second = _offered(env)
    set_clock(lambda: NOW + dt.timedelta(minutes=120))
    with pytest.raises(InvalidTransition):
        waitlist.accept_offer(first, env.a)
    db.session.rollback()
    assert db.session.scalar(select(func.count(Booking.id)).where(Booking.purpose != "first")) == 0


def test_accept_rechecks_the_rules(env: SimpleNamespace) -> None:
    first, _second = _offered(env)
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.max_minutes = 60
    db.session.commit()
    with pytest.raises(RuleViolation) as info:
        waitlist.accept_offer(first, env.a)
    assert info.value.rule == "max_duration"
    db.session.rollback()
    db.session.refresh(first)
    assert first.status == WaitlistStatus.OFFERED


def test_decline_passes_the_offer_on_at_once(env: SimpleNamespace) -> None:
    first, second = _offered(env)
    waitlist.decline_offer(first, env.a)
    db.session.commit()
    db.session.refresh(first)
    db.session.refresh(second)
    assert first.status == WaitlistStatus.DECLINED
    assert second.status == WaitlistStatus.OFFERED
    assert len(_offers_to(env.b)) == 1
    with pytest.raises(InvalidTransition):
        waitlist.decline_offer(first, env.a)
    db.session.rollback()


def test_decline_needs_an_open_offer(env: SimpleNamespace) -> None:
    first = _join(env, env.a)
    with pytest.raises(InvalidTransition):
        waitlist.decline_offer(first, env.a)
    db.session.rollback()


def test_leave_waiting_and_leave_an_offer(env: SimpleNamespace) -> None:
    first, second = _join(env, env.a), _join(env, env.b)
    waitlist.leave(second, env.b)
    db.session.commit()
    assert second.status == WaitlistStatus.LEFT
    third = _join(env, env.c)
    cancel_booking(env.booking, env.holder)
    db.session.commit()
    db.session.refresh(first)
    assert first.status == WaitlistStatus.OFFERED
    waitlist.leave(first, env.a)
    db.session.commit()
    db.session.refresh(third)
    assert third.status == WaitlistStatus.OFFERED
    with pytest.raises(InvalidTransition):
        waitlist.leave(first, env.a)
    db.session.rollback()


# -- the scheduler -----------------------------------------------------------------------------


def test_expiry_passes_to_the_next_in_line_once(env: SimpleNamespace) -> None:
    first, second = _offered(env)
    set_clock(lambda: NOW + dt.timedelta(minutes=119))
    assert run_job("waitlist-offers")["expired"] == 0
    set_clock(lambda: NOW + dt.timedelta(minutes=120))
    result = run_job("waitlist-offers")
    assert result["expired"] == 1
    assert result["offered"] == [second.id]
    db.session.refresh(first)
    db.session.refresh(second)
    assert first.status == WaitlistStatus.EXPIRED
    assert second.status == WaitlistStatus.OFFERED
    assert second.offer_expires_at == NOW + dt.timedelta(minutes=240)
    # a rerun (or a second scheduler) finds nothing left to do
    again = run_job("waitlist-offers")
    assert again["expired"] == 0 and again["offered"] == []
    assert len(_offers_to(env.b)) == 1
    expiries = db.session.scalar(
        select(func.count(AuditLog.id)).where(AuditLog.action == "waitlist.expire")
    )
    assert expiries == 1


def test_expire_offer_is_conditional(env: SimpleNamespace) -> None:
    """The service step the job runs: a second call for the same offer is a no-op."""
    first, second = _offered(env)
    later = NOW + dt.timedelta(minutes=200)
    assert waitlist.expire_offer(first.id, later) == [second]
    db.session.commit()
    assert waitlist.expire_offer(first.id, later) is None
    db.session.commit()
    db.session.refresh(second)
    assert second.status == WaitlistStatus.OFFERED


def test_waiting_entries_whose_slot_is_over_expire(env: SimpleNamespace) -> None:
    entry = _join(env, env.a)
    set_clock(lambda: START.astimezone(dt.UTC))
    assert run_job("waitlist-offers")["stale"] == 0  # begun: a no-show may still free it
    set_clock(lambda: END.astimezone(dt.UTC))
    assert run_job("waitlist-offers")["stale"] == 1
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.EXPIRED
    assert run_job("waitlist-offers")["stale"] == 0


# -- two takers, real threads ------------------------------------------------------------------


def _race(app: Any, actions: list[Any]) -> list[str]:
    """Run each action (a ``raceutil.Step``: it prepares in its own app context,
    session and connection and returns what to race with) at the same moment;
    returns each one's outcome."""
    outcomes = raceutil.race(app, actions)
    return raceutil.labels(
        outcomes, "won", {SlotTaken: "SlotTaken", InvalidTransition: "InvalidTransition"}
    )


@pytest.fixture
def offered_ids(app: Any, env: SimpleNamespace, cheap_passwords: None) -> SimpleNamespace:
    first, _second = _offered(env)
    colleague = factories.make_user(Role.SME, company_id=env.a.company_id)
    db.session.commit()
    ids = SimpleNamespace(
        entry=first.id, a=env.a.id, colleague=colleague.id, c=env.c.id, inst=env.inst.id
    )
    db.session.remove()  # the threads are the only ones talking to the database now
    return ids


def _accept(entry_id: int, user_id: int) -> Any:
    from labshare.models import User

    def prepare() -> Any:
        entry = db.session.get(WaitlistEntry, entry_id)
        user = db.session.get(User, user_id)
        return lambda: waitlist.accept_offer(entry, user)

    return prepare


def _holding() -> list[int]:
    return list(
        db.session.scalars(
            select(Booking.company_id).where(
                Booking.status.in_([BookingStatus.PENDING, BookingStatus.APPROVED])
            )
        )
    )


def test_two_accepts_of_one_offer_one_wins(app: Any, offered_ids: SimpleNamespace) -> None:
    ids = offered_ids
    outcomes = _race(app, [_accept(ids.entry, ids.a), _accept(ids.entry, ids.colleague)])
    assert sorted(outcomes) == ["InvalidTransition", "won"], outcomes
    assert len(_holding()) == 1
    entry = db.session.get(WaitlistEntry, ids.entry)
    assert entry.status == WaitlistStatus.BOOKED


def test_accept_racing_a_normal_booking_only_the_offeree_wins(
    app: Any, offered_ids: SimpleNamespace
) -> None:
    ids = offered_ids
    outcomes = _race(
        app,
        [
            _accept(ids.entry, ids.a),
            raceutil.booking_step(ids.inst, ids.c, START, END),
            raceutil.booking_step(
                ids.inst, ids.c, START + dt.timedelta(hours=1), END + dt.timedelta(hours=1)
            ),
        ],
    )
    assert outcomes == ["won", "SlotTaken", "SlotTaken"], outcomes
    assert len(_holding()) == 1


# -- the API ----------------------------------------------------------------------------------


def _api(client: Any, user: Any, method: str, url: str, **kw: Any) -> Any:
    from tests.helpers import bearer

    return getattr(client, method)(url, headers=bearer(user), **kw)


JOIN = {"start": "2030-01-07T09:00:00+08:00", "end": "2030-01-07T11:00:00+08:00"}


def test_api_join_list_accept(client: Any, env: SimpleNamespace) -> None:
    from tests.helpers import check_schema

    body = {"resource_id": env.inst.id, **JOIN, "purpose": "calibrate a gauge"}
    created = _api(client, env.a, "post", "/api/v1/waitlist", json=body)
    assert created.status_code == 201, created.get_json()
    entry = created.get_json()
    check_schema(client, "WaitlistEntryOut", entry)
    assert entry["status"] == "waiting" and entry["position"] == 1
    assert entry["start"] == "2030-01-07T09:00:00+08:00"

    listed = _api(client, env.a, "get", "/api/v1/waitlist?per_page=1").get_json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == entry["id"]
    assert _api(client, env.b, "get", "/api/v1/waitlist").get_json()["total"] == 0

    cancel_booking(db.session.get(Booking, env.booking.id), env.holder)
    db.session.commit()
    one = _api(client, env.a, "get", f"/api/v1/waitlist/{entry['id']}").get_json()
    assert one["status"] == "offered" and one["offer_expires_at"] == "2030-01-01T10:00:00+08:00"
    taken = _api(client, env.a, "post", f"/api/v1/waitlist/{entry['id']}/accept")
    assert taken.status_code == 201, taken.get_json()
    check_schema(client, "BookingOut", taken.get_json())
    assert taken.get_json()["company_id"] == env.a.company_id
    again = _api(client, env.a, "post", f"/api/v1/waitlist/{entry['id']}/accept")
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "invalid_state"


def test_api_other_company_gets_404(client: Any, env: SimpleNamespace) -> None:
    entry = _join(env, env.a)
    for method, suffix in (
        ("get", ""),
        ("post", "/accept"),
        ("post", "/decline"),
        ("post", "/leave"),
    ):
        response = _api(client, env.b, method, f"/api/v1/waitlist/{entry.id}{suffix}")
        assert response.status_code == 404, (suffix, response.get_json())
    missing = _api(client, env.a, "get", "/api/v1/waitlist/999999")
    assert missing.status_code == 404
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.WAITING


def test_api_staff_may_not_join(client: Any, env: SimpleNamespace) -> None:
    body = {"resource_id": env.inst.id, **JOIN, "purpose": "x"}
    assert _api(client, env.staff, "post", "/api/v1/waitlist", json=body).status_code == 403
    assert client.post("/api/v1/waitlist", json=body).status_code == 401
    assert _entries() == 0


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"purpose": ""}, 422, "purpose"),
        ({"start": "2030-01-07T09:00:00"}, 422, "start"),
        ({"end": "2030-01-07T08:00:00+08:00"}, 422, "end"),
        ({"resource_id": 0}, 422, "resource_id"),
        ({"resource_id": "1"}, 400, "resource_id"),
    ],
)
def test_api_bad_input_names_the_field(
    client: Any, env: SimpleNamespace, change: dict[str, Any], status: int, field: str
) -> None:
    body = {"resource_id": env.inst.id, **JOIN, "purpose": "x", **change}
    response = _api(client, env.a, "post", "/api/v1/waitlist", json=body)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert _entries() == 0


def test_api_free_slot_and_duplicate_are_rule_violations(client: Any, env: SimpleNamespace) -> None:
    free = {
        "resource_id": env.inst.id,
        "start": "2030-01-08T09:00:00+08:00",
        "end": "2030-01-08T10:00:00+08:00",
        "purpose": "x",
    }
    response = _api(client, env.a, "post", "/api/v1/waitlist", json=free)
    assert response.status_code == 422
    assert response.get_json()["error"]["rule"] == "slot_free"
    body = {"resource_id": env.inst.id, **JOIN, "purpose": "x"}
    assert _api(client, env.a, "post", "/api/v1/waitlist", json=body).status_code == 201
    response = _api(client, env.a, "post", "/api/v1/waitlist", json=body)
    assert response.status_code == 422
    assert response.get_json()["error"]["rule"] == "waitlist_duplicate"
    assert _entries() == 1


def test_api_conflict_says_the_waitlist_can_be_joined(client: Any, env: SimpleNamespace) -> None:
    body = {"resource_id": env.inst.id, **JOIN, "purpose": "x"}
    response = _api(client, env.a, "post", "/api/v1/bookings", json=body)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "conflict" and error["waitlist_available"] is True
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.waitlist_enabled = False
    db.session.commit()
    error = _api(client, env.a, "post", "/api/v1/bookings", json=body).get_json()["error"]
    assert error["waitlist_available"] is False


def test_api_decline_and_leave(client: Any, env: SimpleNamespace) -> None:
    first, second = _offered(env)
    response = _api(client, env.a, "post", f"/api/v1/waitlist/{first.id}/decline")
    assert response.status_code == 200 and response.get_json()["status"] == "declined"
    response = _api(client, env.b, "post", f"/api/v1/waitlist/{second.id}/leave")
    assert response.status_code == 200 and response.get_json()["status"] == "left"
    response = _api(client, env.b, "post", f"/api/v1/waitlist/{second.id}/leave")
    assert response.status_code == 409


def test_api_rules_show_the_waitlist_settings(client: Any, env: SimpleNamespace) -> None:
    rules = client.get(f"/api/v1/resources/{env.inst.id}").get_json()["rules"]
    assert rules["waitlist_enabled"] is True and rules["waitlist_offer_minutes"] == 120


# -- the web pages ----------------------------------------------------------------------------


def test_web_conflict_offers_join_and_the_waitlist_page(
    client: Any, login: Any, env: SimpleNamespace
) -> None:
    login(env.a)
    form = {"start": "2030-01-07T09:00", "end": "2030-01-07T11:00", "purpose": "calibrate"}
    page = client.post(f"/resources/{env.inst.id}/book", data=form)
    assert page.status_code == 409
    assert "Join the waitlist" in page.get_data(as_text=True)
    joined = client.post(f"/resources/{env.inst.id}/waitlist", data=form)
    assert joined.status_code == 302 and joined.headers["Location"].endswith("/waitlist")
    (entry,) = db.session.scalars(select(WaitlistEntry))
    assert entry.company_id == env.a.company_id
    html = client.get("/waitlist").get_data(as_text=True)
    assert "Place in line: 1" in html and "/accept" not in html

    cancel_booking(db.session.get(Booking, env.booking.id), env.holder)
    db.session.commit()
    html = client.get("/waitlist").get_data(as_text=True)
    assert f"/waitlist/{entry.id}/accept" in html and "Decline" in html
    notes = client.get("/notifications").get_data(as_text=True)
    assert "A slot you are waiting for is free" in notes and "/waitlist" in notes
    taken = client.post(f"/waitlist/{entry.id}/accept")
    assert taken.status_code == 302 and "/bookings/" in taken.headers["Location"]
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.BOOKED


def test_web_calendar_shows_an_open_offer(client: Any, env: SimpleNamespace) -> None:
    _offered(env)
    html = client.get(f"/resources/{env.inst.id}/calendar?week=2030-W02").get_data(as_text=True)
    assert "slot-offered" in html and "Offered to the waitlist" in html


def test_web_join_refused_shows_why_and_writes_nothing(
    client: Any, login: Any, env: SimpleNamespace
) -> None:
    login(env.a)
    free = {"start": "2030-01-08T09:00", "end": "2030-01-08T10:00", "purpose": "calibrate"}
    response = client.post(f"/resources/{env.inst.id}/waitlist", data=free, follow_redirects=True)
    assert "book it instead" in response.get_data(as_text=True)
    assert _entries() == 0


def test_web_other_company_gets_404(client: Any, login: Any, env: SimpleNamespace) -> None:
    entry = _join(env, env.a)
    login(env.b)
    for action in ("accept", "decline", "leave"):
        assert client.post(f"/waitlist/{entry.id}/{action}").status_code == 404
    assert f"#{entry.id}" not in client.get("/waitlist").get_data(as_text=True)


# -- time freed after the slot began (a no-show release) ---------------------------------------


def _release(booking: Booking) -> None:
    """What the check-in job does to a booking nobody checked into: no-show, then
    ``slot_freed`` under the resource's lock."""
    from labshare.booking.bookings import lock_resources

    lock_resources([booking.resource_id])
    db.session.refresh(booking)
    booking.status = BookingStatus.NO_SHOW
    db.session.flush()
    waitlist.slot_freed(booking)
    db.session.commit()


def test_a_released_slot_offers_what_is_left_of_it(env: SimpleNamespace) -> None:
    entry = _join(env, env.a)
    at = START.astimezone(dt.UTC) + dt.timedelta(minutes=10)  # 09:10 in Shanghai
    set_clock(lambda: at)
    _release(db.session.get(Booking, env.booking.id))
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.OFFERED
    assert entry.start_at == START + dt.timedelta(minutes=30)  # the next grid instant
    # at most the last moment the rest can still be taken: the minimum duration
    # (30 minutes here) before the slot's end
    assert entry.offer_expires_at == END - dt.timedelta(minutes=30)
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "waitlist.offer"))
    assert audit.data["wanted_start"] == START.astimezone(dt.UTC).isoformat()
    set_clock(lambda: at + dt.timedelta(minutes=30))  # 09:40: books 10:00-11:00
    booking = waitlist.accept_offer(entry, env.a)
    db.session.commit()
    assert (booking.start_at, booking.end_at) == (START + dt.timedelta(hours=1), END)


def test_a_released_slot_is_not_offered_against_the_lead_time(env: SimpleNamespace) -> None:
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.lead_time_hours = 24
    db.session.commit()
    entry = _join(env, env.a)
    set_clock(lambda: START.astimezone(dt.UTC) + dt.timedelta(minutes=10))
    _release(db.session.get(Booking, env.booking.id))
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.WAITING
    assert entry.start_at == START


def test_staff_marking_a_no_show_offers_the_rest(env: SimpleNamespace) -> None:
    """The check-in part's one no-show transition calls ``slot_freed`` (its contract)."""
    from labshare.booking.bookings import mark_no_show

    entry = _join(env, env.a)
    set_clock(lambda: START.astimezone(dt.UTC) + dt.timedelta(minutes=20))
    mark_no_show(db.session.get(Booking, env.booking.id), env.staff)
    db.session.commit()
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.OFFERED
    assert entry.start_at == START + dt.timedelta(minutes=30)


def test_staff_set_the_waitlist_rules(client: Any, login: Any, env: SimpleNamespace) -> None:
    login(env.staff)
    url = f"/manage/resources/{env.inst.id}/rules"
    form = {k: str(v) for k, v in RULES.items() if not isinstance(v, bool)}
    form.update(checkin_opens_minutes="15", checkin_release_minutes="15")  # check-in's fields
    bad = client.post(url, data={**form, "waitlist_offer_minutes": "1"})
    assert bad.status_code == 422 and 'id="waitlist_offer_minutes-error"' in bad.get_data(
        as_text=True
    )
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    db.session.refresh(rules)
    assert rules.waitlist_offer_minutes == 120
    ok = client.post(url, data={**form, "waitlist_offer_minutes": "45", "waitlist_enabled": "y"})
    assert ok.status_code == 302
    db.session.refresh(rules)
    assert (rules.waitlist_enabled, rules.waitlist_offer_minutes) == (True, 45)
    empty = {**form, "waitlist_offer_minutes": ""}
    assert client.post(url, data=empty).status_code == 302  # box unticked, minutes empty
    db.session.refresh(rules)
    assert (rules.waitlist_enabled, rules.waitlist_offer_minutes) == (False, 120)
    assert 'name="waitlist_offer_minutes"' in client.get(url).get_data(as_text=True)
