"""Security headers on every kind of response, tokens stored hashed, user text
escaped on the pages, upload limits, and the audit trail of admin actions."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from labshare.accounts import tokens
from labshare.catalogue import importer
from labshare.catalogue.importer import ImportRefused
from labshare.extensions import db as _db
from labshare.models import ApiToken, AuditLog, BookingStatus, Role
from tests.factories import PASSWORD

SCRIPT = '<script>alert("x")</script>'


def check_headers(response: Any) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, csp
    assert directives.get("script-src") == "script-src 'self'", csp
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", csp
    assert directives.get("object-src") == "object-src 'none'", csp
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("Referrer-Policy") == "strict-origin-when-cross-origin"
    assert response.headers.get("X-Frame-Options") == "DENY"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/login", 200),
        ("GET", "/catalogue", 200),
        ("GET", "/static/css/app.css", 200),
        ("GET", "/static/js/pages.js", 200),
        ("GET", "/static/nothing-here.css", 404),
        ("GET", "/no/such/page", 404),
        ("GET", "/admin/users", 302),
        ("POST", "/", 405),
        ("GET", "/api/v1/openapi.json", 200),
        ("GET", "/api/v1/bookings", 401),
        ("GET", "/api/v1/nothing", 404),
        ("GET", "/healthz", 200),
    ],
)
def test_security_headers_on_every_response(
    client: Any, method: str, path: str, status: int
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    check_headers(response)


def test_security_headers_on_a_500(app: Flask, client: Any, monkeypatch: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setitem(app.view_functions, "main.home", broken)
    response = client.get("/")
    assert response.status_code == 500
    check_headers(response)
    page = response.get_data(as_text=True)
    assert "boom" not in page and "Traceback" not in page


def test_templates_hold_no_inline_script_or_handler() -> None:
    """The CSP forbids inline scripts; a template that used one would break silently."""
    import re
    from pathlib import Path

    offenders = []
    for path in Path("templates").rglob("*.html"):
        source = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", source):
            offenders.append(f"{path}: inline <script>")
        if re.search(r"\son[a-z]+\s*=", source):
            offenders.append(f"{path}: inline event handler")
        if "javascript:" in source:
            offenders.append(f"{path}: javascript: URL")
    assert offenders == []


# -- tokens ---------------------------------------------------------------------------


def _all_text(db: Any) -> str:
    """Every value of every table, as text (a plaintext secret would show up here)."""
    chunks = []
    for table in _db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            chunks.extend(str(v) for v in row)
    return "\n".join(chunks)


def test_api_tokens_are_stored_hashed(client: Any, db: Any, make_user: Any, login: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    issued = client.post("/api/v1/auth/token", json={"email": user.email, "password": PASSWORD})
    secret = issued.get_json()["token"]
    login(user)
    page = client.post("/account/tokens", data={"name": "laptop"})
    assert page.status_code == 200
    found = re.search(r'<code id="new-token">([^<]+)</code>', page.get_data(as_text=True))
    assert found is not None
    personal = found.group(1)
    rows = db.session.scalars(select(ApiToken)).all()
    assert len(rows) == 2
    dump = _all_text(db)
    for plaintext in (secret, personal):
        assert plaintext not in dump
        assert tokens.digest(plaintext) in {row.token_hash for row in rows}
    # Shown once: the token list shows its prefix only.
    again = client.get("/account/tokens").get_data(as_text=True)
    assert personal not in again and 'id="new-token"' not in again
    assert personal[:8] in again


# -- escaping ---------------------------------------------------------------------------


def test_user_text_is_escaped_on_the_pages(
    client: Any,
    db: Any,
    login: Any,
    make_booking: Any,
    make_company: Any,
    make_instrument: Any,
    make_user: Any,
) -> None:
    inst = make_instrument()
    company = make_company(name=SCRIPT)
    sme = make_user(Role.SME, company=company, name=SCRIPT)
    staff = make_user(Role.STAFF, institute=inst.institute)
    booking = make_booking(resource=inst, user=sme, purpose=SCRIPT, status=BookingStatus.PENDING)
    db.session.commit()
    login(sme)
    pages = [client.get(f"/bookings/{booking.id}"), client.get("/bookings")]
    client.post("/logout")
    login(staff)
    pages.append(client.get("/manage"))
    for response in pages:
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert SCRIPT not in html
    assert "&lt;script&gt;" in pages[0].get_data(as_text=True)
    assert "&lt;script&gt;" in pages[2].get_data(as_text=True)


def test_api_returns_user_text_as_data(client: Any, db: Any, make_user: Any) -> None:
    from tests.helpers import bearer

    user = make_user(Role.SME)
    user.company.name = SCRIPT
    db.session.commit()
    response = client.get("/api/v1/me", headers=bearer(user))
    assert response.content_type.startswith("application/json")
    assert response.get_json()["company"]["name"] == SCRIPT


# -- uploads ------------------------------------------------------------------------------


def test_request_bodies_are_capped(app: Flask, client: Any) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    api = client.post("/api/v1/auth/token", data=big, content_type="application/json")
    assert api.status_code == 413
    assert api.get_json()["error"]["code"] == "payload_too_large"
    check_headers(api)


def test_upload_over_the_limit_is_refused(client: Any, db: Any, login: Any, make_user: Any) -> None:
    staff = make_user(Role.STAFF)
    db.session.commit()
    login(staff)
    response = client.post(
        "/manage/import",
        data={"file": (io.BytesIO(b"a" * (1024 * 1024 + 10)), "big.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("list.exe", b"MZ", "xlsx or .csv"),
        ("list.pdf", b"%PDF-1.4", "xlsx or .csv"),
        ("list", b"a,b", "xlsx or .csv"),
        ("list.xlsx", b"not a zip at all", "not an .xlsx"),
        ("list.csv", b"lab,name\n" + b"x" * importer.MAX_BYTES, "at most"),
    ],
)
def test_importer_refuses_type_and_size(name: str, content: bytes, fragment: str) -> None:
    with pytest.raises(ImportRefused) as caught:
        importer.read_table(name, content)
    assert caught.value.field == "file"
    assert fragment in str(caught.value.message)


# -- the audit trail -----------------------------------------------------------------------


def test_admin_actions_are_audited_with_the_actor(
    client: Any, db: Any, login: Any, make_institute: Any, make_user: Any
) -> None:
    admin = make_user(Role.ADMIN)
    institute = make_institute()
    target = make_user(Role.SME)
    db.session.commit()
    login(admin)
    created = client.post(
        "/admin/users/new",
        data={
            "role": "staff",
            "institute": str(institute.id),
            "name": "Staff Member",
            "email": "staff.member@example.com",
            "password": PASSWORD,
            "confirm": PASSWORD,
            "locale": "en",
        },
    )
    assert created.status_code == 302
    assert client.post(f"/admin/users/{target.id}/active", data={"active": "0"}).status_code == 302
    entries = db.session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    by_action = {e.action: e for e in entries}
    assert by_action["login"].actor_id == admin.id
    made = by_action["user_created"]
    assert made.actor_id == admin.id and made.to_state == "staff"  # the role given
    off = by_action["user_deactivated"]
    assert off.actor_id == admin.id and off.object_id == target.id
    assert (off.from_state, off.to_state) == ("active", "inactive")


def test_audit_rows_survive_a_failed_login_on_the_database(
    client: Any, db: Any, make_user: Any
) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    client.post("/login", data={"email": user.email, "password": "wrong password 1"})
    db.session.expire_all()
    count = db.session.execute(
        text("SELECT count(*) FROM audit_log WHERE action = 'login_failed'")
    ).scalar()
    assert count == 1
