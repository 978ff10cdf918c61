"""Bookings of several resources together (services/groups.py): a lab and some
of its instruments, or a "booked together" bundle, all or nothing; group
transitions; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import functools
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from labshare.booking import bookings
from labshare.booking.policies import groups
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
    BookingGroup,
    BookingStatus,
    Notification,
    ResourceStatus,
    Role,
)
from labshare.timeutil import set_clock
from tests import raceutil
from tests.factories import OPEN_RULES as RULES
from tests.helpers import count_rows

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
END = START + dt.timedelta(hours=2)


@pytest.fixture
def env(db: Any, make_lab: Any, make_instrument: Any, make_user: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    lab = make_lab(capacity=2, rules=dict(RULES))
    a = make_instrument(lab=lab)
    b = make_instrument(lab=lab)
    c = make_instrument(lab=lab)
    other = make_instrument()  # another lab
    sme = make_user(Role.SME)
    colleague = make_user(Role.SME, company=sme.company)
    stranger = make_user(Role.SME)
    staff = make_user(Role.STAFF, institute=lab.institute)
    other_staff = make_user(Role.STAFF)
    db.session.commit()
    return SimpleNamespace(
        lab=lab,
        a=a,
        b=b,
        c=c,
        other=other,
        sme=sme,
        colleague=colleague,
        stranger=stranger,
        staff=staff,
        other_staff=other_staff,
    )


def group_of(env: SimpleNamespace, *instruments: Any, user: Any = None) -> BookingGroup:
    return groups.create_group(
        env.lab,
        list(instruments),
        user or env.sme,
        START,
        END,
        purpose="联合校准",
        samples="2 台变送器",
    )


def test_group_books_the_lab_and_its_instruments(db: Any, env: SimpleNamespace) -> None:
    group = group_of(env, env.a, env.b)
    db.session.commit()
    members = groups.members_of(group.id)
    assert [m.resource_id for m in members] == sorted([env.lab.id, env.a.id, env.b.id])
    assert {m.status for m in members} == {BookingStatus.APPROVED}
    assert all(m.start_at == START and m.end_at == END for m in members)
    assert all(m.purpose == "联合校准" and m.samples == "2 台变送器" for m in members)
    assert group.company_id == env.sme.company_id and group.user_id == env.sme.id
    assert group.lab_id == env.lab.id and group.institute_id == env.lab.institute_id
    actions = db.session.scalars(select(AuditLog.action)).all()
    assert actions.count("booking.create") == 3 and actions.count("booking_group.create") == 1


def test_one_instrument_busy_writes_nothing(db: Any, env: SimpleNamespace) -> None:
    bookings.create_booking(env.b, env.stranger, START, END, purpose="先到")
    db.session.commit()
    before = (
        count_rows(Booking),
        count_rows(BookingGroup),
        count_rows(AuditLog),
        count_rows(Notification),
    )
    with pytest.raises(SlotTaken) as caught:
        group_of(env, env.a, env.b)
    assert env.b.name in str(caught.value.message)
    assert caught.value.details["resource_id"] == env.b.id
    # The service rolled its savepoint back: even a caller that commits writes nothing.
    db.session.commit()
    after = (
        count_rows(Booking),
        count_rows(BookingGroup),
        count_rows(AuditLog),
        count_rows(Notification),
    )
    assert after == before


def test_lab_at_capacity_writes_nothing(db: Any, env: SimpleNamespace) -> None:
    for _ in range(2):  # capacity 2
        bookings.create_booking(env.lab, env.stranger, START, END, purpose="满")
    db.session.commit()
    before = count_rows(Booking)
    with pytest.raises(SlotTaken) as caught:
        group_of(env, env.a)
    assert env.lab.name in str(caught.value.message)
    db.session.rollback()
    assert count_rows(Booking) == before and count_rows(BookingGroup) == 0


def test_a_rule_of_one_member_names_it_and_writes_nothing(db: Any, env: SimpleNamespace) -> None:
    env.b.status = ResourceStatus.MAINTENANCE
    db.session.commit()
    with pytest.raises(RuleViolation) as caught:
        group_of(env, env.a, env.b)
    assert caught.value.rule == "instrument_unavailable"
    assert env.b.name in str(caught.value.message)
    db.session.rollback()
    assert count_rows(Booking) == 0 and count_rows(BookingGroup) == 0


def test_instrument_of_another_lab_is_refused(db: Any, env: SimpleNamespace) -> None:
    with pytest.raises(ValidationFailed) as caught:
        group_of(env, env.a, env.other)
    assert caught.value.field == "instrument_ids"
    assert env.other.name in str(caught.value.message)
    assert count_rows(Booking) == 0


def test_duplicates_lab_kind_and_size_are_refused(db: Any, env: SimpleNamespace) -> None:
    with pytest.raises(ValidationFailed) as caught:
        group_of(env, env.a, env.a)
    assert caught.value.field == "instrument_ids"
    with pytest.raises(ValidationFailed) as caught:
        group_of(env)  # the lab alone is not a group
    assert caught.value.field == "instrument_ids"
    with pytest.raises(ValidationFailed) as caught:
        groups.create_group(env.a, [env.b], env.sme, START, END, purpose="x")
    assert caught.value.field == "lab_id"
    with pytest.raises(ValidationFailed) as caught:
        groups.create_group(env.lab, [env.lab], env.sme, START, END, purpose="x")
    assert caught.value.field == "instrument_ids"
    with pytest.raises(ValidationFailed) as caught:
        group_of(env, *[env.a] * (groups.MAX_INSTRUMENTS + 1))
    assert caught.value.field == "instrument_ids"
    with pytest.raises(NotAllowed):
        group_of(env, env.a, user=env.staff)
    assert count_rows(Booking) == 0


def test_one_member_needing_approval_makes_all_pending(
    db: Any, env: SimpleNamespace, make_instrument: Any
) -> None:
    strict = make_instrument(lab=env.lab, rules={**RULES, "requires_approval": True})
    db.session.commit()
    group = group_of(env, env.a, strict)
    db.session.commit()
    members = groups.members_of(group.id)
    assert len(members) == 3
    assert {m.status for m in members} == {BookingStatus.PENDING}
    assert all(m.decided_at is None for m in members)
    # Only the pending path's notices were queued: nobody got a "confirmed" mail.
    kinds = db.session.scalars(select(Notification.kind)).all()
    assert not any("confirmed" in k for k in kinds), kinds
    # A single booking keeps its own rules.
    single = bookings.create_booking(env.a, env.sme, END, END + dt.timedelta(hours=1), purpose="x")
    assert single.status == BookingStatus.APPROVED and single.group_id is None


def test_bundle_books_all_its_instruments(db: Any, env: SimpleNamespace) -> None:
    env.a.bundle = "XRD"
    env.b.bundle = "XRD"
    env.c.bundle = "other"
    db.session.commit()
    booking = bookings.create_booking(env.a, env.sme, START, END, purpose="捆绑")
    db.session.commit()
    assert booking.resource_id == env.a.id and booking.group_id is not None
    members = groups.members_of(booking.group_id)
    assert [m.resource_id for m in members] == [env.a.id, env.b.id]  # not the lab, not c


def test_bundle_is_all_or_nothing(db: Any, env: SimpleNamespace) -> None:
    env.a.bundle = env.b.bundle = "XRD"
    db.session.commit()
    bookings.create_booking(env.b, env.stranger, START, END, purpose="先到")
    db.session.commit()
    assert count_rows(Booking) == 2  # b's bundle took a too
    with pytest.raises(SlotTaken):
        bookings.create_booking(env.a, env.sme, START, END, purpose="捆绑")
    db.session.rollback()
    assert count_rows(Booking) == 2


def test_bundle_of_one_or_retired_siblings_is_a_single_booking(
    db: Any, env: SimpleNamespace
) -> None:
    env.a.bundle = env.b.bundle = "XRD"
    env.b.status = ResourceStatus.RETIRED
    db.session.commit()
    booking = bookings.create_booking(env.a, env.sme, START, END, purpose="单")
    assert booking.group_id is None and count_rows(Booking) == 1


def test_group_expands_bundles_of_its_instruments(db: Any, env: SimpleNamespace) -> None:
    env.a.bundle = env.c.bundle = "XRD"
    db.session.commit()
    group = group_of(env, env.a)
    assert {m.resource_id for m in groups.members_of(group.id)} == {
        env.lab.id,
        env.a.id,
        env.c.id,
    }


def _pending_group(db: Any, env: SimpleNamespace) -> list[Booking]:
    env.lab.rules.requires_approval = True
    db.session.commit()
    group = group_of(env, env.a, env.b)
    db.session.commit()
    members = groups.members_of(group.id)
    assert {m.status for m in members} == {BookingStatus.PENDING}
    return members


def test_approving_one_member_approves_the_group(db: Any, env: SimpleNamespace) -> None:
    members = _pending_group(db, env)
    result = bookings.approve_booking(members[1], env.staff)
    db.session.commit()
    assert result is members[1] and result.status == BookingStatus.APPROVED
    assert {m.status for m in groups.members_of(members[0].group_id)} == {BookingStatus.APPROVED}
    audited = db.session.scalars(
        select(AuditLog.object_id).where(AuditLog.action == "booking.approve")
    ).all()
    assert sorted(audited) == sorted(m.id for m in members)


def test_group_approval_is_all_or_nothing(db: Any, env: SimpleNamespace) -> None:
    members = _pending_group(db, env)
    env.b.status = ResourceStatus.MAINTENANCE  # approval re-checks every member
    db.session.commit()
    with pytest.raises(RuleViolation) as caught:
        bookings.approve_booking(members[0], env.staff)
    assert env.b.name in str(caught.value.message)
    assert caught.value.rule == "instrument_unavailable"
    db.session.rollback()
    assert {m.status for m in groups.members_of(members[0].group_id)} == {BookingStatus.PENDING}
    assert count_rows(AuditLog) == db.session.scalar(
        select(func.count(AuditLog.id)).where(AuditLog.action != "booking.approve")
    )


def test_rejecting_and_cancelling_move_the_group(db: Any, env: SimpleNamespace) -> None:
    members = _pending_group(db, env)
    bookings.reject_booking(members[2], env.staff, "设备检修")
    db.session.commit()
    rejected = groups.members_of(members[0].group_id)
    assert {m.status for m in rejected} == {BookingStatus.REJECTED}
    assert {m.decision_reason for m in rejected} == {"设备检修"}
    with pytest.raises(InvalidTransition):
        bookings.approve_booking(members[0], env.staff)
    db.session.rollback()

    group = group_of(env, env.a, env.b)  # the lab still needs approval: pending
    db.session.commit()
    member = groups.members_of(group.id)[0]
    bookings.cancel_booking(member, env.colleague, "计划变更")
    db.session.commit()
    assert {m.status for m in groups.members_of(group.id)} == {BookingStatus.CANCELLED}
    assert count_rows(AuditLog) >= 3


def test_cancel_skips_members_that_no_longer_hold_time(db: Any, env: SimpleNamespace) -> None:
    group = group_of(env, env.a, env.b)
    db.session.commit()
    lab_member, first, second = groups.members_of(group.id)
    first.status = BookingStatus.NO_SHOW  # e.g. released by the check-in job
    db.session.commit()
    bookings.cancel_booking(second, env.sme)
    db.session.commit()
    statuses = {m.resource_id: m.status for m in groups.members_of(group.id)}
    assert statuses[first.resource_id] == BookingStatus.NO_SHOW
    assert statuses[lab_member.resource_id] == BookingStatus.CANCELLED
    assert statuses[second.resource_id] == BookingStatus.CANCELLED


def test_group_transitions_check_permissions(db: Any, env: SimpleNamespace) -> None:
    members = _pending_group(db, env)
    with pytest.raises(NotFound):
        bookings.approve_booking(members[0], env.other_staff)
    db.session.rollback()
    with pytest.raises(NotAllowed):
        bookings.approve_booking(members[0], env.sme)
    db.session.rollback()
    with pytest.raises(NotFound):
        bookings.cancel_booking(members[0], env.stranger)
    db.session.rollback()
    assert {m.status for m in groups.members_of(members[0].group_id)} == {BookingStatus.PENDING}


def test_single_booking_transitions_are_unchanged(db: Any, env: SimpleNamespace) -> None:
    env.lab.rules.requires_approval = True
    db.session.commit()
    one = bookings.create_booking(env.a, env.sme, START, END, purpose="单")
    two = bookings.create_booking(env.b, env.sme, START, END, purpose="单")
    db.session.commit()
    bookings.approve_booking(one, env.staff)
    db.session.commit()
    assert one.status == BookingStatus.APPROVED and two.status == BookingStatus.PENDING


# -- the API ------------------------------------------------------------------------------

API_START = "2030-01-07T09:00:00+08:00"
API_END = "2030-01-07T11:00:00+08:00"


def _post_group(client: Any, env: SimpleNamespace, user: Any = None, **overrides: Any) -> Any:
    from tests.helpers import bearer

    payload: dict[str, Any] = {
        "lab_id": env.lab.id,
        "instrument_ids": [env.a.id, env.b.id],
        "start": API_START,
        "end": API_END,
        "purpose": "联合校准",
    }
    payload.update(overrides)
    return client.post("/api/v1/booking-groups", json=payload, headers=bearer(user or env.sme))


def test_api_create_and_get_group(client: Any, db: Any, env: SimpleNamespace) -> None:
    from tests.helpers import bearer, check_schema

    response = _post_group(client, env)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    check_schema(client, "GroupOut", body)
    assert body["lab_id"] == env.lab.id and body["company_id"] == env.sme.company_id
    assert [b["resource_id"] for b in body["bookings"]] == sorted([env.lab.id, env.a.id, env.b.id])
    assert {b["group_id"] for b in body["bookings"]} == {body["id"]}
    assert {b["status"] for b in body["bookings"]} == {"approved"}

    got = client.get(f"/api/v1/booking-groups/{body['id']}", headers=bearer(env.colleague))
    assert got.status_code == 200 and got.get_json()["id"] == body["id"]
    assert (
        client.get(f"/api/v1/booking-groups/{body['id']}", headers=bearer(env.staff)).status_code
        == 200
    )
    # Other tenants: 404, as for single bookings.
    for outsider in (env.stranger, env.other_staff):
        hidden = client.get(f"/api/v1/booking-groups/{body['id']}", headers=bearer(outsider))
        assert hidden.status_code == 404
    assert client.get("/api/v1/booking-groups/999999", headers=bearer(env.sme)).status_code == 404
    member = body["bookings"][0]["id"]
    single = client.get(f"/api/v1/bookings/{member}", headers=bearer(env.sme)).get_json()
    assert single["group_id"] == body["id"]
    check_schema(client, "BookingOut", single)


def test_api_instrument_of_another_lab_is_422(client: Any, db: Any, env: SimpleNamespace) -> None:
    from tests.helpers import error_of

    response = _post_group(client, env, instrument_ids=[env.a.id, env.other.id])
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error" and error["field"] == "instrument_ids"
    assert count_rows(Booking) == 0


def test_api_refusals_write_nothing(client: Any, db: Any, env: SimpleNamespace) -> None:
    from tests.helpers import error_of

    bookings.create_booking(env.b, env.stranger, START, END, purpose="先到")
    db.session.commit()
    response = _post_group(client, env)
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict" and error["resource_id"] == env.b.id
    assert env.b.name in error["message"]
    assert count_rows(Booking) == 1 and count_rows(BookingGroup) == 0
    # Bad input: 422 naming the field, never a 500.
    for overrides, field in (
        ({"instrument_ids": []}, "instrument_ids"),
        ({"instrument_ids": [0]}, "instrument_ids"),
        ({"instrument_ids": [env.a.id, env.a.id]}, "instrument_ids"),
        ({"lab_id": env.a.id}, "lab_id"),
        ({"start": "2030-01-07T09:00:00"}, "start"),
    ):
        bad = _post_group(client, env, **overrides)
        assert bad.status_code == 422, (overrides, bad.get_json())
        assert error_of(bad).get("field", "").startswith(field), (overrides, bad.get_json())
    assert _post_group(client, env, instrument_ids=[2**31 - 1]).status_code == 404
    assert _post_group(client, env, user=env.staff).status_code == 403
    assert count_rows(Booking) == 1


def test_api_single_booking_of_a_bundle_books_the_bundle(
    client: Any, db: Any, env: SimpleNamespace
) -> None:
    from tests.helpers import bearer

    env.a.bundle = env.b.bundle = "XRD"
    db.session.commit()
    detail = client.get(f"/api/v1/resources/{env.a.id}").get_json()
    assert detail["bundle"] == {"name": "XRD", "instrument_ids": [env.a.id, env.b.id]}
    assert client.get(f"/api/v1/resources/{env.c.id}").get_json()["bundle"] is None
    response = client.post(
        "/api/v1/bookings",
        json={"resource_id": env.b.id, "start": API_START, "end": API_END, "purpose": "捆绑"},
        headers=bearer(env.sme),
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["resource_id"] == env.b.id and body["group_id"] is not None
    members = groups.members_of(body["group_id"])
    assert [m.resource_id for m in members] == [env.a.id, env.b.id]


def test_api_member_transitions_move_the_group(client: Any, db: Any, env: SimpleNamespace) -> None:
    from tests.helpers import bearer

    env.lab.rules.requires_approval = True
    db.session.commit()
    body = _post_group(client, env).get_json()
    ids = [b["id"] for b in body["bookings"]]
    assert (
        client.post(f"/api/v1/bookings/{ids[1]}/approve", headers=bearer(env.sme)).status_code
        == 403
    )
    response = client.post(f"/api/v1/bookings/{ids[1]}/approve", headers=bearer(env.staff))
    assert response.status_code == 200 and response.get_json()["status"] == "approved"
    group = client.get(f"/api/v1/booking-groups/{body['id']}", headers=bearer(env.sme)).get_json()
    assert {b["status"] for b in group["bookings"]} == {"approved"}
    again = client.post(f"/api/v1/bookings/{ids[0]}/approve", headers=bearer(env.staff))
    assert again.status_code == 409
    cancel = client.post(f"/api/v1/bookings/{ids[2]}/cancel", json={}, headers=bearer(env.sme))
    assert cancel.status_code == 200
    group = client.get(f"/api/v1/booking-groups/{body['id']}", headers=bearer(env.sme)).get_json()
    assert {b["status"] for b in group["bookings"]} == {"cancelled"}


# -- a race: a group and single bookings of its members ----------------------------------


def test_group_races_single_bookings_never_double_never_partial(
    app: Any, db: Any, make_lab: Any, make_instrument: Any, make_user: Any, cheap_passwords: None
) -> None:
    from flask import Flask

    from labshare.extensions import db as _db
    from labshare.models import Resource, User

    assert isinstance(app, Flask)
    set_clock(lambda: NOW)
    lab = make_lab(capacity=1, rules=dict(RULES))
    a = make_instrument(lab=lab)
    b = make_instrument(lab=lab)
    users = [make_user(Role.SME) for _ in range(9)]
    db.session.commit()
    lab_id, a_id, b_id = lab.id, a.id, b.id
    user_ids = [u.id for u in users]
    db.session.remove()

    rounds = 3
    for k in range(rounds):
        start = START + dt.timedelta(hours=3 * k)
        end = start + dt.timedelta(hours=2)
        # Two group requests and single requests of each member, all at once.
        plan = ["group", "group", a_id, b_id, lab_id, a_id, b_id, lab_id, a_id]

        def group_step(i: int, start: dt.datetime = start, end: dt.datetime = end) -> Any:
            user = _db.session.get(User, user_ids[i])
            the_lab = _db.session.get(Resource, lab_id)
            insts = [_db.session.get(Resource, a_id), _db.session.get(Resource, b_id)]
            return lambda: groups.create_group(the_lab, insts, user, start, end, purpose="race")

        steps = [
            functools.partial(group_step, i)
            if target == "group"
            else raceutil.booking_step(target, user_ids[i], start, end)
            for i, target in enumerate(plan)
        ]
        outcomes = raceutil.labels(raceutil.race(app, steps), "created", {SlotTaken: "taken"})
        assert [o for o in outcomes if o.startswith("error")] == [], outcomes
        with app.app_context():
            holding = {
                rid: int(
                    _db.session.scalar(
                        select(func.count(Booking.id)).where(
                            Booking.resource_id == rid,
                            Booking.start_at == start.astimezone(dt.UTC),
                            Booking.status.in_(["pending", "approved"]),
                        )
                    )
                    or 0
                )
                for rid in (lab_id, a_id, b_id)
            }
            assert holding == {lab_id: 1, a_id: 1, b_id: 1}, (holding, outcomes)  # never double
            sizes = [
                len(groups.members_of(g))
                for g in _db.session.scalars(select(BookingGroup.id)).all()
            ]
            assert all(size == 3 for size in sizes), sizes  # never partial
            groups_won = outcomes[:2].count("created")
            singles_won = outcomes[2:].count("created")
            assert groups_won <= 1
            assert (groups_won, singles_won) in ((1, 0), (0, 3)), outcomes
            _db.session.remove()


# -- the web pages ------------------------------------------------------------------------

FORM = {"start": "2030-01-07T09:00", "end": "2030-01-07T11:00", "purpose": "联合校准"}


def test_lab_booking_form_books_chosen_instruments_together(
    client: Any, login: Any, db: Any, env: SimpleNamespace
) -> None:
    login(env.sme)
    html = client.get(f"/resources/{env.lab.id}/book").get_data(as_text=True)
    assert 'name="instrument_ids"' in html and f'value="{env.a.id}"' in html
    assert f'value="{env.other.id}"' not in html
    # An instrument's own form offers no choice.
    assert 'name="instrument_ids"' not in client.get(f"/resources/{env.a.id}/book").get_data(
        as_text=True
    )
    response = client.post(
        f"/resources/{env.lab.id}/book",
        data={**FORM, "instrument_ids": [str(env.a.id), str(env.b.id)]},
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    group = db.session.scalars(select(BookingGroup)).one()
    members = groups.members_of(group.id)
    assert {m.resource_id for m in members} == {env.lab.id, env.a.id, env.b.id}
    lab_booking = next(m for m in members if m.resource_id == env.lab.id)
    assert response.headers["Location"].endswith(f"/bookings/{lab_booking.id}")
    detail = client.get(f"/bookings/{lab_booking.id}").get_data(as_text=True)
    assert "Booked together" in detail
    assert all(f"/bookings/{m.id}" in detail for m in members if m.id != lab_booking.id)


def test_lab_booking_form_refusals_write_nothing(
    client: Any, login: Any, db: Any, env: SimpleNamespace
) -> None:
    bookings.create_booking(env.b, env.stranger, START, END, purpose="先到")
    db.session.commit()
    login(env.sme)
    busy = client.post(
        f"/resources/{env.lab.id}/book",
        data={**FORM, "instrument_ids": [str(env.a.id), str(env.b.id)]},
    )
    assert busy.status_code == 409
    assert env.b.name in busy.get_data(as_text=True)
    for bad in ([str(env.other.id)], ["abc"], ["0"], ["99999999"]):
        response = client.post(
            f"/resources/{env.lab.id}/book", data={**FORM, "instrument_ids": bad}
        )
        assert response.status_code == 422, bad
    assert count_rows(Booking) == 1 and count_rows(BookingGroup) == 0


def test_web_booking_of_a_bundle_books_the_bundle(
    client: Any, login: Any, db: Any, env: SimpleNamespace
) -> None:
    env.a.bundle = env.b.bundle = "XRD"
    db.session.commit()
    page = client.get(f"/resources/{env.a.id}").get_data(as_text=True)
    assert "Booked together" in page and "XRD" in page and f"/resources/{env.b.id}" in page
    login(env.sme)
    response = client.post(f"/resources/{env.a.id}/book", data=FORM)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert {b.resource_id for b in db.session.scalars(select(Booking))} == {env.a.id, env.b.id}


def test_staff_approve_the_group_in_one_click(
    client: Any, login: Any, db: Any, env: SimpleNamespace
) -> None:
    members = _pending_group(db, env)
    login(env.staff)
    detail = client.get(f"/bookings/{members[1].id}").get_data(as_text=True)
    assert "Approve all 3 bookings" in detail
    response = client.post(f"/manage/bookings/{members[1].id}/approve")
    assert response.status_code == 302
    db.session.expire_all()
    assert {m.status for m in groups.members_of(members[0].group_id)} == {BookingStatus.APPROVED}
    # The SME sees the list, not the button.
    login(env.sme)
    assert "Approve all" not in client.get(f"/bookings/{members[1].id}").get_data(as_text=True)


def test_staff_set_the_bundle_on_the_instrument_form(
    client: Any, login: Any, db: Any, env: SimpleNamespace
) -> None:
    login(env.staff)
    page = client.get(f"/manage/instruments/{env.a.id}/edit").get_data(as_text=True)
    assert 'name="bundle"' in page
    data = {
        "lab_id": str(env.lab.id),
        "name": env.a.name,
        "field": str(env.a.field),
        "status": "available",
        "fee_per_hour": "150",
        "fee_waiver_percent": "50",
        "measurand": "pressure",
        "unit": "MPa",
        "range_min": "-0.1",
        "range_max": "10",
        "bundle": "  XRD  ",
    }
    response = client.post(f"/manage/instruments/{env.a.id}/edit", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    db.session.expire_all()
    assert env.a.bundle == "XRD"
    too_long = client.post(
        f"/manage/instruments/{env.a.id}/edit", data={**data, "bundle": "x" * 51}
    )
    assert too_long.status_code == 422
    client.post(f"/manage/instruments/{env.a.id}/edit", data={**data, "bundle": ""})
    db.session.expire_all()
    assert env.a.bundle is None


def test_dashboard_marks_group_requests(
    client: Any, login: Any, db: Any, env: SimpleNamespace
) -> None:
    members = _pending_group(db, env)
    login(env.staff)
    html = client.get("/manage").get_data(as_text=True)
    assert html.count("Booked together with other resources") == len(members)
