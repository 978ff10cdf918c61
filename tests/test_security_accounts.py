"""Accounts under attack: failed-login lockout with a growing delay (audited), the
password policy, session cookie flags, session renewal at login."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from config import Config, ProductionConfig, TestingConfig
from labshare import create_app
from labshare.errors import Unauthorized, ValidationFailed
from labshare.extensions import db as _db
from labshare.models import AuditLog, Role, User
from labshare.services import accounts
from labshare.timeutil import set_clock
from tests.factories import PASSWORD

T0 = dt.datetime(2030, 3, 1, 8, 0, tzinfo=dt.UTC)
WRONG = "not the password 42"


def _actions(db: Any) -> list[str]:
    return list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def _fail(email: str, password: str = WRONG) -> str:
    with pytest.raises(Unauthorized) as caught:
        accounts.authenticate(email, password)
    _db.session.commit()  # as the views do
    return str(caught.value.message)


def test_lock_duration_grows_and_is_capped() -> None:
    assert [accounts.lock_duration(n) for n in range(5)] == [dt.timedelta(0)] * 5
    assert accounts.lock_duration(5) == dt.timedelta(minutes=1)
    assert accounts.lock_duration(6) == dt.timedelta(minutes=2)
    assert accounts.lock_duration(7) == dt.timedelta(minutes=4)
    assert accounts.lock_duration(12) == dt.timedelta(hours=1)
    assert accounts.lock_duration(1000) == dt.timedelta(hours=1)


def test_failures_lock_the_account_even_for_the_right_password(db: Any, make_user: Any) -> None:
    set_clock(lambda: T0)
    user = make_user(Role.SME)
    db.session.commit()
    for _ in range(accounts.LOCK_AFTER - 1):
        assert _fail(user.email) == "Wrong email address or password."
    assert user.failed_logins == 4 and user.locked_until is None
    _fail(user.email)
    assert user.failed_logins == 5
    assert user.locked_until == T0 + dt.timedelta(minutes=1)
    message = _fail(user.email, PASSWORD)
    assert "locked" in message
    assert user.failed_logins == 5  # a locked attempt is not checked, not counted
    # After the lock the right password works and resets the count.
    set_clock(lambda: T0 + dt.timedelta(minutes=1, seconds=1))
    assert accounts.authenticate(user.email, PASSWORD) is user
    db.session.commit()
    assert user.failed_logins == 0 and user.locked_until is None
    actions = _actions(db)
    assert actions.count("login_failed") == 5
    assert actions.count("account_locked") == 1
    assert actions.count("login_refused_locked") == 1
    assert actions[-1] == "login"


def test_each_further_failure_doubles_the_lock(db: Any, make_user: Any) -> None:
    now = T0
    set_clock(lambda: now)
    user = make_user(Role.SME)
    db.session.commit()
    for _ in range(5):
        _fail(user.email)
    now = T0 + dt.timedelta(minutes=2)  # the 1-minute lock is over
    _fail(user.email)
    assert user.failed_logins == 6
    assert user.locked_until == now + dt.timedelta(minutes=2)


def test_unknown_email_failure_is_audited_without_a_user(db: Any) -> None:
    _fail("nobody@example.com")
    entry = db.session.scalar(select(AuditLog))
    assert entry.action == "login_failed"
    assert entry.object_id is None and entry.actor_id is None
    assert entry.data == {"email": "nobody@example.com"}


def test_web_login_keeps_the_count_and_shows_the_lock(client: Any, db: Any, make_user: Any) -> None:
    set_clock(lambda: T0)
    user = make_user(Role.SME)
    db.session.commit()
    for _ in range(5):
        response = client.post("/login", data={"email": user.email, "password": WRONG})
        assert response.status_code == 401
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 401
    assert "locked" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).failed_logins == 5


def test_api_token_failures_count_too(client: Any, db: Any, make_user: Any) -> None:
    set_clock(lambda: T0)
    user = make_user(Role.SME)
    db.session.commit()
    for _ in range(5):
        body = {"email": user.email, "password": WRONG}
        assert client.post("/api/v1/auth/token", json=body).status_code == 401
    response = client.post("/api/v1/auth/token", json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 401
    assert "locked" in response.get_json()["error"]["message"]


def test_successful_login_is_audited(client: Any, db: Any, make_user: Any, login: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    login(user)
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "login"))
    assert entry.actor_id == user.id and entry.object_id == user.id


# -- the password policy ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("", "at least 10"),
        ("Xk7#pq2", "at least 10"),
        ("Xk7#pq2Lm", "at least 10"),  # 9 characters
        ("wang.fang@example.com", "email"),
        ("WANG.FANG@EXAMPLE.COM", "email"),
        ("my-wang.fang-pass", "email"),  # contains the name part
        ("password123", "common"),
        ("PassWord123", "common"),  # case-insensitive
        ("woaini1314", "common"),
        ("1234567890", "common"),
        ("abababababab", "common"),  # two characters repeated
    ],
)
def test_password_policy_refusals(password: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        accounts.check_password_policy(password, "wang.fang@example.com")
    assert caught.value.field == "password"
    assert fragment in str(caught.value.message)


@pytest.mark.parametrize("password", ["Xk7#pq2Lm0", PASSWORD, "标定压力变送器的密码很长"])
def test_password_policy_accepts(password: str) -> None:
    accounts.check_password_policy(password, "wang.fang@example.com")


def test_registration_applies_the_policy(client: Any, db: Any) -> None:
    response = client.post(
        "/register",
        data={
            "company_name": "杭州微测科技有限公司",
            "credit_code": "9144030071526726XG",
            "province": "浙江省",
            "size": "micro",
            "name": "张伟",
            "email": "zhang.wei@example.com",
            "password": "password123",
            "confirm": "password123",
            "locale": "en",
        },
    )
    assert response.status_code == 422
    assert "too common" in response.get_data(as_text=True)
    assert db.session.scalar(select(User)) is None


# -- cookies and the session ----------------------------------------------------------


def _cookie(response: Any, name: str) -> str:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no {name} cookie in {response.headers.getlist('Set-Cookie')}")


def test_config_cookie_flags() -> None:
    for cfg in (Config, TestingConfig, ProductionConfig):
        assert cfg.SESSION_COOKIE_HTTPONLY is True
        assert cfg.SESSION_COOKIE_SAMESITE == "Lax"
        assert cfg.REMEMBER_COOKIE_HTTPONLY is True
        assert cfg.REMEMBER_COOKIE_SAMESITE == "Lax"
    assert ProductionConfig.SESSION_COOKIE_SECURE is True
    assert ProductionConfig.REMEMBER_COOKIE_SECURE is True


def test_session_cookie_is_httponly_and_lax(client: Any, db: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    cookie = _cookie(response, "session")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http in development and tests


def test_production_session_cookie_is_secure(app: Flask, tmp_path: Any, make_user: Any) -> None:
    class Prod(ProductionConfig):
        SECRET_KEY = "production-test-secret"
        SQLALCHEMY_DATABASE_URI = app.config["SQLALCHEMY_DATABASE_URI"]

    user = make_user(Role.SME)
    _db.session.commit()
    prod = create_app(
        Prod, INSTANCE_DIR=str(tmp_path), WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False
    )
    try:
        response = prod.test_client().post(
            "/login", data={"email": user.email, "password": PASSWORD}
        )
        assert response.status_code == 302
        cookie = _cookie(response, "session")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        with prod.app_context():
            _db.engine.dispose()


def test_session_cookie_changes_at_login(client: Any, db: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    client.get("/login")
    with client.session_transaction() as sess:
        sess["planted"] = "fixation"
    before = client.get_cookie("session")
    assert before is not None
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    after = client.get_cookie("session")
    assert after is not None and after.value != before.value
    with client.session_transaction() as sess:
        assert "planted" not in sess and sess["_user_id"] == str(user.id)
