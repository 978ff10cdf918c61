"""The booking write path stays lean: a creation over the API sends at most eight
SQL statements, whatever the rules (quotas, qualification, buffer, no-show
threshold, a lab of several places), and none of them is a lazy load; the outbox
rows it queues are event rows for the booker and the institute's staff."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from labshare.booking.policies import quotas
from labshare.extensions import db as _db
from labshare.models import (
    DEFAULT_RULES,
    Booking,
    BookingStatus,
    Notification,
    Qualification,
    Role,
)
from labshare.timeutil import set_clock
from tests.helpers import END, NOW, START, bearer, listening, sent_statements

MAX_STATEMENTS = 8

#: What the path may send: the write lock, the token, the resource, its policy,
#: what is around the slot, the quota lock, and the three inserts (on PostgreSQL
#: one statement: the booking's INSERT in a WITH, the audit row's and the events'
#: in the same statement).
EXPECTED = (
    "BEGIN IMMEDIATE",
    "SELECT api_token.",
    "SELECT resource.",
    "SELECT own_rules.resource_id, lab_rules.",
    "SELECT booking_quota.",  # PostgreSQL: the quotas that apply, locked
    "SELECT 0, booking.start_at",
    "INSERT INTO booking ",
    "INSERT INTO audit_log ",
    "INSERT INTO notification ",
    "WITH new_booking AS (INSERT INTO booking ",
)


def _env(db: Any, make_instrument: Any, make_user: Any, **rules: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    inst = make_instrument(rules={**DEFAULT_RULES, **rules} if rules else None)
    sme = make_user(Role.SME, locale="zh_CN")
    staff = [make_user(Role.STAFF, institute=inst.institute) for _ in range(2)]
    db.session.commit()
    return SimpleNamespace(
        inst=inst, sme=sme, staff=staff, sme_id=sme.id, staff_ids=[s.id for s in staff]
    )


def _create(client: Any, resource_id: int, user: Any, **payload: Any) -> tuple[Any, list[str]]:
    """``user``: a user, or the headers of one (a user is detached after a call)."""
    body = {"resource_id": resource_id, "start": START, "end": END, "purpose": "p", **payload}
    headers = user if isinstance(user, dict) else bearer(user)
    _db.session.remove()  # a request starts with nothing loaded
    with sent_statements() as sent:
        response = client.post("/api/v1/bookings", json=body, headers=headers)
    return response, sent


def _lean(sent: list[str]) -> None:
    assert len(sent) <= MAX_STATEMENTS, "\n".join(sent)
    for statement in sent:
        assert statement.startswith(EXPECTED), statement  # nothing else: no lazy load


def test_pending_creation_is_lean_and_queues_events(client: Any, db: Any) -> None:
    from tests.factories import make_instrument, make_user

    env = _env(db, make_instrument, make_user)
    response, sent = _create(client, env.inst.id, env.sme)
    assert response.status_code == 201, response.get_json()
    _lean(sent)
    booking = db.session.get(Booking, response.get_json()["id"])
    assert booking.status == BookingStatus.PENDING
    rows = db.session.scalars(
        select(Notification).where(Notification.booking_id == booking.id).order_by(Notification.id)
    ).all()
    assert sorted((r.user_id, r.kind, r.locale) for r in rows) == sorted(
        [(env.sme_id, "booking_received", "zh_CN")]
        + [(s, "booking_requested", "en") for s in env.staff_ids]
    )
    assert all(r.stored_body_text is None for r in rows)  # rendered at delivery
    assert {r.dedupe_key for r in rows} == {
        f"booking:{booking.id}:received:{env.sme_id}",
        *(f"booking:{booking.id}:requested:{s}" for s in env.staff_ids),
    }
    mine = next(r for r in rows if r.user_id == env.sme_id)
    assert str(booking.id) in mine.subject and "Booking request" not in mine.subject  # zh_CN


@pytest.mark.parametrize(
    "rules",
    [
        {"requires_approval": False},
        {"requires_approval": False, "no_show_approval_threshold": 1},
        {"buffer_minutes": 30},
    ],
)
def test_every_rule_set_stays_lean(client: Any, db: Any, rules: dict[str, Any]) -> None:
    from tests.factories import make_instrument, make_user

    env = _env(db, make_instrument, make_user, **rules)
    response, sent = _create(client, env.inst.id, env.sme)
    assert response.status_code == 201, response.get_json()
    _lean(sent)
    expected = "pending" if rules.get("requires_approval", True) else "approved"
    assert response.get_json()["status"] == expected


def test_quotas_and_qualification_stay_lean(client: Any, db: Any) -> None:
    from tests.factories import make_instrument, make_user

    set_clock(lambda: NOW)
    inst = make_instrument(requires_qualification=True)
    sme = make_user(Role.SME)
    db.session.add(Qualification(user_id=sme.id, resource_id=inst.id))
    env = SimpleNamespace(inst=inst, sme=sme)
    institute_id = inst.institute_id
    quotas.create_quota(None, institute_id, env.inst.id, period="day", max_bookings=3)
    quotas.create_quota(None, institute_id, env.inst.lab_id, period="week", max_hours="20")
    quotas.create_quota(None, institute_id, None, period="month", max_bookings=30)
    db.session.commit()
    response, sent = _create(client, env.inst.id, env.sme)
    assert response.status_code == 201, response.get_json()
    _lean(sent)


@contextlib.contextmanager
def _rendered_again() -> Iterator[list[str]]:
    """The statements sent within whose SQL SQLAlchemy renders again per execution
    (an "expanding" or literal-execute parameter): a new text each time, which the
    driver looks up again."""
    found: list[str] = []

    def listener(_c: Any, _cur: Any, statement: str, _p: Any, context: Any, _m: Any) -> None:
        compiled = getattr(context, "compiled", None)
        if compiled is not None and (
            compiled.post_compile_params or compiled.literal_execute_params
        ):
            found.append(" ".join(statement.split())[:120])

    with listening(listener):
        yield found


@pytest.mark.parametrize("with_quotas", [False, True])
def test_no_statement_is_rendered_again_per_booking(
    client: Any, db: Any, with_quotas: bool
) -> None:
    from tests.factories import make_instrument, make_user

    env = _env(db, make_instrument, make_user)
    if with_quotas:
        institute_id = env.inst.institute_id
        quotas.create_quota(None, institute_id, env.inst.id, period="day", max_bookings=3)
        quotas.create_quota(
            None, institute_id, None, period="month", max_bookings=30, count_completed=True
        )
        db.session.commit()
    with _rendered_again() as again:
        response, _sent = _create(client, env.inst.id, env.sme)
    assert response.status_code == 201, response.get_json()
    assert again == []


@pytest.mark.parametrize("languages", [["en"], ["en", "zh_CN", "fr"], ["zh_CN", "en"]])
def test_any_number_of_offered_languages(
    app: Any, client: Any, db: Any, monkeypatch: pytest.MonkeyPatch, languages: list[str]
) -> None:
    """The languages are bound one by one, the statement kept per their number (a
    guard of that cache): lists of several lengths in one process each give every
    recipient its own language or the first offered."""
    from tests.factories import make_instrument, make_user

    monkeypatch.setitem(app.config, "LANGUAGES", languages)
    env = _env(db, make_instrument, make_user)
    env.sme.locale = "fr"
    env.staff[0].locale = "zh_CN"
    env.staff[1].locale = "xx"
    db.session.commit()
    response, sent = _create(client, env.inst.id, env.sme)
    assert response.status_code == 201, response.get_json()
    _lean(sent)
    rows = db.session.scalars(
        select(Notification).where(Notification.booking_id == response.get_json()["id"])
    ).all()
    wanted = {env.sme_id: "fr", env.staff_ids[0]: "zh_CN", env.staff_ids[1]: "xx"}
    assert {r.user_id: r.locale for r in rows} == {
        user: (locale if locale in languages else languages[0]) for user, locale in wanted.items()
    }


def test_a_refusal_is_as_before(client: Any, db: Any) -> None:
    from tests.factories import make_instrument, make_user

    env = _env(db, make_instrument, make_user)
    quotas.create_quota(None, env.inst.institute_id, env.inst.id, period="day", max_bookings=1)
    db.session.commit()
    inst_id = env.inst.id
    mine = bearer(env.sme)
    other = bearer(make_user(Role.SME))
    db.session.commit()
    first, _ = _create(client, inst_id, mine)
    assert first.status_code == 201
    later = {
        "start": (dt.datetime.fromisoformat(START) + dt.timedelta(hours=3)).isoformat(),
        "end": (dt.datetime.fromisoformat(END) + dt.timedelta(hours=3)).isoformat(),
    }
    second, sent = _create(client, inst_id, mine, **later)
    assert second.status_code == 422
    assert second.get_json()["error"]["rule"] == "quota_bookings"
    _lean(sent)
    taken, _ = _create(client, inst_id, other)
    assert taken.status_code == 409
    assert taken.get_json()["error"]["waitlist_available"] is True
    assert int(db.session.scalar(select(func.count(Booking.id))) or 0) == 1


def test_a_lab_of_several_places_stays_lean(client: Any, db: Any) -> None:
    from tests.factories import make_lab, make_user

    set_clock(lambda: NOW)
    lab = make_lab(capacity=2)
    users = [bearer(make_user(Role.SME)) for _ in range(3)]
    db.session.commit()
    lab_id = lab.id
    codes = []
    for user in users:
        response, sent = _create(client, lab_id, user)
        codes.append(response.status_code)
        _lean(sent)
    assert codes == [201, 201, 409]


def test_an_unknown_resource_is_404(client: Any, db: Any) -> None:
    from tests.factories import make_user

    sme = make_user(Role.SME)
    db.session.commit()
    response, _ = _create(client, 999_999, sme)
    assert response.status_code == 404


@pytest.mark.postgresql_only
@pytest.mark.parametrize("approval", [True, False])
def test_postgresql_writes_booking_audit_and_events_in_one_statement(
    client: Any, db: Any, approval: bool
) -> None:
    from labshare.models import AuditLog
    from tests.factories import make_instrument, make_user

    env = _env(db, make_instrument, make_user, requires_approval=approval)
    institute_id = env.inst.institute_id
    response, sent = _create(client, env.inst.id, env.sme)
    assert response.status_code == 201, response.get_json()
    _lean(sent)
    writes = [s for s in sent if "INSERT INTO" in s]
    assert len(writes) == 1 and writes[0].startswith("WITH new_booking AS (INSERT INTO booking ")
    booking_id = response.get_json()["id"]
    entry = db.session.scalars(select(AuditLog).where(AuditLog.object_id == booking_id)).one()
    assert (entry.action, entry.object_type, entry.actor_id, entry.institute_id) == (
        "booking.create",
        "booking",
        env.sme_id,
        institute_id,
    )
    assert entry.to_state == ("pending" if approval else "approved")
    kinds = sorted(
        (r.user_id, r.kind, r.dedupe_key)
        for r in db.session.scalars(
            select(Notification).where(Notification.booking_id == booking_id)
        )
    )
    if approval:
        assert kinds == sorted(
            [(env.sme_id, "booking_received", f"booking:{booking_id}:received:{env.sme_id}")]
            + [
                (s, "booking_requested", f"booking:{booking_id}:requested:{s}")
                for s in env.staff_ids
            ]
        )
    else:
        assert kinds == [
            (env.sme_id, "booking_confirmed", f"booking:{booking_id}:confirmed:{env.sme_id}")
        ]


@pytest.mark.postgresql_only
def test_an_overlap_the_constraint_refuses_writes_nothing(
    client: Any, db: Any, monkeypatch: Any
) -> None:
    """Were the check ever skipped, the exclusion constraint refuses the one
    statement whole: a 409 that says whether the waitlist can be joined, and no
    booking, audit row or event of the refused one."""
    from labshare.booking import checks
    from labshare.models import AuditLog
    from tests.factories import make_instrument, make_user

    env = _env(db, make_instrument, make_user)
    other = bearer(make_user(Role.SME))
    db.session.commit()
    inst_id = env.inst.id
    first, _ = _create(client, inst_id, env.sme)
    assert first.status_code == 201
    monkeypatch.setattr(checks, "_check_free", lambda *args, **kw: None)
    second, _ = _create(client, inst_id, other)
    assert second.status_code == 409, second.get_json()
    assert second.get_json()["error"]["waitlist_available"] is True
    assert int(db.session.scalar(select(func.count(Booking.id))) or 0) == 1
    assert int(db.session.scalar(select(func.count(AuditLog.id))) or 0) == 1
    booking_ids = set(db.session.scalars(select(Notification.booking_id)))
    assert booking_ids == {first.get_json()["id"]}
