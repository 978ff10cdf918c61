"""Registration, login, logout, `next`, role gates and CSRF over HTTP."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from config import TestingConfig
from labshare import create_app
from labshare.extensions import db as _db
from labshare.models import Company, Role, User
from tests.factories import PASSWORD
from tests.helpers import count_rows

GOOD_CODE = "9144030071526726XG"


def _form(**kw: Any) -> dict[str, str]:
    data = {
        "company_name": "杭州微测科技有限公司",
        "credit_code": GOOD_CODE,
        "province": "浙江省",
        "industry": "传感器",
        "size": "micro",
        "name": "张伟",
        "email": "zhang.wei@example.com",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "locale": "en",
    }
    data.update(kw)
    return data


def _field_error(html: str, field: str) -> str:
    found = re.search(rf'id="{field}-error"[^>]*>(.*?)</p>', html, re.S)
    assert found, f"no error shown next to {field}"
    return found.group(1).strip()


def test_register_creates_company_and_asks_to_confirm_the_address(client: Any, db: Any) -> None:
    response = client.post("/register", data=_form())
    assert response.status_code == 302
    assert response.headers["Location"] == "/register/sent"
    user = db.session.scalar(select(User))
    assert user.email == "zhang.wei@example.com"
    assert user.company.credit_code == GOOD_CODE
    assert user.locale == "en"
    assert user.email_verified_at is None
    assert "Check your mailbox" in client.get("/register/sent").get_data(as_text=True)
    # Not signed in until the owner signs in; then the account works (unverified).
    assert "Log in" in client.get("/").get_data(as_text=True)
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    page = client.get("/").get_data(as_text=True)
    assert "张伟" in page and "Log out" in page


@pytest.mark.parametrize(
    ("kw", "field", "text"),
    [
        ({"credit_code": GOOD_CODE[:-1] + "Y"}, "credit_code", "check character"),
        ({"credit_code": "91440300"}, "credit_code", "18 characters"),
        ({"password": "short", "confirm": "short"}, "password", "at least 10"),
        (
            {"password": "password123", "confirm": "password123"},
            "password",
            "too common",
        ),
        ({"confirm": PASSWORD + "x"}, "confirm", "do not match"),
        ({"email": "not an email"}, "email", "not a valid email"),
        ({"company_name": ""}, "company_name", "fill in"),
        ({"province": "Atlantis"}, "province", ""),
    ],
)
def test_registration_errors_name_the_field_and_write_nothing(
    client: Any, db: Any, kw: dict[str, str], field: str, text: str
) -> None:
    response = client.post("/register", data=_form(**kw))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert text in _field_error(html, field)
    # what the user typed is kept (except passwords)
    assert 'value="zhang.wei@example.com"' in html or field == "email"
    assert "杭州微测科技有限公司" in html or field == "company_name"
    assert PASSWORD not in html
    assert count_rows(User) == 0
    assert count_rows(Company) == 0


def test_duplicate_email_in_another_case_answers_as_for_a_new_one(
    client: Any, db: Any, make_user: Any
) -> None:
    make_user(email="zhang.wei@example.com")
    db.session.commit()
    response = client.post("/register", data=_form(email="Zhang.Wei@EXAMPLE.com"))
    assert response.status_code == 302
    assert response.headers["Location"] == "/register/sent"
    assert count_rows(User) == 1
    assert count_rows(Company) == 1  # only the factory's company


def test_register_page_redirects_signed_in_users(client: Any, login: Any, make_user: Any) -> None:
    login(make_user(Role.SME))
    assert client.get("/register").status_code == 302


def test_login_and_logout(client: Any, db: Any, login: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    response = login(user)
    assert response.headers["Location"] == "/"
    with client.session_transaction() as sess:
        assert sess["_user_id"] == user.get_id()
    assert client.get("/logout").status_code == 405  # logging out needs a POST
    response = client.post("/logout")
    assert response.status_code == 302
    with client.session_transaction() as sess:
        assert "_user_id" not in sess
    assert "Log in" in client.get("/").get_data(as_text=True)


def test_login_refusal_is_generic_and_keeps_the_email(client: Any, db: Any, make_user: Any) -> None:
    make_user(email="known@example.com")
    db.session.commit()
    wrong = client.post("/login", data={"email": "known@example.com", "password": "nope nope!"})
    unknown = client.post("/login", data={"email": "who@example.com", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    for response in (wrong, unknown):
        assert "Wrong email address or password" in response.get_data(as_text=True)
    assert 'value="known@example.com"' in wrong.get_data(as_text=True)
    with client.session_transaction() as sess:
        assert "_user_id" not in sess


def test_deactivated_user_cannot_log_in_and_loses_session(
    client: Any, db: Any, login: Any, make_user: Any
) -> None:
    user = make_user(Role.ADMIN)
    db.session.commit()
    login(user)
    assert client.get("/admin/users").status_code == 200
    user.active = False
    db.session.commit()
    assert client.get("/admin/users").status_code == 302  # the old session is void
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 401


def test_session_is_renewed_at_login(client: Any, db: Any, make_user: Any) -> None:
    user = make_user()
    db.session.commit()
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"] == user.get_id()


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "/\\evil.com",
        "https://evil.com",
        "////evil.com/x",
        "http:/evil.com",
        "javascript:alert(1)",
        "\\\\evil.com",
        "/%0a/evil.com\r\n",
    ],
)
def test_next_never_leaves_the_site(client: Any, db: Any, make_user: Any, target: str) -> None:
    user = make_user()
    db.session.commit()
    # via the hidden field of the form, and via the query string of the page
    page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    hidden = re.search(r'<input id="next" name="next" type="hidden" value="([^"]*)"', page)
    assert hidden is not None and hidden.group(1) == ""
    response = client.post(
        "/login", data={"email": user.email, "password": PASSWORD, "next": target}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_to_a_local_page_is_followed(client: Any, db: Any, make_user: Any) -> None:
    user = make_user()
    db.session.commit()
    page = client.get("/login?next=/catalogue%3Fq%3Dpressure").get_data(as_text=True)
    assert 'value="/catalogue?q=pressure"' in page
    response = client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "next": "/catalogue?q=pressure"},
    )
    assert response.headers["Location"] == "/catalogue?q=pressure"


def test_anonymous_is_sent_to_login_with_next(client: Any) -> None:
    response = client.get("/admin/users")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


ADMIN_PAGES = ["/admin/users", "/admin/users/new"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
@pytest.mark.parametrize(
    ("role", "status"),
    [(None, 302), (Role.SME, 403), (Role.STAFF, 403), (Role.ADMIN, 200)],
)
def test_admin_pages_are_role_gated(
    client: Any, db: Any, login: Any, make_user: Any, path: str, role: Role | None, status: int
) -> None:
    if role is not None:
        login(make_user(role))
    assert client.get(path).status_code == status


@pytest.mark.parametrize("role", [None, Role.SME, Role.STAFF])
def test_admin_actions_are_role_gated(
    client: Any, db: Any, login: Any, make_user: Any, role: Role | None
) -> None:
    victim = make_user(Role.SME)
    db.session.commit()
    if role is not None:
        login(make_user(role))
    response = client.post(f"/admin/users/{victim.id}/active", data={"active": "0"})
    assert response.status_code == (302 if role is None else 403)
    created = client.post(
        "/admin/users/new",
        data={
            "role": "admin",
            "institute": "",
            "name": "Mallory",
            "email": "mallory@example.com",
            "password": PASSWORD,
            "confirm": PASSWORD,
            "locale": "en",
        },
    )
    assert created.status_code == (302 if role is None else 403)
    db.session.expire_all()
    assert db.session.get(User, victim.id).active is True
    assert db.session.scalar(select(User).where(User.email == "mallory@example.com")) is None


def test_admin_creates_staff_and_deactivates(
    client: Any, db: Any, login: Any, make_user: Any, make_institute: Any
) -> None:
    admin = make_user(Role.ADMIN)
    institute = make_institute()
    db.session.commit()
    login(admin)
    base = {
        "role": "staff",
        "name": "王工",
        "email": "Staff@Example.com",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "locale": "zh_CN",
    }
    missing = client.post("/admin/users/new", data={**base, "institute": ""})
    assert missing.status_code == 422
    assert "needs an institute" in _field_error(missing.get_data(as_text=True), "institute")
    assert count_rows(User) == 1

    response = client.post("/admin/users/new", data={**base, "institute": str(institute.id)})
    assert response.status_code == 302
    staff = db.session.scalar(select(User).where(User.email == "staff@example.com"))
    assert staff.role is Role.STAFF and staff.institute_id == institute.id
    assert "staff@example.com" in client.get("/admin/users").get_data(as_text=True)

    response = client.post(f"/admin/users/{staff.id}/active", data={"active": "0"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, staff.id).active is False
    refused = client.post(f"/admin/users/{admin.id}/active", data={"active": "0"})
    assert refused.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, admin.id).active is True


def test_admin_user_list_filters(client: Any, db: Any, login: Any, make_user: Any) -> None:
    admin = make_user(Role.ADMIN, email="boss@example.com")
    make_user(Role.SME, email="sme-one@example.com")
    make_user(Role.STAFF, email="staff-one@example.com")
    db.session.commit()
    login(admin)
    page = client.get("/admin/users?role=staff").get_data(as_text=True)
    assert "staff-one@example.com" in page and "sme-one@example.com" not in page
    page = client.get("/admin/users?q=SME-ONE").get_data(as_text=True)
    assert "sme-one@example.com" in page and "staff-one@example.com" not in page


@pytest.fixture
def csrf_app(app: Flask) -> Any:
    """A second app on the same database, with CSRF protection on (the test
    configuration switches it off for the other tests)."""
    strict = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        INSTANCE_DIR=app.config["INSTANCE_DIR"],
        WTF_CSRF_ENABLED=True,
    )
    yield strict
    with strict.app_context():
        _db.session.remove()
        _db.engine.dispose()


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_csrf_is_enforced_when_enabled(csrf_app: Flask, db: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    client = csrf_app.test_client()
    refused = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert refused.status_code == 400
    token = _token(client.get("/login").get_data(as_text=True))
    accepted = client.post(
        "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}
    )
    assert accepted.status_code == 302
    # the token of the old (pre-login) session still names this session's secret
    page = client.get("/").get_data(as_text=True)
    assert client.post("/logout").status_code == 400  # no token: still signed in
    assert client.post("/language", data={"locale": "en"}).status_code == 400
    assert client.post("/logout", data={"csrf_token": _token(page)}).status_code == 302
    with client.session_transaction() as sess:
        assert "_user_id" not in sess


def test_scrypt_is_checked_at_start_up(monkeypatch: Any) -> None:
    import hashlib

    monkeypatch.delattr(hashlib, "scrypt")
    with pytest.raises(RuntimeError, match="scrypt"):
        create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://", INSTANCE_DIR="/tmp")
