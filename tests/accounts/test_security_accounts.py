"""Accounts under attack: the failed-login throttle per (account, address) with a
capped delay (audited), the password policy, session cookie flags, session renewal at login."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from config import Config, ProductionConfig, TestingConfig
from labshare import create_app
from labshare.accounts import accounts
from labshare.errors import Unauthorized, ValidationFailed
from labshare.extensions import db as _db
from labshare.models import AuditLog, LoginThrottle, Role, User
from labshare.timeutil import set_clock
from tests.factories import PASSWORD

T0 = dt.datetime(2030, 3, 1, 8, 0, tzinfo=dt.UTC)
WRONG = "not the password 42"


def _actions(db: Any) -> list[str]:
    return list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


REFUSAL = "Wrong email address or password, or too many attempts: wait a minute and try again."


def _fail(email: str, password: str = WRONG, client: str = "203.0.113.7") -> str:
    with pytest.raises(Unauthorized) as caught:
        accounts.authenticate(email, password, client=client)
    _db.session.commit()  # as the views do
    return str(caught.value.message)


def test_throttle_delay_grows_and_is_capped(app: Flask) -> None:
    delay = accounts.throttle_delay
    assert [delay(n) for n in range(5)] == [dt.timedelta(0)] * 5
    assert delay(5) == dt.timedelta(seconds=15)
    assert delay(6) == dt.timedelta(seconds=30)
    assert delay(7) == dt.timedelta(minutes=1)
    assert delay(12) == dt.timedelta(minutes=15)
    assert delay(1000) == dt.timedelta(minutes=15)


def test_failures_throttle_the_pair_even_for_the_right_password(db: Any, make_user: Any) -> None:
    set_clock(lambda: T0)
    user = make_user(Role.SME)
    db.session.commit()
    for _ in range(accounts.THROTTLE_AFTER):
        assert _fail(user.email) == REFUSAL
    # Throttled: even the right password is refused, with the very same message.
    assert _fail(user.email, PASSWORD) == REFUSAL
    # After the delay the right password works and forgets the failures.
    set_clock(lambda: T0 + dt.timedelta(seconds=16))
    assert accounts.authenticate(user.email, PASSWORD, client="203.0.113.7") is user
    db.session.commit()
    assert db.session.scalar(select(LoginThrottle)) is None
    actions = _actions(db)
    assert actions.count("login_failed") == 5
    assert actions.count("login_throttled") == 1
    assert actions[-1] == "login"


def test_the_owner_is_never_locked_out_from_another_address(db: Any, make_user: Any) -> None:
    """A stranger hammering an account slows only their own (account, address) pair."""
    set_clock(lambda: T0)
    user = make_user(Role.STAFF)
    db.session.commit()
    for _ in range(50):
        _fail(user.email, client="198.51.100.66")
    assert _fail(user.email, PASSWORD, client="198.51.100.66") == REFUSAL
    assert accounts.authenticate(user.email, PASSWORD, client="203.0.113.7") is user
    db.session.commit()
    # Even from the stranger's address the wait is capped.
    set_clock(lambda: T0 + dt.timedelta(minutes=15, seconds=1))
    assert accounts.authenticate(user.email, PASSWORD, client="198.51.100.66") is user


def test_unknown_account_wrong_password_and_throttle_read_the_same(db: Any, make_user: Any) -> None:
    set_clock(lambda: T0)
    user = make_user(Role.SME)
    db.session.commit()
    unknown = [_fail("nobody@example.com") for _ in range(6)]
    wrong = [_fail(user.email) for _ in range(6)]
    assert set(unknown) == set(wrong) == {REFUSAL}
    # An unknown address is throttled exactly like a real one (the sixth attempt of
    # each waits and is not counted).
    rows = {r.email: r.failures for r in db.session.scalars(select(LoginThrottle))}
    assert rows == {"nobody@example.com": 5, user.email: 5}


def test_unknown_email_failure_is_audited_without_a_user(db: Any) -> None:
    _fail("nobody@example.com")
    entry = db.session.scalar(select(AuditLog))
    assert entry.action == "login_failed"
    assert entry.object_id is None and entry.actor_id is None
    assert entry.data == {"email": "nobody@example.com", "client": "203.0.113.7"}


def test_web_and_api_refusals_are_identical(client: Any, db: Any, make_user: Any) -> None:
    set_clock(lambda: T0)
    user = make_user(Role.SME)
    db.session.commit()
    pages = [
        client.post("/login", data={"email": e, "password": p})
        for e, p in [("nobody@example.com", WRONG)] + [(user.email, WRONG)] * 5
    ]
    throttled = client.post("/login", data={"email": user.email, "password": PASSWORD})
    for response in (*pages, throttled):
        assert response.status_code == 401
        assert REFUSAL in response.get_data(as_text=True)
    api = client.post("/api/v1/auth/token", json={"email": user.email, "password": PASSWORD})
    assert api.status_code == 401
    assert api.get_json()["error"]["message"] == REFUSAL
    unknown = client.post("/api/v1/auth/token", json={"email": "x@example.com", "password": WRONG})
    assert unknown.get_json()["error"]["message"] == REFUSAL


def test_a_reactivated_account_may_sign_in_again(client: Any, db: Any, make_user: Any) -> None:
    set_clock(lambda: T0)
    user = make_user(Role.SME)
    user.active = False
    db.session.commit()
    assert _fail(user.email, PASSWORD) == REFUSAL
    user.active = True
    db.session.commit()
    assert accounts.authenticate(user.email, PASSWORD, client="203.0.113.7") is user


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
        SECRET_KEY = "production-test-secret-of-at-least-32-characters"
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
        assert "planted" not in sess and sess["_user_id"] == user.get_id()


def test_simultaneous_failures_all_count_without_errors(
    app: Flask, db: Any, make_user: Any
) -> None:
    """Eight wrong passwords at the same instant, from one address, in eight threads:
    each is refused with the usual message and counted once (an atomic upsert, under
    SQLite's writer lock), none is a database error."""
    from tests import raceutil

    # No throttling here: an attempt inside a throttle's delay is refused uncounted,
    # and with a fast hash some threads would arrive after the fifth failure.
    app.config["LOGIN_THROTTLE_AFTER"] = 100
    user = make_user(Role.SME)
    db.session.commit()
    email = user.email
    db.session.remove()

    def step() -> Any:
        def action() -> str:
            try:
                accounts.authenticate(email, WRONG, client="203.0.113.7")
            except Unauthorized as exc:
                _db.session.commit()  # as the views do
                return str(exc.message)
            return "accepted"

        return action

    outcomes = raceutil.race(app, [step for _ in range(8)])
    results = [o.value if o.error is None else raceutil.error_label(o.error) for o in outcomes]
    assert results == [REFUSAL] * 8
    row = _db.session.scalar(select(LoginThrottle))
    assert row is not None and row.failures == 8
