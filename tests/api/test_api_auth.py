"""Bearer tokens: login tokens, personal tokens from the web page, /me, and that
the API never rides on the session cookie."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

import pytest
from sqlalchemy import select

from labshare.models import ApiToken, Role
from labshare.timeutil import set_clock
from tests.factories import PASSWORD
from tests.helpers import NOW, bearer, check_schema, error_of


def test_token_for_email_and_password(db: Any, client: Any, make_user: Any) -> None:
    set_clock(lambda: NOW)
    user = make_user(Role.SME, email="anna@example.com")
    db.session.commit()
    response = client.post(
        "/api/v1/auth/token", json={"email": "Anna@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"token", "expires_at"}
    assert dt.datetime.fromisoformat(body["expires_at"]) == NOW + dt.timedelta(hours=24)
    # Only the SHA-256 digest is stored, never the secret.
    stored = db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).one()
    assert stored.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
    assert body["token"] not in (stored.token_hash, stored.prefix)

    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.get_json()["email"] == "anna@example.com"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"email": "anna@example.com", "password": "wrong"}, 401, "unauthorized"),
        ({"email": "nobody@example.com", "password": PASSWORD}, 401, "unauthorized"),
        ({"email": "anna@example.com"}, 422, "validation_error"),
        ({"email": "anna@example.com", "password": 12345}, 400, "bad_request"),
    ],
)
def test_token_refused(
    db: Any, client: Any, make_user: Any, payload: dict[str, Any], status: int, code: str
) -> None:
    make_user(Role.SME, email="anna@example.com")
    db.session.commit()
    response = client.post("/api/v1/auth/token", json=payload)
    assert response.status_code == status
    assert error_of(response)["code"] == code
    assert db.session.scalar(select(ApiToken.id)) is None


def test_token_malformed_json(client: Any) -> None:
    response = client.post("/api/v1/auth/token", data="{email:", content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"


def test_missing_invalid_expired_and_revoked_tokens_are_401(
    db: Any, client: Any, make_user: Any
) -> None:
    set_clock(lambda: NOW)
    user = make_user(Role.SME)
    headers = bearer(user)
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    assert error_of(client.get("/api/v1/me"))["code"] == "unauthorized"
    for value in ("Bearer nope", "Basic abc", "Bearer ", headers["Authorization"] + "x"):
        response = client.get("/api/v1/me", headers={"Authorization": value})
        assert response.status_code == 401, value

    set_clock(lambda: NOW + dt.timedelta(hours=24, seconds=1))
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert "expired" in error_of(response)["message"]


def test_deactivated_user_token_is_401(db: Any, client: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    headers = bearer(user)
    user.active = False
    db.session.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_me(db: Any, client: Any, make_user: Any, make_institute: Any) -> None:
    sme = make_user(Role.SME)
    staff = make_user(Role.STAFF)
    assert sme.calendar_token is None
    body = client.get("/api/v1/me", headers=bearer(sme)).get_json()
    check_schema(client, "MeOut", body)
    assert body["role"] == "sme"
    assert body["company"]["id"] == sme.company_id
    assert body["institute"] is None
    url = body["calendar_feed_url"]
    assert re.fullmatch(r"https?://[^/]+/calendar/[A-Za-z0-9_-]{40,}\.ics", url)
    # Created once, then stable.
    again = client.get("/api/v1/me", headers=bearer(sme)).get_json()
    assert again["calendar_feed_url"] == url
    db.session.expire_all()
    assert sme.calendar_token and url.endswith(f"/{sme.calendar_token}.ics")

    body = client.get("/api/v1/me", headers=bearer(staff)).get_json()
    assert body["company"] is None
    assert body["institute"] == {
        "id": staff.institute.id,
        "code": staff.institute.code,
        "name": staff.institute.name,
    }


def test_session_cookie_is_not_an_api_login(
    db: Any, client: Any, login: Any, make_user: Any
) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    login(user)
    response = client.get("/api/v1/me")
    assert response.status_code == 401


def test_api_needs_no_csrf_token(
    app: Any, db: Any, client: Any, login: Any, make_user: Any
) -> None:
    user = make_user(Role.SME, email="csrf@example.com")
    db.session.commit()
    login(user)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = client.post(
            "/api/v1/auth/token", json={"email": "csrf@example.com", "password": PASSWORD}
        )
        assert response.status_code == 200
        headers = {"Authorization": f"Bearer {response.get_json()['token']}"}
        response = client.post("/api/v1/bookings/999/cancel", json={}, headers=headers)
        assert response.status_code == 404  # reached the handler: no CSRF refusal
        # ...while the web form still requires one.
        assert client.post("/account/tokens", data={"name": "x"}).status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert db.session.scalar(select(ApiToken.id).where(ApiToken.personal.is_(True))) is None


# -- the web page for personal tokens --------------------------------------------------


def _new_secret(html: str) -> str:
    match = re.search(r'<code id="new-token">([^<]+)</code>', html)
    assert match, html[:2000]
    return match.group(1)


def test_personal_token_created_shown_once_and_revoked(
    db: Any, client: Any, login: Any, make_user: Any
) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    login(user)
    page = client.get("/account/tokens")
    assert page.status_code == 200
    assert "/calendar/" in page.get_data(as_text=True)

    created = client.post("/account/tokens", data={"name": "LIMS sync"})
    assert created.status_code == 200
    secret = _new_secret(created.get_data(as_text=True))
    token = db.session.scalars(select(ApiToken).where(ApiToken.personal.is_(True))).one()
    assert token.name == "LIMS sync"
    assert token.expires_at is not None  # PERSONAL_TOKEN_DAYS (90) from now
    assert token.expires_at - token.created_at == dt.timedelta(days=90)
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    # Shown once: the list page afterwards shows only its prefix.
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert secret not in listing and token.prefix in listing

    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    response = client.post(f"/account/tokens/{token.id}/revoke")
    assert response.status_code == 302
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    client.get("/account/tokens")  # the flash message
    assert token.prefix not in client.get("/account/tokens").get_data(as_text=True)


def test_personal_token_needs_a_name(db: Any, client: Any, login: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    login(user)
    response = client.post("/account/tokens", data={"name": "  "})
    assert response.status_code == 422
    assert db.session.scalar(select(ApiToken.id)) is None


def test_cannot_revoke_another_users_token(
    db: Any, client: Any, login: Any, make_user: Any
) -> None:
    from labshare.accounts.tokens import create_personal_token

    owner = make_user(Role.SME)
    other = make_user(Role.SME)
    issued = create_personal_token(owner, "mine")
    db.session.commit()
    login(other)
    response = client.post(f"/account/tokens/{issued.token.id}/revoke")
    assert response.status_code == 404
    db.session.expire_all()
    assert issued.token.revoked_at is None


def test_token_page_needs_login(client: Any) -> None:
    response = client.get("/account/tokens")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_calendar_link_reset(db: Any, client: Any, login: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    login(user)
    client.get("/account/tokens")
    db.session.expire_all()
    old = user.calendar_token
    assert old
    assert client.get(f"/calendar/{old}.ics").status_code == 200
    assert client.post("/account/calendar/reset").status_code == 302
    db.session.expire_all()
    assert user.calendar_token and user.calendar_token != old
    assert client.get(f"/calendar/{old}.ics").status_code == 404
