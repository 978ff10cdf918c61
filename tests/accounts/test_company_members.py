"""Companies and their members, over HTTP: a public credit code gives no access; a
new company reads but does not book until confirmed; invitations are single-use,
expiring, for one address; company administrators manage members; institute
administrators manage their institute's staff; every change is audited."""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from labshare.accounts.credit_code import make_credit_code
from labshare.extensions import db
from labshare.models import (
    AuditLog,
    Booking,
    BookingSeries,
    BookingStatus,
    Company,
    CompanyInvitation,
    CompanyStatus,
    Notification,
    Role,
    User,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.timeutil import set_clock, utcnow
from tests import factories
from tests.helpers import END, NOW, START, bearer, count_rows, error_of, served_openapi

NEW_PASSWORD = "a long enough passphrase 42"


@pytest.fixture
def world(app: Flask, db: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    inst = factories.make_instrument(rules=dict(factories.OPEN_RULES))
    company = factories.make_company()
    admin = factories.make_user(Role.SME, company=company, company_admin=True)
    booking = factories.make_booking(
        resource=inst,
        user=admin,
        start=dt.datetime(2030, 1, 8, 1, 0, tzinfo=dt.UTC),
        end=dt.datetime(2030, 1, 8, 3, 0, tzinfo=dt.UTC),
        status=BookingStatus.APPROVED,
    )
    series = BookingSeries(
        user_id=admin.id,
        company_id=company.id,
        resource_id=inst.id,
        institute_id=inst.institute_id,
        freq="daily",
        interval_n=1,
        count_n=1,
        start_at=booking.start_at,
        end_at=booking.end_at,
        timezone="Asia/Shanghai",
        purpose="series",
    )
    db.session.add(series)
    db.session.flush()
    booking.series_id = series.id
    entry = WaitlistEntry(
        resource_id=inst.id,
        company_id=company.id,
        user_id=admin.id,
        start_at=dt.datetime(2030, 1, 10, 1, 0, tzinfo=dt.UTC),
        end_at=dt.datetime(2030, 1, 10, 3, 0, tzinfo=dt.UTC),
        purpose="wait",
        status=WaitlistStatus.WAITING,
    )
    db.session.add(entry)
    staff = factories.make_user(Role.STAFF, institute=inst.institute)
    db.session.commit()
    return SimpleNamespace(
        inst=inst, company=company, admin=admin, booking=booking, series=series, entry=entry,
        staff=staff,
    )  # fmt: skip


def _register_form(code: str, email: str, **kw: str) -> dict[str, str]:
    form = {
        "company_name": "陌生人公司",
        "credit_code": code,
        "province": "江苏省",
        "size": "small",
        "name": "陌生人",
        "email": email,
        "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
        "locale": "en",
    }
    form.update(kw)
    return form


def _invite(app: Flask, admin: User, email: str) -> str:
    """Invite over the API; return the link's secret, read from the queued mail."""
    response = app.test_client().post(
        "/api/v1/company/invitations", json={"email": email}, headers=bearer(admin)
    )
    assert response.status_code == 201, response.get_json()
    assert "token" not in response.get_json()  # the link goes by mail only
    note = db.session.scalars(
        select(Notification)
        .where(Notification.to_email == email.lower())
        .order_by(Notification.id.desc())
    ).first()
    assert note is not None
    from labshare.messaging import mail

    text = mail.build_message(note, admin).get_body(("plain",)).get_content()
    found = re.search(r"/invitations/([A-Za-z0-9_\-]+)", text)
    assert found, text
    secret = found.group(1)
    # Neither the outbox nor the invitation row holds the secret (only a digest).
    assert secret not in note.body_text and secret not in (note.body_html or "")
    return secret


def _accept(app: Flask, secret: str, email: str, **kw: str) -> Any:
    data = {
        "email": email,
        "name": "受邀成员",
        "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
        "locale": "en",
    }
    data.update(kw)
    client = app.test_client()
    return client, client.post(f"/invitations/{secret}", data=data)


# -- the takeover -----------------------------------------------------------------------------


def test_a_stranger_with_the_code_gets_no_access(app: Flask, world: SimpleNamespace) -> None:
    client = app.test_client()
    users_before = count_rows(User)
    response = client.post(
        "/register", data=_register_form(world.company.credit_code, "stranger@evil.example")
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "invite" in html and 'id="credit_code-error"' in html
    assert count_rows(User) == users_before  # nothing written
    assert count_rows(Company) == 1

    # The stranger's own account (a company of their own) reaches nothing of it.
    response = client.post(
        "/register",
        data=_register_form(make_credit_code("320500", "87654321"), "stranger@evil.example"),
    )
    assert response.status_code == 302
    stranger = db.session.scalar(select(User).where(User.email == "stranger@evil.example"))
    assert stranger.company_id != world.company.id
    headers = bearer(stranger)
    api = app.test_client()
    listed = api.get("/api/v1/bookings", headers=headers).get_json()
    assert listed["total"] == 0
    b, s, e = world.booking.id, world.series.id, world.entry.id
    assert api.get(f"/api/v1/bookings/{b}", headers=headers).status_code == 404
    assert api.post(f"/api/v1/bookings/{b}/cancel", json={}, headers=headers).status_code == 404
    assert api.get(f"/api/v1/series/{s}", headers=headers).status_code == 404
    assert api.post(f"/api/v1/series/{s}/cancel", json={}, headers=headers).status_code == 404
    assert api.get(f"/api/v1/waitlist/{e}", headers=headers).status_code == 404
    assert api.post(f"/api/v1/waitlist/{e}/leave", json={}, headers=headers).status_code == 404
    assert api.get("/api/v1/waitlist", headers=headers).get_json()["total"] == 0
    # Registration does not sign in (the address is confirmed by mail first).
    signed_in = client.post(
        "/login", data={"email": "stranger@evil.example", "password": NEW_PASSWORD}
    )
    assert signed_in.status_code == 302
    assert client.get(f"/bookings/{b}").status_code == 404
    assert client.post(f"/bookings/{b}/cancel", data={}).status_code == 404
    assert world.company.credit_code not in client.get("/bookings").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Booking, b).status == BookingStatus.APPROVED
    assert db.session.get(WaitlistEntry, e).status == WaitlistStatus.WAITING


def test_an_invited_member_sees_and_acts_on_the_bookings(
    app: Flask, world: SimpleNamespace
) -> None:
    secret = _invite(app, world.admin, "New.Member@Example.com")
    client, response = _accept(app, secret, "new.member@example.com")
    assert response.status_code == 302, response.get_data(as_text=True)[:800]
    member = db.session.scalar(select(User).where(User.email == "new.member@example.com"))
    assert member.company_id == world.company.id and not member.company_admin
    assert client.get(f"/bookings/{world.booking.id}").status_code == 200
    headers = bearer(member)
    api = app.test_client()
    assert api.get("/api/v1/bookings", headers=headers).get_json()["total"] == 1
    assert api.get(f"/api/v1/waitlist/{world.entry.id}", headers=headers).status_code == 200
    assert api.get(f"/api/v1/series/{world.series.id}", headers=headers).status_code == 200
    cancel = api.post(f"/api/v1/bookings/{world.booking.id}/cancel", json={}, headers=headers)
    assert cancel.status_code == 200, cancel.get_json()
    actions = set(db.session.scalars(select(AuditLog.action)))
    assert {"invitation_created", "member_added"} <= actions


# -- confirmation ------------------------------------------------------------------------------


def _register_new(app: Flask) -> tuple[Any, User]:
    client = app.test_client()
    response = client.post(
        "/register",
        data=_register_form(make_credit_code("320500", "11112222"), "first@new.example"),
    )
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "first@new.example"))
    # The address is confirmed by mail (tested with the passwords); here only the
    # company's confirmation stands between the account and booking.
    user.email_verified_at = utcnow()
    db.session.commit()
    signed_in = client.post("/login", data={"email": user.email, "password": NEW_PASSWORD})
    assert signed_in.status_code == 302
    return client, user


def _booking_body(world: SimpleNamespace) -> dict[str, Any]:
    return {"resource_id": world.inst.id, "start": START, "end": END, "purpose": "校准"}


@pytest.mark.parametrize("locale", ["en", "zh_CN"])
def test_an_unconfirmed_company_reads_but_cannot_book(
    app: Flask, world: SimpleNamespace, locale: str
) -> None:
    client, user = _register_new(app)
    user.locale = locale
    db.session.commit()
    assert user.company.status == CompanyStatus.PENDING
    headers = bearer(user)
    api = app.test_client()
    assert api.get(f"/api/v1/resources/{world.inst.id}", headers=headers).status_code == 200
    assert api.get("/api/v1/bookings", headers=headers).status_code == 200
    expected = "尚未确认" if locale == "zh_CN" else "not been confirmed"
    refused = [
        api.post("/api/v1/bookings", json=_booking_body(world), headers=headers),
        api.post(
            "/api/v1/waitlist",
            json={**_booking_body(world), "resource_id": world.inst.id},
            headers=headers,
        ),
        api.post(
            "/api/v1/series",
            json={**_booking_body(world), "recurrence": {"freq": "daily", "count": 2}},
            headers=headers,
        ),
        api.post(
            "/api/v1/booking-groups",
            json={
                **_booking_body(world),
                "lab_id": world.inst.lab_id,
                "instrument_ids": [world.inst.id],
            },
            headers=headers,
        ),
    ]
    for response in refused:
        assert response.status_code == 403, response.get_json()
        error = error_of(response)
        assert error["code"] == "forbidden" and error["rule"] == "company_not_confirmed"
        assert expected in error["message"]
    client.post("/language", data={"locale": locale})
    web = client.post(
        f"/resources/{world.inst.id}/book",
        data={"start": "2030-01-07T09:00", "end": "2030-01-07T11:00", "purpose": "校准"},
    )
    assert web.status_code == 403
    assert expected in web.get_data(as_text=True)
    assert count_rows(Booking) == 1  # only the world's


def test_after_confirmation_the_company_books_and_its_first_member_administers_it(
    app: Flask, world: SimpleNamespace
) -> None:
    _client, user = _register_new(app)
    company_id = user.company_id
    api = app.test_client()
    staff_headers = bearer(world.staff)
    pending = api.get("/api/v1/companies", headers=staff_headers).get_json()
    assert [c["credit_code"] for c in pending["items"]] == [user.company.credit_code]
    sme_headers = bearer(user)
    assert api.get("/api/v1/companies", headers=sme_headers).status_code == 403
    assert (
        api.post(f"/api/v1/companies/{company_id}/confirm", headers=sme_headers).status_code == 403
    )
    response = api.post(f"/api/v1/companies/{company_id}/confirm", headers=staff_headers)
    assert response.status_code == 200 and response.get_json()["status"] == "confirmed"
    again = api.post(f"/api/v1/companies/{company_id}/reject", headers=staff_headers)
    assert again.status_code == 409
    db.session.expire_all()
    assert db.session.get(User, user.id).company_admin
    booked = api.post("/api/v1/bookings", json=_booking_body(world), headers=sme_headers)
    assert booked.status_code == 201, booked.get_json()
    me = api.get("/api/v1/me", headers=sme_headers).get_json()
    assert me["company_admin"] is True
    assert (
        db.session.scalar(select(AuditLog).where(AuditLog.action == "company_confirmed")).actor_id
        == world.staff.id
    )


def test_staff_confirm_and_reject_on_the_web(app: Flask, world: SimpleNamespace) -> None:
    _client, user = _register_new(app)
    staff = app.test_client()
    staff.post("/login", data={"email": world.staff.email, "password": factories.PASSWORD})
    page = staff.get("/companies").get_data(as_text=True)
    assert user.company.credit_code in page
    assert staff.post(f"/companies/{user.company_id}/reject").status_code == 302
    db.session.expire_all()
    assert db.session.get(Company, user.company_id).status == CompanyStatus.REJECTED
    refused = app.test_client().post(
        "/api/v1/bookings", json=_booking_body(world), headers=bearer(user)
    )
    assert refused.status_code == 403


# -- invitation tokens -------------------------------------------------------------------------


def _state() -> tuple[int, int, list[Any]]:
    rows = db.session.execute(
        select(CompanyInvitation.id, CompanyInvitation.accepted_at, CompanyInvitation.revoked_at)
    ).all()
    return count_rows(User), count_rows(AuditLog), sorted(tuple(r) for r in rows)


def test_an_expired_invitation_is_refused(app: Flask, world: SimpleNamespace) -> None:
    secret = _invite(app, world.admin, "late@example.com")
    set_clock(lambda: NOW + dt.timedelta(days=7, seconds=1))
    before = _state()
    _client, response = _accept(app, secret, "late@example.com")
    assert response.status_code == 409
    assert "expired" in response.get_data(as_text=True)
    assert _state() == before


def test_a_used_invitation_is_refused(app: Flask, world: SimpleNamespace) -> None:
    secret = _invite(app, world.admin, "once@example.com")
    _client, first = _accept(app, secret, "once@example.com")
    assert first.status_code == 302
    before = _state()
    _client, second = _accept(app, secret, "once@example.com", name="again")
    assert second.status_code == 409
    assert "already used" in second.get_data(as_text=True)
    assert _state() == before


def test_a_tampered_invitation_is_refused(app: Flask, world: SimpleNamespace) -> None:
    secret = _invite(app, world.admin, "tamper@example.com")
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    before = _state()
    for link in (tampered, "x" * 500, ""):
        _client, response = _accept(app, link, "tamper@example.com")
        assert response.status_code in (404, 405), link
    assert _state() == before
    stored = db.session.scalar(select(CompanyInvitation.token_hash))
    assert secret not in stored and len(stored) == 64  # only a digest is kept


def test_an_invitation_for_another_address_is_refused(app: Flask, world: SimpleNamespace) -> None:
    secret = _invite(app, world.admin, "invited@example.com")
    before = _state()
    _client, response = _accept(app, secret, "someone.else@example.com")
    assert response.status_code == 422
    assert "another email address" in response.get_data(as_text=True)
    assert _state() == before
    # A signed-in account (anyone's) cannot take it either.
    other = factories.make_user(Role.SME)
    db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": other.email, "password": factories.PASSWORD})
    before = _state()
    assert client.get(f"/invitations/{secret}").status_code == 403
    response = client.post(
        f"/invitations/{secret}",
        data={"email": "invited@example.com", "name": "x", "password": NEW_PASSWORD,
              "confirm": NEW_PASSWORD, "locale": "en"},
    )  # fmt: skip
    assert response.status_code == 403
    assert _state() == before


def test_a_withdrawn_invitation_is_refused(app: Flask, world: SimpleNamespace) -> None:
    secret = _invite(app, world.admin, "withdrawn@example.com")
    invitation = db.session.scalar(select(CompanyInvitation))
    api = app.test_client()
    headers = bearer(world.admin)
    listed = api.get("/api/v1/company/invitations", headers=headers).get_json()
    assert [i["email"] for i in listed["items"]] == ["withdrawn@example.com"]
    gone = api.delete(f"/api/v1/company/invitations/{invitation.id}", headers=headers)
    assert gone.status_code == 200
    before = _state()
    _client, response = _accept(app, secret, "withdrawn@example.com")
    assert response.status_code == 409
    assert _state() == before


def test_the_invitation_mail_goes_to_the_invited_address(
    app: Flask, world: SimpleNamespace
) -> None:
    from labshare.messaging import mail

    secret = _invite(app, world.admin, "mailed@example.com")
    note = db.session.scalar(select(Notification).where(Notification.to_email.is_not(None)))
    message = mail.build_message(note, world.admin)
    assert message["To"] == "mailed@example.com"
    assert secret in message.get_body(("plain",)).get_content()


def test_the_invitation_arrives_over_smtp(app: Flask, world: SimpleNamespace, smtp: Any) -> None:
    from labshare.jobs import run_job

    secret = _invite(app, world.admin, "smtp.invitee@example.com")
    run_job("deliver")
    [message] = smtp.messages
    assert message["To"] == "smtp.invitee@example.com"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert f"/invitations/{secret}" in text and world.company.name in text
    _client, response = _accept(app, secret, "smtp.invitee@example.com")
    assert response.status_code == 302


def test_cli_made_company_is_confirmed_with_its_administrator(app: Flask) -> None:
    code = make_credit_code("320500", "55556666")
    result = app.test_cli_runner().invoke(
        args=["create-user", "cli@example.com", "--role", "sme", "--password", NEW_PASSWORD,
              "--company-code", code, "--company-name", "命令行公司"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "cli@example.com"))
    assert user.company_admin and user.company.status == CompanyStatus.CONFIRMED


# -- company administrators --------------------------------------------------------------------


def test_only_company_admins_manage_members(app: Flask, world: SimpleNamespace) -> None:
    member = factories.make_user(Role.SME, company=world.company)
    outsider = factories.make_user(Role.SME)
    db.session.commit()
    api = app.test_client()
    for user in (member, outsider):
        headers = bearer(user)
        assert api.get("/api/v1/company/members", headers=headers).status_code == 403
        response = api.post(
            "/api/v1/company/invitations", json={"email": "x@example.com"}, headers=headers
        )
        assert response.status_code == 403
        assert (
            api.delete(f"/api/v1/company/members/{world.admin.id}", headers=headers).status_code
            == 403
        )
    assert count_rows(CompanyInvitation) == 0
    # An admin of another company cannot touch this company's members (404).
    other_admin = factories.make_user(Role.SME, company_admin=True)
    db.session.commit()
    response = api.delete(f"/api/v1/company/members/{member.id}", headers=bearer(other_admin))
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(User, member.id).active


def test_removing_a_member_ends_their_access_at_once(app: Flask, world: SimpleNamespace) -> None:
    member = factories.make_user(Role.SME, company=world.company)
    db.session.commit()
    web = app.test_client()
    web.post("/login", data={"email": member.email, "password": factories.PASSWORD})
    member_headers = bearer(member)
    api = app.test_client()
    assert api.get("/api/v1/bookings", headers=member_headers).get_json()["total"] == 1
    assert web.get(f"/bookings/{world.booking.id}").status_code == 200
    listed = api.get("/api/v1/company/members", headers=bearer(world.admin)).get_json()
    assert {m["email"] for m in listed["items"]} == {world.admin.email, member.email}
    removed = api.delete(f"/api/v1/company/members/{member.id}", headers=bearer(world.admin))
    assert removed.status_code == 200, removed.get_json()
    assert api.get("/api/v1/bookings", headers=member_headers).status_code == 401
    assert web.get(f"/bookings/{world.booking.id}").status_code == 302  # to the login page
    response = api.post(
        f"/api/v1/bookings/{world.booking.id}/cancel", json={}, headers=member_headers
    )
    assert response.status_code == 401
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "member_removed"))


def test_a_company_always_keeps_an_administrator(app: Flask, world: SimpleNamespace) -> None:
    member = factories.make_user(Role.SME, company=world.company)
    db.session.commit()
    api = app.test_client()
    headers = bearer(world.admin)
    alone = api.post(
        f"/api/v1/company/members/{world.admin.id}/admin", json={"admin": False}, headers=headers
    )
    assert alone.status_code == 422 and error_of(alone)["field"] == "admin"
    self_removal = api.delete(f"/api/v1/company/members/{world.admin.id}", headers=headers)
    assert self_removal.status_code == 422 and error_of(self_removal)["field"] == "user_id"
    # Hand over: the member becomes admin, then the first one steps down.
    grant = api.post(
        f"/api/v1/company/members/{member.id}/admin", json={"admin": True}, headers=headers
    )
    assert grant.status_code == 200 and grant.get_json()["company_admin"] is True
    step_down = api.post(
        f"/api/v1/company/members/{world.admin.id}/admin", json={"admin": False}, headers=headers
    )
    assert step_down.status_code == 200
    db.session.expire_all()
    assert db.session.get(User, member.id).company_admin
    assert not db.session.get(User, world.admin.id).company_admin
    actions = list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions[-2:] == ["company_admin_granted", "company_admin_revoked"]


def test_the_company_page(app: Flask, world: SimpleNamespace) -> None:
    member = factories.make_user(Role.SME, company=world.company)
    db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": world.admin.email, "password": factories.PASSWORD})
    page = client.get("/company").get_data(as_text=True)
    assert member.email in page and "Invite a colleague" in page
    bad = client.post("/company/invitations", data={"email": "not-an-email"})
    assert bad.status_code == 422 and 'id="email-error"' in bad.get_data(as_text=True)
    taken = client.post("/company/invitations", data={"email": member.email})
    assert taken.status_code == 422 and "already exists" in taken.get_data(as_text=True)
    assert count_rows(CompanyInvitation) == 0
    sent = client.post("/company/invitations", data={"email": "colleague@example.com"})
    assert sent.status_code == 302
    assert "colleague@example.com" in client.get("/company").get_data(as_text=True)
    removed = client.post(f"/company/members/{member.id}/remove")
    assert removed.status_code == 302
    db.session.expire_all()
    assert not db.session.get(User, member.id).active


# -- institute administrators and the platform admin -------------------------------------------


def test_an_institute_admin_manages_only_their_institutes_staff(
    app: Flask, world: SimpleNamespace
) -> None:
    head = factories.make_user(Role.STAFF, institute=world.inst.institute, institute_admin=True)
    other_staff = factories.make_user(Role.STAFF)
    db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": head.email, "password": factories.PASSWORD})
    assert world.staff.email in client.get("/institute/staff").get_data(as_text=True)
    created = client.post(
        "/institute/staff",
        data={"name": "新员工", "email": "new.staff@example.com", "password": NEW_PASSWORD,
              "confirm": NEW_PASSWORD, "locale": "zh_CN"},
    )  # fmt: skip
    assert created.status_code == 302
    new = db.session.scalar(select(User).where(User.email == "new.staff@example.com"))
    assert new.role == Role.STAFF and new.institute_id == world.inst.institute_id
    assert (
        client.post(f"/institute/staff/{world.staff.id}/active", data={"active": "0"}).status_code
        == 302
    )
    assert (
        client.post(f"/institute/staff/{other_staff.id}/active", data={"active": "0"}).status_code
        == 404
    )
    db.session.expire_all()
    assert not db.session.get(User, world.staff.id).active
    assert db.session.get(User, other_staff.id).active
    # Plain staff may not.
    plain = app.test_client()
    plain.post("/login", data={"email": new.email, "password": NEW_PASSWORD})
    assert plain.get("/institute/staff").status_code == 403
    actions = set(db.session.scalars(select(AuditLog.action)))
    assert {"user_created", "user_deactivated"} <= actions


def test_the_admin_changes_roles(app: Flask, world: SimpleNamespace) -> None:
    admin = factories.make_user(Role.ADMIN)
    db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": admin.email, "password": factories.PASSWORD})
    url = f"/admin/users/{world.staff.id}/role"
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        data={"role": "staff", "institute": str(world.inst.institute_id), "institute_admin": "y"},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, world.staff.id).institute_admin
    no_institute = client.post(url, data={"role": "staff", "institute": ""})
    assert no_institute.status_code == 422
    sme = client.post(f"/admin/users/{world.admin.id}/role", data={"role": "admin"})
    assert sme.status_code == 422  # an SME account keeps its company
    own = client.post(f"/admin/users/{admin.id}/role", data={"role": "staff", "institute": "1"})
    assert own.status_code == 422
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "role_changed"))
    assert audit.from_state == "staff" and audit.to_state == "staff+institute_admin"


def test_the_booking_form_says_why_an_unconfirmed_company_cannot_book(
    app: Flask, world: SimpleNamespace
) -> None:
    client, _user = _register_new(app)
    page = client.get(f"/resources/{world.inst.id}/book").get_data(as_text=True)
    assert "has not been confirmed yet" in page


def test_an_admin_deactivating_the_company_administrator_leaves_one(
    app: Flask, world: SimpleNamespace
) -> None:
    member = factories.make_user(Role.SME, company=world.company)
    admin = factories.make_user(Role.ADMIN)
    db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": admin.email, "password": factories.PASSWORD})
    response = client.post(f"/admin/users/{world.admin.id}/active", data={"active": "0"})
    assert response.status_code == 302
    db.session.expire_all()
    assert not db.session.get(User, world.admin.id).company_admin
    assert db.session.get(User, member.id).company_admin


def test_the_openapi_document_lists_the_company_endpoints(app: Flask) -> None:
    paths = served_openapi(app.test_client())["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/company/invitations"])
    assert "delete" in paths["/api/v1/company/invitations/{invitation_id}"]
    assert "delete" in paths["/api/v1/company/members/{user_id}"]
    assert "post" in paths["/api/v1/companies/{company_id}/confirm"]


def test_the_company_pages_speak_chinese(app: Flask, world: SimpleNamespace) -> None:
    world.admin.locale = "zh_CN"
    db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": world.admin.email, "password": factories.PASSWORD})
    page = client.get("/company").get_data(as_text=True)
    assert "邀请同事" in page and "企业管理员" in page and "我的企业" in page
    refused = client.post("/company/invitations", data={"email": world.admin.email})
    assert "该邮箱已有账号" in refused.get_data(as_text=True)


def test_invitations_per_day_are_limited(
    app: Flask, world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labshare.accounts import invitations

    monkeypatch.setattr(invitations, "INVITATIONS_PER_DAY", 2)
    api = app.test_client()
    headers = bearer(world.admin)
    for n in range(2):
        sent = api.post(
            "/api/v1/company/invitations", json={"email": f"a{n}@example.com"}, headers=headers
        )
        assert sent.status_code == 201
    refused = api.post(
        "/api/v1/company/invitations", json={"email": "a9@example.com"}, headers=headers
    )
    assert refused.status_code == 422 and error_of(refused)["field"] == "email"
    assert count_rows(CompanyInvitation) == 2
    set_clock(lambda: NOW + dt.timedelta(days=1, seconds=1))
    again = api.post(
        "/api/v1/company/invitations", json={"email": "a9@example.com"}, headers=bearer(world.admin)
    )
    assert again.status_code == 201
