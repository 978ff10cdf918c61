"""A cold review of companies, invitations, passwords and sessions: each test shows
a hole that was found (enumeration, a revived session, races turned into 500s or
a link used twice) and stays closed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from labshare.accounts import accounts, passwords, tokens
from labshare.accounts.credit_code import make_credit_code
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import Company, Notification, Role, User
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import NOW, bearer, count_rows, mails

NEW_PASSWORD = "a long enough passphrase 42"


def _register(client: Any, code: str, email: str) -> Any:
    return client.post(
        "/register",
        data={
            "company_name": "陌生人公司", "credit_code": code, "province": "江苏省",
            "size": "small", "name": "陌生人", "email": email, "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD, "locale": "en",
        },
    )  # fmt: skip


def test_registering_with_a_known_code_does_not_tell_which_addresses_have_accounts(
    app: Flask,
) -> None:
    company = factories.make_company()
    owner = factories.make_user(Role.SME, company=company, email="owner@example.com")
    db.session.commit()
    users, companies = count_rows(User), count_rows(Company)
    client = app.test_client()
    taken = _register(client, company.credit_code, owner.email)
    free = _register(client, company.credit_code, "nobody@example.com")
    # The same answer (the code is registered) whether or not the address has an account.
    assert taken.status_code == free.status_code == 422
    assert 'id="credit_code-error"' in taken.get_data(as_text=True)
    assert 'id="credit_code-error"' in free.get_data(as_text=True)
    assert (count_rows(User), count_rows(Company)) == (users, companies)


def test_a_removed_member_reactivated_later_has_no_old_session(app: Flask) -> None:
    company = factories.make_company()
    admin = factories.make_user(Role.SME, company=company, company_admin=True)
    member = factories.make_user(Role.SME, company=company)
    platform = factories.make_user(Role.ADMIN)
    db.session.commit()
    web = app.test_client()
    web.post("/login", data={"email": member.email, "password": factories.PASSWORD})
    assert web.get("/account/security").status_code == 200
    api = app.test_client()
    removed = api.delete(f"/api/v1/company/members/{member.id}", headers=bearer(admin))
    assert removed.status_code == 200, removed.get_json()
    db.session.expire_all()
    # A platform admin reactivates the account later (a mistake, or the member is back).
    accounts.set_active(db.session.get(User, member.id), True, actor=platform)
    db.session.commit()
    # The cookie from before the removal must stay dead.
    assert web.get("/account/security").status_code == 302


def test_an_address_taken_between_the_check_and_the_insert_is_a_clear_refusal(
    app: Flask, monkeypatch: Any
) -> None:
    """Two sign-ups for one address at once (two tabs on one invitation, two
    registrations): the loser meets the unique index; it gets the field's message,
    never a 500, and nothing of it is written."""
    company = factories.make_company()
    admin = factories.make_user(Role.SME, company=company, company_admin=True)
    db.session.commit()
    response = app.test_client().post(
        "/api/v1/company/invitations", json={"email": "racer@example.com"}, headers=bearer(admin)
    )
    assert response.status_code == 201
    note = db.session.scalars(
        select(Notification).where(Notification.to_email == "racer@example.com")
    ).one()
    from labshare.messaging import mail

    text = mail.build_message(note, admin).get_body(("plain",)).get_content()
    secret = text.split("/invitations/", 1)[1].split()[0]
    # The other request wins: its account exists, committed after our check ran.
    factories.make_user(Role.SME, company=company, email="racer@example.com")
    db.session.commit()
    users = count_rows(User)
    monkeypatch.setattr(accounts, "email_taken", lambda _address: False)
    client = app.test_client()
    response = client.post(
        f"/invitations/{secret}",
        data={
            "email": "racer@example.com", "name": "Racer", "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD, "locale": "en",
        },
    )  # fmt: skip
    assert response.status_code == 422
    assert 'id="email-error"' in response.get_data(as_text=True)
    assert count_rows(User) == users

    # The same race on the registration page answers as for any taken address.
    response = _register(client, make_credit_code("320500", "87650001"), "racer@example.com")
    assert response.status_code == 302
    assert count_rows(User) == users
    assert db.session.scalar(select(Company).where(Company.name == "陌生人公司")) is None


def test_a_reset_link_cannot_be_used_twice_at_once(app: Flask, monkeypatch: Any) -> None:
    """Two requests with one reset link: the second one must see the first one's
    new password (it locks and reads the account again) and be refused."""
    user = factories.make_user(Role.SME)
    db.session.commit()
    token = passwords.reset_token(user)
    original = passwords.user_for_reset_token

    def checked_then_raced(secret: str) -> User:
        found = original(secret)
        # Meanwhile the other request set its password with the same link.
        db.session.execute(
            update(User)
            .where(User.id == found.id)
            .values(password_hash="other request's hash")
            .execution_options(synchronize_session=False)
        )
        return found

    monkeypatch.setattr(passwords, "user_for_reset_token", checked_then_raced)
    with pytest.raises(ValidationFailed) as refused:
        passwords.reset_password(token, NEW_PASSWORD)
    assert refused.value.field == "token"
    db.session.rollback()


def test_verification_mails_are_capped_per_account(app: Flask) -> None:
    """Anyone may register with someone else's address and sign in unverified; the
    "send the link again" button must not let them flood that address."""
    set_clock(lambda: NOW)
    client = app.test_client()
    response = _register(client, make_credit_code("320500", "87650002"), "victim@example.com")
    assert response.status_code == 302
    client.post("/login", data={"email": "victim@example.com", "password": NEW_PASSWORD})
    for _ in range(5):
        assert client.post("/account/verification").status_code == 302
    assert len(mails(passwords.VERIFY_KIND)) == 1
    set_clock(lambda: NOW + dt.timedelta(minutes=2))
    assert client.post("/account/verification").status_code == 302
    assert len(mails(passwords.VERIFY_KIND)) == 2


def test_the_current_password_cannot_be_guessed_without_limit(limited: Any) -> None:
    """A stolen session must not buy unlimited guesses of the current password (the
    one thing the change form asks that the thief lacks)."""
    user = factories.make_user(Role.SME)
    db.session.commit()
    client = limited().test_client()
    client.post("/login", data={"email": user.email, "password": factories.PASSWORD})
    form = {
        "current_password": "a wrong guess 0001", "new_password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
    }  # fmt: skip
    statuses = [client.post("/account/password", data=form).status_code for _ in range(4)]
    assert statuses == [422, 422, 422, 429]


def test_api_tokens_stay_dead_after_deactivation_and_reactivation(app: Flask) -> None:
    """Deactivation ends sessions for good (a new nonce); the account's API tokens
    must not come back to life when it is reactivated either."""
    user = factories.make_user(Role.SME)
    platform = factories.make_user(Role.ADMIN)
    db.session.commit()
    headers = bearer(user)
    api = app.test_client()
    assert api.get("/api/v1/me", headers=headers).status_code == 200
    admin = app.test_client()
    admin.post("/login", data={"email": platform.email, "password": factories.PASSWORD})
    assert admin.post(f"/admin/users/{user.id}/active", data={"active": "0"}).status_code == 302
    assert api.get("/api/v1/me", headers=headers).status_code == 401
    assert admin.post(f"/admin/users/{user.id}/active", data={"active": "1"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).active
    assert api.get("/api/v1/me", headers=headers).status_code == 401


def _invitation_secret(app: Flask, admin: User, email: str) -> str:
    response = app.test_client().post(
        "/api/v1/company/invitations", json={"email": email}, headers=bearer(admin)
    )
    assert response.status_code == 201
    note = db.session.scalars(select(Notification).where(Notification.to_email == email)).one()
    from labshare.messaging import mail

    text = mail.build_message(note, admin).get_body(("plain",)).get_content()
    return text.split("/invitations/", 1)[1].split()[0]


def test_names_with_a_nul_or_a_line_break_are_refused_on_the_field(app: Flask) -> None:
    """PostgreSQL refuses a NUL in text (a 500 if it reaches the database); a line
    break has no place in a name shown in lists and mails."""
    company = factories.make_company()
    admin = factories.make_user(Role.SME, company=company, company_admin=True)
    staff_admin = factories.make_user(Role.STAFF, institute_admin=True)
    db.session.commit()
    users = count_rows(User)
    for i, bad in enumerate(["a\x00b", "a\u2028b", "a\nb"]):
        secret = _invitation_secret(app, admin, f"named{i}@example.com")
        response = app.test_client().post(
            f"/invitations/{secret}",
            data={
                "email": f"named{i}@example.com", "name": bad, "password": NEW_PASSWORD,
                "confirm": NEW_PASSWORD, "locale": "en",
            },
        )  # fmt: skip
        assert response.status_code == 422, bad
        assert 'id="name-error"' in response.get_data(as_text=True)
        web = app.test_client()
        web.post("/login", data={"email": staff_admin.email, "password": factories.PASSWORD})
        response = web.post(
            "/institute/staff",
            data={
                "email": f"staff{i}@example.com", "name": bad, "password": NEW_PASSWORD,
                "confirm": NEW_PASSWORD, "locale": "en",
            },
        )  # fmt: skip
        assert response.status_code == 422, bad
        assert 'id="name-error"' in response.get_data(as_text=True)
        with pytest.raises(ValidationFailed) as refused:
            accounts.register_sme(
                email=f"reg{i}@example.com", name="张伟", password=NEW_PASSWORD,
                company_name=bad, credit_code=make_credit_code("320500", f"8766{i:04d}"),
            )  # fmt: skip
        assert refused.value.field == "company_name"
        db.session.rollback()
        with pytest.raises(ValidationFailed) as refused:
            tokens.create_personal_token(admin, bad)
        assert refused.value.field == "name"
        db.session.rollback()
    assert count_rows(User) == users


def test_a_nul_in_the_login_address_is_the_usual_refusal(app: Flask) -> None:
    client = app.test_client()
    response = client.post("/login", data={"email": "a\x00b@example.com", "password": "x" * 12})
    assert response.status_code == 401
    response = client.post(
        "/api/v1/auth/token", json={"email": "a\x00b@example.com", "password": "x" * 12}
    )
    assert response.status_code == 401


def test_the_role_form_refuses_odd_institute_numbers(app: Flask) -> None:
    platform = factories.make_user(Role.ADMIN)
    staff = factories.make_user(Role.STAFF)
    db.session.commit()
    web = app.test_client()
    web.post("/login", data={"email": platform.email, "password": factories.PASSWORD})
    for odd in ["²", "99999999999999999999"]:
        response = web.post(
            f"/admin/users/{staff.id}/role", data={"role": "staff", "institute": odd}
        )
        assert response.status_code == 422, odd
        assert 'id="institute-error"' in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, staff.id).institute_id == staff.institute_id


def test_a_removed_administrators_open_invitations_are_withdrawn(app: Flask) -> None:
    """Otherwise a company administrator removed for cause walks back in through an
    invitation they sent to another address of theirs before the removal."""
    company = factories.make_company()
    first = factories.make_user(Role.SME, company=company, company_admin=True)
    rogue = factories.make_user(Role.SME, company=company, company_admin=True)
    db.session.commit()
    secret = _invitation_secret(app, rogue, "rogue.again@example.com")
    api = app.test_client()
    removed = api.delete(f"/api/v1/company/members/{rogue.id}", headers=bearer(first))
    assert removed.status_code == 200, removed.get_json()
    users = count_rows(User)
    response = app.test_client().post(
        f"/invitations/{secret}",
        data={
            "email": "rogue.again@example.com", "name": "Rogue", "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD, "locale": "en",
        },
    )  # fmt: skip
    assert response.status_code == 409
    assert count_rows(User) == users


def test_a_deactivated_members_open_invitations_are_withdrawn(app: Flask) -> None:
    company = factories.make_company()
    inviter = factories.make_user(Role.SME, company=company, company_admin=True)
    factories.make_user(Role.SME, company=company, company_admin=True)
    platform = factories.make_user(Role.ADMIN)
    db.session.commit()
    secret = _invitation_secret(app, inviter, "via.admin@example.com")
    admin = app.test_client()
    admin.post("/login", data={"email": platform.email, "password": factories.PASSWORD})
    assert admin.post(f"/admin/users/{inviter.id}/active", data={"active": "0"}).status_code == 302
    response = app.test_client().get(f"/invitations/{secret}")
    assert response.status_code == 409


def test_withdrawing_an_invitation_accepted_meanwhile_says_so(app: Flask) -> None:
    """The administrator withdraws while the invitee accepts: the later one must see
    the earlier one's write (a conditional UPDATE), not report a withdrawal of an
    invitation whose member already joined."""
    from labshare.accounts import invitations
    from labshare.errors import InvalidTransition
    from labshare.models import CompanyInvitation

    company = factories.make_company()
    admin = factories.make_user(Role.SME, company=company, company_admin=True)
    db.session.commit()
    _invitation_secret(app, admin, "both@example.com")
    invitation = db.session.scalars(select(CompanyInvitation)).one()
    assert invitation.accepted_at is None  # read before the other request's write
    db.session.execute(
        update(CompanyInvitation)
        .where(CompanyInvitation.id == invitation.id)
        .values(accepted_at=invitation.created_at)
        .execution_options(synchronize_session=False)
    )
    with pytest.raises(InvalidTransition):
        invitations.revoke_invitation(invitation.id, actor=admin)
    db.session.rollback()


def test_the_api_password_change_is_limited_per_user_not_per_address(
    limited: Any,
) -> None:
    user = factories.make_user(Role.SME)
    db.session.commit()
    app = limited()
    headers = bearer(user)
    client = app.test_client()
    body = {"current_password": "a wrong guess 0001", "new_password": NEW_PASSWORD}
    statuses = [
        client.post(
            "/api/v1/me/password",
            json=body,
            headers=headers,
            environ_base={"REMOTE_ADDR": f"10.0.0.{i}"},
        ).status_code
        for i in range(4)
    ]
    assert statuses == [422, 422, 422, 429]
