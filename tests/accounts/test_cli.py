"""`flask create-user`: every role, and every kind of bad input refused naming its
option, with nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from labshare.accounts.credit_code import make_credit_code
from labshare.extensions import db
from labshare.models import AuditLog, Company, Role, User
from tests import factories

PASSWORD = "Kalibrier-2026-x"
CODE = make_credit_code("320500", "MA1MCB6U")


def invoke(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["create-user", *args])


def counts() -> tuple[int, int]:
    db.session.rollback()  # see what the command's own session committed
    return (
        db.session.scalar(select(func.count()).select_from(User)) or 0,
        db.session.scalar(select(func.count()).select_from(Company)) or 0,
    )


def user(email: str) -> User | None:
    db.session.rollback()
    return db.session.scalar(select(User).where(User.email == email))


def test_admin(app: Flask) -> None:
    result = invoke(
        app, "Root@Example.com", "--role", "admin", "--password", PASSWORD, "--name", "管理员"
    )
    assert result.exit_code == 0, result.output
    created = user("root@example.com")
    assert created is not None
    assert created.role is Role.ADMIN
    assert created.name == "管理员"
    assert created.institute_id is None and created.company_id is None
    assert created.check_password(PASSWORD)
    assert created.locale == "zh_CN"
    assert db.session.scalar(select(AuditLog).where(AuditLog.object_id == created.id)) is not None


def test_staff_with_institute(app: Flask) -> None:
    institute = factories.make_institute(code="JSIM")
    db.session.commit()
    result = invoke(
        app,
        "staff@jsim.example.com",
        "--role",
        "staff",
        "--password",
        PASSWORD,
        "--institute",
        "JSIM",
        "--locale",
        "en",
    )
    assert result.exit_code == 0, result.output
    created = user("staff@jsim.example.com")
    assert created is not None
    assert created.role is Role.STAFF
    assert created.institute_id == institute.id
    assert created.locale == "en"
    assert created.name == "staff"  # defaults to the e-mail's local part


def test_sme_creates_new_company(app: Flask) -> None:
    result = invoke(
        app,
        "li@example.com",
        "--role",
        "sme",
        "--password",
        PASSWORD,
        "--company-code",
        CODE.lower(),
        "--company-name",
        "苏州恒锐精密机械有限公司",
    )
    assert result.exit_code == 0, result.output
    created = user("li@example.com")
    assert created is not None and created.company is not None
    assert created.role is Role.SME
    assert created.company.credit_code == CODE  # normalised
    assert created.company.name == "苏州恒锐精密机械有限公司"
    assert counts() == (1, 1)


def test_sme_joins_existing_company(app: Flask) -> None:
    company = factories.make_company(credit_code=CODE, name="已有公司")
    db.session.commit()
    result = invoke(
        app, "wang@example.com", "--role", "sme", "--password", PASSWORD, "--company-code", CODE
    )
    assert result.exit_code == 0, result.output
    created = user("wang@example.com")
    assert created is not None
    assert created.company_id == company.id
    assert counts() == (1, 1)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["a@example.com", "--role", "boss", "--password", PASSWORD], "--role"),
        (["a@example.com", "--password", PASSWORD], "--role"),
        (["a@example.com", "--role", "admin"], "--password"),
        (["a@example.com", "--role", "staff", "--password", PASSWORD], "--institute"),
        (
            ["a@example.com", "--role", "staff", "--password", PASSWORD, "--institute", "NOPE"],
            "--institute",
        ),
        (
            ["a@example.com", "--role", "admin", "--password", PASSWORD, "--institute", "EXIST"],
            "--institute",
        ),
        (["a@example.com", "--role", "sme", "--password", PASSWORD], "--company-code"),
        (
            [
                "a@example.com",
                "--role",
                "sme",
                "--password",
                PASSWORD,
                "--company-code",
                CODE[:-1] + ("0" if CODE[-1] != "0" else "1"),
                "--company-name",
                "某公司",
            ],
            "--company-code",
        ),
        (
            [
                "a@example.com",
                "--role",
                "sme",
                "--password",
                PASSWORD,
                "--company-code",
                "12345",
                "--company-name",
                "某公司",
            ],
            "--company-code",
        ),
        (
            ["a@example.com", "--role", "sme", "--password", PASSWORD, "--company-code", CODE],
            "--company-name",
        ),
        (
            ["a@example.com", "--role", "sme", "--password", PASSWORD, "--company-name", "某公司"],
            "--company-code",
        ),
        (
            [
                "a@example.com",
                "--role",
                "staff",
                "--password",
                PASSWORD,
                "--institute",
                "EXIST",
                "--company-code",
                CODE,
                "--company-name",
                "某公司",
            ],
            "--company-code",
        ),
        (["a@example.com", "--role", "admin", "--password", "short"], "--password"),
        (["a@example.com", "--role", "admin", "--password", "password123"], "--password"),
        (
            ["a@example.com", "--role", "admin", "--password", PASSWORD, "--locale", "fr"],
            "--locale",
        ),
        (["not-an-email", "--role", "admin", "--password", PASSWORD], "EMAIL"),
        (["dup@example.com", "--role", "admin", "--password", PASSWORD], "EMAIL"),
        (["DUP@example.com", "--role", "admin", "--password", PASSWORD], "EMAIL"),
        (["a@example.com", "--role", "admin", "--password", PASSWORD, "--name", " "], "--name"),
    ],
)
def test_bad_input_names_the_option_and_writes_nothing(
    app: Flask, args: list[str], option: str
) -> None:
    factories.make_institute(code="EXIST")
    factories.make_user(Role.ADMIN, email="dup@example.com")
    db.session.commit()
    before = counts()
    result = invoke(app, *args)
    assert result.exit_code != 0
    assert f"'{option}'" in result.output or f"'{option.lower()}'" in result.output, result.output
    assert "Traceback" not in result.output
    assert counts() == before
    assert user("a@example.com") is None
