"""Check-in and auto-release: the window, who may check in, the
release job (once, from two threads too), the waitlist hook, the one no-show
transition (staff via API and page), usage defaults, the kiosk and QR pages."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from labshare.booking import bookings as booking_service
from labshare.booking.policies import checkin
from labshare.errors import InvalidTransition, NotAllowed, NotFound, RuleViolation
from labshare.extensions import db as _db
from labshare.jobs import run_job
from labshare.models import (
    AuditLog,
    Booking,
    BookingRules,
    BookingStatus,
    Notification,
    Role,
    UsageRecord,
)
from labshare.timeutil import set_clock
from tests import factories, raceutil
from tests.helpers import bearer, error_of
from tests.jobsutil import T0, freeze

# T0: Monday 2030-01-07 09:00 in Shanghai (01:00 UTC); bookings run 09:00-11:00.
END = T0 + dt.timedelta(hours=2)
MIN = dt.timedelta(minutes=1)
REQUIRED = {"checkin_required": True, "checkin_opens_minutes": 15, "checkin_release_minutes": 15}


@pytest.fixture
def env(app: Flask) -> SimpleNamespace:
    freeze(T0 - dt.timedelta(days=1))
    inst = factories.make_instrument(rules=dict(REQUIRED))
    sme = factories.make_user(Role.SME)
    colleague = factories.make_user(Role.SME, company_id=sme.company_id)
    booking = factories.make_booking(
        resource=inst, user=sme, start=T0, end=END, status=BookingStatus.APPROVED
    )
    env = SimpleNamespace(
        inst=inst,
        sme=sme,
        colleague=colleague,
        other_sme=factories.make_user(Role.SME),
        staff=factories.make_user(Role.STAFF, institute_id=inst.institute_id),
        other_staff=factories.make_user(Role.STAFF),
        admin=factories.make_user(Role.ADMIN),
        booking=booking,
    )
    _db.session.commit()
    return env


def _audits(action: str) -> list[AuditLog]:
    return list(
        _db.session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
    )


def _notes(kind: str) -> list[Notification]:
    return list(_db.session.scalars(select(Notification).where(Notification.kind == kind)))


# -- the window ---------------------------------------------------------------------------


def test_window_opens_exactly_n_minutes_before_the_start(env: SimpleNamespace) -> None:
    freeze(T0 - 16 * MIN)
    with pytest.raises(RuleViolation) as refused:
        checkin.check_in(env.booking, env.sme)
    assert refused.value.rule == "checkin_window"
    assert "2030-01-07 08:45" in str(refused.value.message)  # says when it opens (local)
    _db.session.rollback()
    assert _audits("booking.check_in") == []

    freeze(T0 - 15 * MIN)
    checkin.check_in(env.booking, env.sme)
    _db.session.commit()
    assert env.booking.checked_in_at == T0 - 15 * MIN
    assert env.booking.checked_in_by_id == env.sme.id
    [entry] = _audits("booking.check_in")
    assert (entry.actor_id, entry.object_id) == (env.sme.id, env.booking.id)


def test_opening_minutes_follow_the_rules(env: SimpleNamespace) -> None:
    rules = _db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.checkin_opens_minutes = 60
    _db.session.commit()
    freeze(T0 - 61 * MIN)
    with pytest.raises(RuleViolation):
        checkin.check_in(env.booking, env.staff)
    _db.session.rollback()
    freeze(T0 - 60 * MIN)
    checkin.check_in(env.booking, env.staff)


def test_refused_at_and_after_the_end(env: SimpleNamespace) -> None:
    for when in (END, END + MIN):
        freeze(when)
        with pytest.raises(RuleViolation) as refused:
            checkin.check_in(env.booking, env.staff)
        assert refused.value.rule == "checkin_window"
        _db.session.rollback()
    freeze(END - MIN)  # staff: until the end, even past the release time
    checkin.check_in(env.booking, env.staff)
    assert env.booking.checked_in_by_id == env.staff.id


def test_company_may_not_check_in_once_due_for_release(env: SimpleNamespace) -> None:
    freeze(T0 + 14 * MIN)
    checkin.check_in(env.booking, env.sme)  # still in time
    _db.session.rollback()
    freeze(T0 + 15 * MIN)
    with pytest.raises(RuleViolation) as refused:
        checkin.check_in(env.booking, env.sme)
    assert refused.value.rule == "checkin_window"
    assert "09:15" in str(refused.value.message)
    _db.session.rollback()


def test_without_the_rule_the_company_checks_in_until_the_end(env: SimpleNamespace) -> None:
    rules = _db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.checkin_required = False
    _db.session.commit()
    freeze(END - MIN)
    checkin.check_in(env.booking, env.sme)


# -- who, and in which state --------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "error"),
    [
        ("sme", None),
        ("colleague", None),  # any member of the booking's company
        ("staff", None),
        ("other_sme", NotFound),
        ("other_staff", NotFound),
        ("admin", NotAllowed),
    ],
)
def test_who_may_check_in(env: SimpleNamespace, who: str, error: Any) -> None:
    freeze(T0)
    actor = getattr(env, who)
    if error is None:
        checkin.check_in(env.booking, actor)
        _db.session.commit()
        assert env.booking.checked_in_by_id == actor.id
        return
    with pytest.raises(error):
        checkin.check_in(env.booking, actor)
    _db.session.rollback()
    assert _db.session.get(Booking, env.booking.id).checked_in_at is None
    assert _audits("booking.check_in") == []


def test_second_check_in_is_refused(env: SimpleNamespace) -> None:
    freeze(T0)
    checkin.check_in(env.booking, env.sme)
    _db.session.commit()
    freeze(T0 + 5 * MIN)
    with pytest.raises(InvalidTransition) as refused:
        checkin.check_in(env.booking, env.staff)
    assert "09:00" in str(refused.value.message)
    _db.session.rollback()
    assert env.booking.checked_in_by_id == env.sme.id  # the first one stands
    assert len(_audits("booking.check_in")) == 1


@pytest.mark.parametrize(
    "status",
    [BookingStatus.PENDING, BookingStatus.CANCELLED, BookingStatus.NO_SHOW, BookingStatus.REJECTED],
)
def test_only_approved_bookings(env: SimpleNamespace, status: BookingStatus) -> None:
    env.booking.status = status
    _db.session.commit()
    freeze(T0)
    with pytest.raises(InvalidTransition):
        checkin.check_in(env.booking, env.sme)


# -- auto-release -------------------------------------------------------------------------


@pytest.fixture
def freed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids passed to the waitlist's ``slot_freed``."""
    calls: list[int] = []
    monkeypatch.setattr(
        "labshare.booking.policies.waitlist_offers.slot_freed",
        lambda booking: calls.append(booking.id),
    )
    return calls


def test_release_only_unchecked_bookings_past_the_release_time(
    env: SimpleNamespace, freed: list[int]
) -> None:
    later_lab = factories.make_lab(rules=dict(REQUIRED))  # a lab's rules apply to its bookings
    checked = factories.make_booking(
        resource=env.inst, start=END, status=BookingStatus.APPROVED, checked_in_at=END
    )
    lab_booking = factories.make_booking(
        resource=later_lab, start=T0 + 30 * MIN, status=BookingStatus.APPROVED
    )
    pending = factories.make_booking(status=BookingStatus.PENDING, start=T0)
    unruled = factories.make_booking(status=BookingStatus.APPROVED, start=T0)  # defaults: off
    with_usage = factories.make_booking(
        resource=env.inst, start=END + dt.timedelta(hours=2), status=BookingStatus.APPROVED
    )
    _db.session.add(
        UsageRecord(
            booking_id=with_usage.id,
            checked_in_at=with_usage.start_at,
            checked_out_at=with_usage.end_at,
            service_type="calibration",
            samples_count=1,
            problem_solved=True,
            recorded_by_id=env.staff.id,
        )
    )
    _db.session.commit()

    freeze(T0 + 14 * MIN)
    assert run_job("checkin-release")["released"] == 0
    freeze(T0 + 15 * MIN)
    assert run_job("checkin-release")["ids"] == [env.booking.id]
    freeze(T0 + 45 * MIN)
    assert run_job("checkin-release")["ids"] == [lab_booking.id]
    freeze(END + dt.timedelta(hours=3))
    assert run_job("checkin-release")["released"] == 0  # checked / usage / off / pending

    _db.session.expire_all()
    assert env.booking.status == BookingStatus.NO_SHOW
    assert lab_booking.status == BookingStatus.NO_SHOW
    assert checked.status == BookingStatus.APPROVED
    assert with_usage.status == BookingStatus.APPROVED
    assert unruled.status == BookingStatus.APPROVED
    assert pending.status == BookingStatus.PENDING
    entries = _audits("booking.no_show")
    assert [(e.object_id, e.actor_id, e.from_state, e.to_state) for e in entries] == [
        (env.booking.id, None, "approved", "no_show"),
        (lab_booking.id, None, "approved", "no_show"),
    ]
    assert entries[0].reason == "no check-in within 15 minutes of the start"
    assert sorted(n.booking_id for n in _notes("booking_no_show")) == sorted(
        [env.booking.id, lab_booking.id]
    )
    assert freed == [env.booking.id, lab_booking.id]  # the waitlist is offered the time


def test_rule_off_no_release(env: SimpleNamespace, freed: list[int]) -> None:
    rules = _db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.checkin_required = False
    _db.session.commit()
    freeze(T0 + 90 * MIN)
    assert run_job("checkin-release")["released"] == 0
    _db.session.expire_all()
    assert env.booking.status == BookingStatus.APPROVED
    assert freed == []


def test_release_time_follows_the_rules(env: SimpleNamespace) -> None:
    rules = _db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.checkin_release_minutes = 45
    _db.session.commit()
    freeze(T0 + 44 * MIN)
    assert run_job("checkin-release")["released"] == 0
    freeze(T0 + 45 * MIN)
    assert run_job("checkin-release")["released"] == 1


def test_release_twice_changes_nothing_more(env: SimpleNamespace, freed: list[int]) -> None:
    freeze(T0 + 20 * MIN)
    assert run_job("checkin-release")["released"] == 1
    assert run_job("checkin-release")["released"] == 0
    assert len(_audits("booking.no_show")) == 1
    assert len(_notes("booking_no_show")) == 1
    assert freed == [env.booking.id]


def test_check_in_after_release_is_refused(env: SimpleNamespace) -> None:
    freeze(T0 + 20 * MIN)
    run_job("checkin-release")
    with pytest.raises(InvalidTransition):
        checkin.check_in(env.booking, env.staff)


def test_release_from_two_threads_once(app: Flask, env: SimpleNamespace) -> None:
    others = [
        factories.make_booking(
            resource=factories.make_instrument(rules=dict(REQUIRED)),
            start=T0,
            status=BookingStatus.APPROVED,
        )
        for _ in range(3)
    ]
    _db.session.commit()
    expected = sorted([env.booking.id] + [b.id for b in others])
    freeze(T0 + 20 * MIN)
    _db.session.remove()

    def release() -> Any:
        set_clock(lambda: T0 + 20 * MIN)
        return lambda: run_job("checkin-release")["ids"]

    results: list[Any] = [
        o.value if o.error is None else raceutil.error_label(o.error)
        for o in raceutil.race(app, [release, release])
    ]
    assert all(isinstance(r, list) for r in results), results
    assert sorted(results[0] + results[1]) == expected  # each released once, by one of them
    assert len(_audits("booking.no_show")) == len(expected)
    assert len(_notes("booking_no_show")) == len(expected)


def test_end_of_booking_job_skips_checked_in_bookings(env: SimpleNamespace) -> None:
    rules = _db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.checkin_required = False
    unchecked = factories.make_booking(status=BookingStatus.APPROVED, start=T0)
    _db.session.commit()
    freeze(T0)
    checkin.check_in(env.booking, env.sme)
    _db.session.commit()
    freeze(END + dt.timedelta(hours=1))
    assert run_job("no-shows")["ids"] == [unchecked.id]
    _db.session.expire_all()
    assert env.booking.status == BookingStatus.APPROVED


def test_quiet_no_show_skips_a_checked_in_booking(env: SimpleNamespace) -> None:
    env.booking.checked_in_at = T0
    _db.session.commit()
    assert booking_service.mark_no_show(env.booking, quiet=True) is False
    assert env.booking.status == BookingStatus.APPROVED
    assert _audits("booking.no_show") == []


# -- staff mark a no-show (the one transition) --------------------------------------------


def test_api_no_show_by_staff(client: Any, env: SimpleNamespace, freed: list[int]) -> None:
    freeze(T0 + 30 * MIN)
    url = f"/api/v1/bookings/{env.booking.id}/no-show"
    assert client.post(url, json={}, headers=bearer(env.sme)).status_code == 403
    assert client.post(url, json={}, headers=bearer(env.other_staff)).status_code == 404
    response = client.post(url, json={"reason": "nobody came"}, headers=bearer(env.staff))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "no_show"
    [entry] = _audits("booking.no_show")
    assert (entry.actor_id, entry.from_state, entry.to_state, entry.reason) == (
        env.staff.id,
        "approved",
        "no_show",
        "nobody came",
    )
    assert [n.booking_id for n in _notes("booking_no_show")] == [env.booking.id]
    assert freed == [env.booking.id]  # 09:30: the rest of the booking is offered
    again = client.post(url, json={}, headers=bearer(env.staff))
    assert again.status_code == 409 and error_of(again)["code"] == "invalid_state"


def test_api_no_show_refused_for_a_checked_in_booking(client: Any, env: SimpleNamespace) -> None:
    freeze(T0)
    checkin.check_in(env.booking, env.sme)
    _db.session.commit()
    response = client.post(
        f"/api/v1/bookings/{env.booking.id}/no-show", json={}, headers=bearer(env.staff)
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "invalid_state"
    assert "checked in" in error_of(response)["message"]


def test_api_no_show_refused_before_the_start(client: Any, env: SimpleNamespace) -> None:
    freeze(T0 - MIN)
    url = f"/api/v1/bookings/{env.booking.id}/no-show"
    response = client.post(url, json={}, headers={**bearer(env.staff), "Accept-Language": "en"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "invalid_state"
    assert "not started" in error_of(response)["message"]
    _db.session.expire_all()
    assert env.booking.status == BookingStatus.APPROVED
    assert _audits("booking.no_show") == []
    freeze(T0)  # from the start on, staff may
    assert client.post(url, json={}, headers=bearer(env.staff)).status_code == 200


def test_no_show_after_the_end_does_not_call_the_waitlist(
    env: SimpleNamespace, freed: list[int]
) -> None:
    freeze(END + MIN)
    assert booking_service.mark_no_show(env.booking, env.staff) is True
    assert freed == []


# -- the API ------------------------------------------------------------------------------


def test_api_check_in(client: Any, env: SimpleNamespace) -> None:
    url = f"/api/v1/bookings/{env.booking.id}/check-in"
    freeze(T0 - 20 * MIN)
    early = client.post(url, headers=bearer(env.sme))
    assert early.status_code == 422
    assert error_of(early)["rule"] == "checkin_window"
    assert "08:45" in error_of(early)["message"]
    assert client.post(url, headers=bearer(env.other_sme)).status_code == 404

    freeze(T0 - 5 * MIN)
    response = client.post(url, headers=bearer(env.sme))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checked_in_at"] == "2030-01-07T08:55:00+08:00"
    again = client.post(url, headers=bearer(env.staff))
    assert again.status_code == 409 and error_of(again)["code"] == "invalid_state"
    listed = client.get(f"/api/v1/bookings/{env.booking.id}", headers=bearer(env.sme))
    assert listed.get_json()["checked_in_at"] == "2030-01-07T08:55:00+08:00"


def test_api_booking_json_without_check_in(client: Any, env: SimpleNamespace) -> None:
    response = client.get(f"/api/v1/bookings/{env.booking.id}", headers=bearer(env.sme))
    assert response.get_json()["checked_in_at"] is None


def test_api_resource_rules_show_check_in(client: Any, env: SimpleNamespace) -> None:
    rules = client.get(f"/api/v1/resources/{env.inst.id}").get_json()["rules"]
    assert (
        rules["checkin_required"],
        rules["checkin_opens_minutes"],
        rules["checkin_release_minutes"],
    ) == (True, 15, 15)
    default = client.get(f"/api/v1/resources/{factories.make_lab().id}").get_json()["rules"]
    assert default["checkin_required"] is False


USAGE = {
    "checked_out_at": "2030-01-07T10:50:00+08:00",
    "service_type": "calibration",
    "samples_count": 1,
    "problem_solved": True,
}


def test_usage_defaults_to_the_check_in_time(client: Any, env: SimpleNamespace) -> None:
    url = f"/api/v1/bookings/{env.booking.id}/usage"
    freeze(T0 + 10 * MIN)
    missing = client.post(url, json=USAGE, headers=bearer(env.staff))
    assert missing.status_code == 422 and error_of(missing)["field"] == "checked_in_at"
    checkin.check_in(env.booking, env.sme)
    _db.session.commit()
    freeze(END)  # the check-out time (10:50) must not lie in the future
    response = client.post(url, json=USAGE, headers=bearer(env.staff))
    assert response.status_code == 200, response.get_json()
    usage = _db.session.scalar(select(UsageRecord).where(UsageRecord.booking_id == env.booking.id))
    assert usage is not None and usage.checked_in_at == T0 + 10 * MIN


def test_usage_form_defaults_to_the_check_in_time(
    client: Any, login: Any, env: SimpleNamespace
) -> None:
    freeze(T0 + 10 * MIN)
    checkin.check_in(env.booking, env.sme)
    _db.session.commit()
    login(env.staff)
    page = client.get(f"/manage/bookings/{env.booking.id}/usage").get_data(as_text=True)
    assert 'value="2030-01-07T09:10"' in page


# -- the pages ----------------------------------------------------------------------------


def test_kiosk_lists_the_company_bookings_and_checks_in(
    client: Any, login: Any, env: SimpleNamespace
) -> None:
    other = factories.make_booking(
        resource=env.inst, start=END, status=BookingStatus.APPROVED
    )  # another company's, later today
    _db.session.commit()
    freeze(T0 - 10 * MIN)
    login(env.sme)
    url = f"/resources/{env.inst.id}/check-in"
    page = client.get(url)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f"#{env.booking.id}" in text and f"#{other.id}" not in text
    assert f'action="/bookings/{env.booking.id}/check-in"' in text

    response = client.post(f"/bookings/{env.booking.id}/check-in", data={"back": "kiosk"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(url)
    _db.session.expire_all()
    assert env.booking.checked_in_at == T0 - 10 * MIN
    text = client.get(url).get_data(as_text=True)
    assert "Checked in at 08:50" in text


def test_kiosk_before_the_window_says_when_it_opens(
    client: Any, login: Any, env: SimpleNamespace
) -> None:
    freeze(T0 - 60 * MIN)
    login(env.sme)
    text = client.get(f"/resources/{env.inst.id}/check-in").get_data(as_text=True)
    assert "Check-in opens at 08:45." in text
    assert f'action="/bookings/{env.booking.id}/check-in"' not in text
    response = client.post(f"/bookings/{env.booking.id}/check-in", data={"back": "kiosk"})
    assert response.status_code == 302  # refused, with the reason flashed
    _db.session.expire_all()
    assert env.booking.checked_in_at is None


def test_kiosk_in_chinese(client: Any, login: Any, env: SimpleNamespace) -> None:
    env.sme.locale = "zh_CN"
    _db.session.commit()
    freeze(T0 - 5 * MIN)
    login(env.sme)
    text = client.get(f"/resources/{env.inst.id}/check-in").get_data(as_text=True)
    assert "签到" in text
    assert "Check in" not in text


def test_kiosk_staff_see_all_of_today(client: Any, login: Any, env: SimpleNamespace) -> None:
    other = factories.make_booking(resource=env.inst, start=END, status=BookingStatus.APPROVED)
    tomorrow = factories.make_booking(
        resource=env.inst, start=T0 + dt.timedelta(days=1), status=BookingStatus.APPROVED
    )
    _db.session.commit()
    freeze(T0)
    login(env.staff)
    text = client.get(f"/resources/{env.inst.id}/check-in").get_data(as_text=True)
    assert f"#{env.booking.id}" in text and f"#{other.id}" in text
    assert f"#{tomorrow.id}" not in text
    assert other.company.name in text


def test_kiosk_shows_nothing_to_other_tenants(
    client: Any, login: Any, env: SimpleNamespace
) -> None:
    freeze(T0)
    for who in (env.other_sme, env.other_staff):
        login(who)
        text = client.get(f"/resources/{env.inst.id}/check-in").get_data(as_text=True)
        assert f"#{env.booking.id}" not in text
        client.post("/logout")
    login(env.other_sme)
    assert client.post(f"/bookings/{env.booking.id}/check-in").status_code == 404


def test_kiosk_asks_anonymous_to_sign_in(client: Any, env: SimpleNamespace) -> None:
    response = client.get(f"/resources/{env.inst.id}/check-in")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_staff_booking_page_no_show_button(client: Any, login: Any, env: SimpleNamespace) -> None:
    freeze(T0 - 30 * MIN)
    login(env.staff)
    text = client.get(f"/bookings/{env.booking.id}").get_data(as_text=True)
    assert f"/bookings/{env.booking.id}/no-show" not in text  # not started yet
    freeze(T0 + 20 * MIN)
    text = client.get(f"/bookings/{env.booking.id}").get_data(as_text=True)
    assert f'action="/bookings/{env.booking.id}/no-show"' in text
    response = client.post(f"/bookings/{env.booking.id}/no-show")
    assert response.status_code == 302
    _db.session.expire_all()
    assert env.booking.status == BookingStatus.NO_SHOW
    [entry] = _audits("booking.no_show")
    assert entry.actor_id == env.staff.id


def test_sme_may_not_mark_no_show_on_the_page(
    client: Any, login: Any, env: SimpleNamespace
) -> None:
    freeze(T0 + 20 * MIN)
    login(env.sme)
    assert "/no-show" not in client.get(f"/bookings/{env.booking.id}").get_data(as_text=True)
    assert client.post(f"/bookings/{env.booking.id}/no-show").status_code == 403
    _db.session.expire_all()
    assert env.booking.status == BookingStatus.APPROVED


def test_booking_page_check_in_button(client: Any, login: Any, env: SimpleNamespace) -> None:
    freeze(T0 - 5 * MIN)
    login(env.sme)
    text = client.get(f"/bookings/{env.booking.id}").get_data(as_text=True)
    assert f'action="/bookings/{env.booking.id}/check-in"' in text
    response = client.post(f"/bookings/{env.booking.id}/check-in")
    assert response.headers["Location"].endswith(f"/bookings/{env.booking.id}")
    text = client.get(f"/bookings/{env.booking.id}").get_data(as_text=True)
    assert "Checked in at 2030-01-07 08:55" in text


def test_qr_code_page(client: Any, login: Any, env: SimpleNamespace, app: Flask) -> None:
    login(env.staff)
    page = client.get(f"/manage/resources/{env.inst.id}/check-in-code")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    base = str(app.config["PUBLIC_BASE_URL"]).rstrip("/")
    assert f"{base}/resources/{env.inst.id}/check-in" in text
    assert "<svg" in text and "qr-code" in text
    assert "/check-in-code" in client.get("/manage/resources").get_data(as_text=True)
    client.post("/logout")
    login(env.other_staff)
    assert client.get(f"/manage/resources/{env.inst.id}/check-in-code").status_code == 404


def test_qr_code_svg_escapes_its_title(app: Flask) -> None:
    """The SVG is inserted as markup: the address in its title must come out escaped."""
    from labshare.web.bookings.checkin import qr_svg

    svg = str(qr_svg('https://x.example/"><script>alert(1)</script>'))
    assert svg.startswith("<svg") and "<script>" not in svg
    assert "&lt;script&gt;" in svg


def test_rules_page_saves_the_check_in_rules(client: Any, login: Any, env: SimpleNamespace) -> None:
    login(env.staff)
    lab = env.inst.lab
    form = {
        "slot_minutes": "30",
        "min_minutes": "30",
        "max_minutes": "480",
        "lead_time_hours": "24",
        "horizon_days": "90",
        "max_active_per_company": "5",
        "cancel_deadline_hours": "24",
        "waitlist_offer_minutes": "120",
        "buffer_minutes": "0",
        "late_cancel_hours": "0",
        "checkin_required": "y",
        "checkin_opens_minutes": "30",
        "checkin_release_minutes": "20",
    }
    response = client.post(f"/manage/resources/{lab.id}/rules", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    row = _db.session.scalar(select(BookingRules).where(BookingRules.resource_id == lab.id))
    assert (row.checkin_required, row.checkin_opens_minutes, row.checkin_release_minutes) == (
        True,
        30,
        20,
    )
    bad = client.post(
        f"/manage/resources/{lab.id}/rules", data=form | {"checkin_release_minutes": "0"}
    )
    assert bad.status_code == 422
    assert _db.session.scalar(select(func.count(BookingRules.id))) == 2
