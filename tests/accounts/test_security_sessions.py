"""Sessions that can be ended, password change and reset, e-mail verification and
expiring API tokens.

A session or remember-me cookie names the account's session nonce; replacing the
nonce (logout, password change or reset, "sign out other devices", deactivation)
kills every copy of every cookie of the account. Reset and verification links are
signed, expire, and die once used.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask import Flask
from flask_login.utils import encode_cookie
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from labshare.accounts import accounts, passwords, tokens
from labshare.extensions import db as _db
from labshare.jobs import run_job
from labshare.messaging import inbox
from labshare.models import ApiToken, AuditLog, Booking, CompanyStatus, Notification, Role, User
from labshare.timeutil import set_clock, utcnow
from tests import factories
from tests.factories import PASSWORD
from tests.helpers import END, NOW, START, bearer, error_of, mails, signed_in
from tests.jobsutil import SmtpServer

NEW_PASSWORD = "a brand new passphrase 77"
PROTECTED = "/account/security"


def _copy_session(app: Flask, source: Any) -> Any:
    """A second browser holding a copy of ``source``'s session cookie (stolen)."""
    cookie = source.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def _signed_in(client: Any) -> bool:
    return client.get(PROTECTED).status_code == 200


def _link(note: Notification, path: str) -> str:
    found = re.search(rf"https?://[^\s]+({path}/[^\s<\"]+)", note.body_text)
    assert found, note.body_text
    return found.group(1)


# -- sessions ---------------------------------------------------------------------------


def test_a_session_stolen_before_a_password_change_is_dead_after_it(
    app: Flask, db: Any, make_user: Any
) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    owner = signed_in(app, user)
    thief = _copy_session(app, owner)
    assert _signed_in(thief)
    response = owner.post(
        "/account/password",
        data={"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert not _signed_in(thief)
    assert _signed_in(owner)  # the device that changed it stays signed in
    assert thief.get(PROTECTED).headers["Location"].startswith("/login")


def test_logout_ends_every_copy_and_every_device(app: Flask, db: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    first = signed_in(app, user)
    copy = _copy_session(app, first)
    second = signed_in(app, user)
    assert _signed_in(copy) and _signed_in(second)
    assert first.post("/logout").status_code == 302
    assert not _signed_in(first)
    assert not _signed_in(copy)  # replaying the cookie after logout does not work
    assert not _signed_in(second)


def test_sign_out_other_devices_keeps_this_one(app: Flask, db: Any, make_user: Any) -> None:
    user = make_user(Role.STAFF)
    db.session.commit()
    here = signed_in(app, user)
    there = signed_in(app, user)
    assert here.post("/account/sessions/end").status_code == 302
    assert _signed_in(here)
    assert not _signed_in(there)
    assert "sessions_ended" in _db.session.scalars(select(AuditLog.action)).all()


def test_remember_me_cookie_dies_with_the_nonce(app: Flask, db: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    with app.test_request_context():
        remember = encode_cookie(user.get_id())
        stale = encode_cookie(str(user.id))  # the old, nonce-less form
    browser = app.test_client()
    browser.set_cookie("remember_token", remember)
    assert _signed_in(browser)
    passwords.end_sessions(user)
    db.session.commit()
    fresh = app.test_client()
    fresh.set_cookie("remember_token", remember)
    assert not _signed_in(fresh)
    old = app.test_client()
    old.set_cookie("remember_token", stale)
    assert not _signed_in(old)


def test_deactivation_ends_sessions_for_good(app: Flask, db: Any, make_user: Any) -> None:
    admin = make_user(Role.ADMIN)
    user = make_user(Role.SME)
    db.session.commit()
    browser = signed_in(app, user)
    accounts.set_active(user, False, actor=admin)
    db.session.commit()
    assert not _signed_in(browser)
    accounts.set_active(user, True, actor=admin)
    db.session.commit()
    assert not _signed_in(browser)  # reactivation does not revive the old cookie


def test_the_user_loader_refuses_malformed_ids(app: Flask, db: Any, make_user: Any) -> None:
    from labshare.web import load_user

    user = make_user(Role.SME)
    db.session.commit()
    with app.test_request_context():
        assert load_user(user.get_id()) is user
        for bad in (str(user.id), f"{user.id}:", f"{user.id}:wrong", "x:y", "99999999999:ab", ""):
            assert load_user(bad) is None


# -- password change ----------------------------------------------------------------------


def test_web_change_needs_the_current_password(app: Flask, db: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    browser = signed_in(app, user)
    before = user.password_hash
    wrong = browser.post(
        "/account/password",
        data={"current_password": "not it at all", "new_password": NEW_PASSWORD,
              "confirm": NEW_PASSWORD},
    )  # fmt: skip
    assert wrong.status_code == 422
    assert "The current password is not right." in wrong.get_data(as_text=True)
    common = browser.post(
        "/account/password",
        data={"current_password": PASSWORD, "new_password": "password123",
              "confirm": "password123"},
    )  # fmt: skip
    assert common.status_code == 422
    assert "too common" in common.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).password_hash == before
    assert _signed_in(browser)


def test_web_change_in_chinese(app: Flask, db: Any, make_user: Any) -> None:
    user = make_user(Role.SME, locale="zh_CN")
    db.session.commit()
    browser = signed_in(app, user)
    page = browser.get(PROTECTED, headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "修改密码" in page and "退出其他设备" in page
    wrong = browser.post(
        "/account/password",
        data={"current_password": "nope nope nope", "new_password": NEW_PASSWORD,
              "confirm": NEW_PASSWORD},
    )  # fmt: skip
    assert "当前密码不正确" in wrong.get_data(as_text=True)


def test_api_change_password(app: Flask, client: Any, db: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    headers = bearer(user)
    personal = tokens.create_personal_token(user, "LIMS")
    db.session.commit()
    browser = signed_in(app, user)
    wrong = client.post(
        "/api/v1/me/password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert wrong.status_code == 422 and error_of(wrong)["field"] == "current_password"
    weak = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=headers,
    )
    assert weak.status_code == 422 and error_of(weak)["field"] == "new_password"
    assert client.get("/api/v1/me", headers=headers).status_code == 200  # nothing changed
    ok = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert ok.status_code == 200
    assert ok.get_json() == {"changed": True, "tokens_revoked": 2}
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    personal_header = {"Authorization": f"Bearer {personal.secret}"}
    assert client.get("/api/v1/me", headers=personal_header).status_code == 401
    assert not _signed_in(browser)
    body = {"email": user.email, "password": NEW_PASSWORD}
    assert client.post("/api/v1/auth/token", json=body).status_code == 200


# -- password reset ---------------------------------------------------------------------


def test_reset_request_answers_the_same_for_unknown_addresses(
    client: Any, db: Any, make_user: Any
) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    known = client.post("/password/forgot", data={"email": user.email})
    after_known = client.get(known.headers["Location"]).get_data(as_text=True)
    unknown = client.post("/password/forgot", data={"email": "nobody@example.com"})
    after_unknown = client.get(unknown.headers["Location"]).get_data(as_text=True)
    assert known.status_code == unknown.status_code == 302
    assert known.headers["Location"] == unknown.headers["Location"]
    assert after_known == after_unknown
    assert "If an account uses this address" in after_known
    notes = mails(passwords.RESET_KIND)
    assert [n.user_id for n in notes] == [user.id]


def test_reset_mails_are_capped_per_account(client: Any, db: Any, make_user: Any) -> None:
    set_clock(lambda: NOW)
    user = make_user(Role.SME)
    db.session.commit()
    for _ in range(3):
        assert client.post("/password/forgot", data={"email": user.email}).status_code == 302
    assert len(mails(passwords.RESET_KIND)) == 1
    set_clock(lambda: NOW + dt.timedelta(minutes=1, seconds=1))
    client.post("/password/forgot", data={"email": user.email})
    assert len(mails(passwords.RESET_KIND)) == 2


def test_reset_link_sets_a_new_password_and_ends_everything(
    app: Flask, client: Any, db: Any, make_user: Any
) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    headers = bearer(user)
    browser = signed_in(app, user)
    client.post("/password/forgot", data={"email": user.email})
    path = _link(mails(passwords.RESET_KIND)[0], "/password/reset")
    assert client.get(path).status_code == 200
    response = client.post(path, data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not _signed_in(browser)
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert (
        client.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 401
    )
    assert (
        client.post("/login", data={"email": user.email, "password": NEW_PASSWORD}).status_code
        == 302
    )
    # Used once: the link is dead now.
    again = client.post(path, data={"new_password": "yet another passphrase 9",
                                    "confirm": "yet another passphrase 9"})  # fmt: skip
    assert again.status_code == 400
    assert "not valid or has expired" in again.get_data(as_text=True)


def _hash_of(user_id: int) -> str:
    _db.session.expire_all()
    user = _db.session.get(User, user_id)
    assert user is not None
    return user.password_hash


def test_reset_links_expired_tampered_or_foreign_are_refused(
    app: Flask, client: Any, db: Any, make_user: Any
) -> None:
    set_clock(lambda: NOW)
    user, other = make_user(Role.SME), make_user(Role.SME)
    db.session.commit()
    before, other_before = user.password_hash, other.password_hash
    with app.app_context():
        token = passwords.reset_token(user)
        verify = passwords.verify_token(user)
    body = {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}

    def refused(link_token: str) -> None:
        response = client.post(f"/password/reset/{link_token}", data=body)
        assert response.status_code == 400, link_token
        assert _hash_of(user.id) == before and _hash_of(other.id) == other_before

    # expired: 30 minutes and one second later
    set_clock(lambda: NOW + dt.timedelta(minutes=30, seconds=1))
    refused(token)
    set_clock(lambda: NOW + dt.timedelta(minutes=29))
    # tampered: one character changed, or the account id swapped under a guessed key
    refused(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
    forged = URLSafeTimedSerializer("guessed", salt=passwords.RESET_SALT).dumps(
        {"u": other.id, "p": "0" * 16, "e": "0" * 16}
    )
    refused(forged)
    # for another account: a link naming the other account with this one's fingerprints
    with app.app_context():
        crossed = passwords._serializer(passwords.RESET_SALT).dumps(
            {
                "u": other.id,
                "p": passwords._fingerprint(user.password_hash),
                "e": passwords._fingerprint(user.email),
            }
        )
    refused(crossed)
    # another kind of link (verification) is not a reset link
    refused(verify)
    refused("x" * 600)
    # the genuine one, in time, works
    ok = client.post(f"/password/reset/{token}", data=body)
    assert ok.status_code == 302
    assert _hash_of(user.id) != before and _hash_of(other.id) == other_before


def test_reset_page_errors_name_the_field(client: Any, db: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    token = passwords.reset_token(user)
    response = client.post(
        f"/password/reset/{token}", data={"new_password": "short", "confirm": "short"}
    )
    assert response.status_code == 422
    assert 'id="new_password-error"' in response.get_data(as_text=True)
    assert _hash_of(user.id) == user.password_hash


def test_reset_mail_arrives_over_smtp_and_its_link_works(
    client: Any, db: Any, make_user: Any, smtp: SmtpServer
) -> None:
    user = make_user(Role.SME, email="reset.me@example.com", locale="zh_CN")
    db.session.commit()
    client.post("/password/forgot", data={"email": "Reset.Me@example.com"})
    run_job("deliver")
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["To"] == "reset.me@example.com"
    assert msg["Subject"] == "重置您的 LabShare 密码"
    text = str(msg.get_body(preferencelist=("plain",)).get_content())
    found = re.search(r"https?://\S+(/password/reset/\S+)", text)
    assert found, text
    response = client.post(
        found.group(1), data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert response.status_code == 302
    assert (
        client.post("/login", data={"email": user.email, "password": NEW_PASSWORD}).status_code
        == 302
    )
    # The link's message is mail-only: not among the in-app notifications.
    assert inbox.list_notifications(user)[1] == 0


# -- e-mail verification ----------------------------------------------------------------


def _register(client: Any, email: str = "new.sme@example.com") -> User:
    response = client.post(
        "/register",
        data={
            "company_name": "杭州微测科技有限公司",
            "credit_code": "9144030071526726XG",
            "province": "浙江省",
            "size": "micro",
            "name": "张伟",
            "email": email,
            "password": PASSWORD,
            "confirm": PASSWORD,
            "locale": "en",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:400]
    user = _db.session.scalar(select(User).where(User.email == email))
    assert user is not None
    # Staff confirm the new company (tested with the companies): only the address
    # stands between this account and booking.
    user.company.status = CompanyStatus.CONFIRMED
    _db.session.commit()
    return user


def test_unverified_accounts_read_but_cannot_book(
    app: Flask, client: Any, db: Any, make_instrument: Any
) -> None:
    set_clock(lambda: NOW)
    inst = make_instrument()
    db.session.commit()
    user = _register(client)
    assert user.email_verified_at is None
    headers = bearer(user)
    assert client.get(f"/api/v1/resources/{inst.id}", headers=headers).status_code == 200
    payload = {"resource_id": inst.id, "start": START, "end": END, "purpose": "calibration"}
    refused = client.post("/api/v1/bookings", json=payload, headers=headers)
    assert refused.status_code == 403
    assert "confirm your e-mail address" in error_of(refused)["message"]
    for path in ("/api/v1/waitlist", "/api/v1/series"):
        answer = client.post(path, json=payload, headers=headers)
        assert answer.status_code in (403, 422), path
        if answer.status_code == 403:
            assert "confirm your e-mail address" in error_of(answer)["message"]
    browser = signed_in(app, user)
    page = browser.post(
        f"/resources/{inst.id}/book",
        data={"start": "2030-01-07T09:00", "end": "2030-01-07T11:00", "purpose": "calibration"},
    )
    assert page.status_code in (403, 422)
    assert "confirm your e-mail address" in page.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Booking.id))) == 0
    # The mailed link confirms the address; then booking works.
    path = _link(mails(passwords.VERIFY_KIND)[0], "/verify")
    assert client.get(path).status_code == 302
    created = client.post("/api/v1/bookings", json=payload, headers=headers)
    assert created.status_code == 201, created.get_json()


def test_unverified_refusal_in_chinese(client: Any, db: Any, make_instrument: Any) -> None:
    set_clock(lambda: NOW)
    inst = make_instrument()
    db.session.commit()
    user = _register(client)
    headers = {**bearer(user), "Accept-Language": "zh-CN"}
    user.locale = "zh_CN"
    db.session.commit()
    payload = {"resource_id": inst.id, "start": START, "end": END, "purpose": "calibration"}
    refused = client.post("/api/v1/bookings", json=payload, headers=headers)
    assert "预约前请先确认您的电子邮箱" in error_of(refused)["message"]


def test_verification_links_expired_reused_tampered_or_stale_are_refused(
    app: Flask, client: Any, db: Any
) -> None:
    set_clock(lambda: NOW)
    user = _register(client)
    token = passwords.verify_token(user)

    def refused(link_token: str) -> None:
        response = client.get(f"/verify/{link_token}")
        assert response.status_code == 400, link_token
        db.session.expire_all()
        assert db.session.get(User, user.id).email_verified_at is None

    set_clock(lambda: NOW + dt.timedelta(hours=72, seconds=1))
    refused(token)
    set_clock(lambda: NOW + dt.timedelta(hours=1))
    refused(token[:-1] + ("A" if token[-1] != "A" else "B"))
    refused(passwords.reset_token(user))  # a reset link is not a verification link
    # for another address: the account's address changed since the link was sent
    user.email = "changed@example.com"
    db.session.commit()
    refused(token)
    user.email = "new.sme@example.com"
    db.session.commit()
    assert client.get(f"/verify/{token}").status_code == 302
    db.session.expire_all()
    confirmed_at = db.session.get(User, user.id).email_verified_at
    assert confirmed_at is not None
    # reused: refused, nothing changes
    set_clock(lambda: NOW + dt.timedelta(hours=2))
    assert client.get(f"/verify/{token}").status_code == 400
    db.session.expire_all()
    assert db.session.get(User, user.id).email_verified_at == confirmed_at


def test_verification_can_be_sent_again(app: Flask, client: Any, db: Any) -> None:
    user = _register(client)
    browser = app.test_client()
    signed = browser.post("/login", data={"email": user.email, "password": PASSWORD})
    hint = browser.get(signed.headers["Location"]).get_data(as_text=True)
    assert "Booking needs a confirmed address." in hint
    assert "not confirmed yet" in browser.get(PROTECTED).get_data(as_text=True)
    later = utcnow() + dt.timedelta(minutes=2)  # one mail a minute at most
    set_clock(lambda: later)
    assert browser.post("/account/verification").status_code == 302
    assert len(mails(passwords.VERIFY_KIND)) == 2


def test_existing_and_factory_accounts_count_as_verified(db: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    assert user.email_verified_at is not None and not passwords.needs_verification(user)


# -- registration does not reveal taken addresses ---------------------------------------


def test_registration_with_a_taken_address_mails_its_owner(
    client: Any, db: Any, make_user: Any
) -> None:
    owner = make_user(Role.SME, email="taken@example.com")
    db.session.commit()
    fresh = client.post(
        "/register",
        data={
            "company_name": "杭州微测科技有限公司", "credit_code": "9144030071526726XG",
            "province": "浙江省", "size": "micro", "name": "张伟", "email": "free@example.com",
            "password": PASSWORD, "confirm": PASSWORD, "locale": "en",
        },
    )  # fmt: skip
    taken = client.post(
        "/register",
        data={
            "company_name": "杭州微测科技有限公司", "credit_code": "91330100716105852F",
            "province": "浙江省", "size": "micro", "name": "Mallory", "email": "Taken@example.com",
            "password": PASSWORD, "confirm": PASSWORD, "locale": "en",
        },
    )  # fmt: skip
    assert fresh.status_code == taken.status_code == 302
    assert fresh.headers["Location"] == taken.headers["Location"]
    assert [n.user_id for n in mails(passwords.ACCOUNT_EXISTS_KIND)] == [owner.id]
    assert db.session.scalar(select(func.count(User.id))) == 2
    db.session.expire_all()
    assert db.session.get(User, owner.id).name != "Mallory"


# -- API tokens ---------------------------------------------------------------------------


def test_personal_tokens_expire_after_90_days(
    app: Flask, client: Any, db: Any, make_user: Any
) -> None:
    set_clock(lambda: NOW)
    user = make_user(Role.SME)
    db.session.commit()
    issued = tokens.create_personal_token(user, "LIMS")
    db.session.commit()
    assert issued.token.expires_at == NOW + dt.timedelta(days=90)
    header = {"Authorization": f"Bearer {issued.secret}"}
    listed = client.get("/api/v1/me/tokens", headers=header).get_json()
    assert [t["name"] for t in listed["items"]] == ["LIMS"]
    assert listed["items"][0]["expires_at"].startswith("2030-04-01")
    browser = signed_in(app, user)
    assert "2030-04-01" in browser.get("/account/tokens").get_data(as_text=True)
    set_clock(lambda: NOW + dt.timedelta(days=90, seconds=1))
    expired = client.get("/api/v1/me", headers=header)
    assert expired.status_code == 401 and error_of(expired)["code"] == "unauthorized"


def test_personal_token_lifetime_is_configurable(
    app: Flask, db: Any, make_user: Any, monkeypatch: Any
) -> None:
    set_clock(lambda: NOW)
    monkeypatch.setitem(app.config, "PERSONAL_TOKEN_DAYS", 7)
    user = make_user(Role.SME)
    issued = tokens.create_personal_token(user, "short")
    assert issued.token.expires_at == NOW + dt.timedelta(days=7)


def test_api_revokes_a_personal_token(client: Any, db: Any, make_user: Any) -> None:
    user, other = make_user(Role.SME), make_user(Role.SME)
    db.session.commit()
    mine = tokens.create_personal_token(user, "one")
    theirs = tokens.create_personal_token(other, "two")
    db.session.commit()
    headers = bearer(user)
    assert (
        client.post(f"/api/v1/me/tokens/{theirs.token.id}/revoke", headers=headers).status_code
        == 404
    )
    revoked = client.post(f"/api/v1/me/tokens/{mine.token.id}/revoke", headers=headers)
    assert revoked.status_code == 200 and revoked.get_json()["name"] == "one"
    db.session.expire_all()
    assert db.session.get(ApiToken, mine.token.id).revoked_at is not None
    assert db.session.get(ApiToken, theirs.token.id).revoked_at is None


def test_login_token_keeps_its_ttl(client: Any, db: Any, make_user: Any) -> None:
    set_clock(lambda: NOW)
    user = make_user(Role.SME)
    db.session.commit()
    body = client.post("/api/v1/auth/token", json={"email": user.email, "password": PASSWORD})
    assert body.get_json()["expires_at"] == (NOW + dt.timedelta(hours=24)).isoformat()
    assert utcnow() == NOW


@pytest.fixture(autouse=True)
def _factories_available(app: Flask) -> None:
    assert factories.PASSWORD == PASSWORD
