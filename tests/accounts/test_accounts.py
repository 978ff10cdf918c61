"""services.accounts: creating accounts, SME registration, login checks."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from labshare.accounts import accounts
from labshare.errors import Unauthorized, ValidationFailed
from labshare.models import AuditLog, Company, CompanySize, Role, User
from tests.factories import PASSWORD
from tests.helpers import count_rows

GOOD_CODE = "914403001922038216"


def _register(**kw: Any) -> User:
    values: dict[str, Any] = {
        "email": "Li.Ming@Example.COM",
        "name": "李明",
        "password": PASSWORD,
        "company_name": "深圳精密测控有限公司",
        "credit_code": GOOD_CODE,
        "province": "广东省",
        "industry": "仪器仪表制造",
        "size": "small",
    }
    values.update(kw)
    return accounts.register_sme(**values)


def test_register_creates_company_and_member(db: Any, real_password_hash: None) -> None:
    user = _register()
    assert user.id is not None
    assert user.email == "li.ming@example.com"
    assert user.role is Role.SME
    assert user.check_password(PASSWORD)
    assert user.password_hash.startswith("scrypt:")
    company = user.company
    assert company is not None
    assert (company.credit_code, company.province, company.size) == (
        GOOD_CODE,
        "广东省",
        CompanySize.SMALL,
    )
    actions = set(db.session.scalars(select(AuditLog.action)))
    assert {"company_created", "user_created"} <= actions


def test_an_existing_companys_code_gives_no_membership(db: Any) -> None:
    """The code is public: registering with it is refused (join by invitation) and
    writes nothing."""
    _register()
    db.session.commit()
    with pytest.raises(ValidationFailed) as caught:
        _register(
            email="wang@example.com", company_name="another name", credit_code=GOOD_CODE.lower()
        )
    assert caught.value.field == "credit_code"
    assert "invite" in str(caught.value.message)
    db.session.rollback()
    assert count_rows(Company) == 1
    assert count_rows(User) == 1


def test_a_registered_company_waits_for_confirmation(db: Any) -> None:
    user = _register()
    assert user.company is not None and user.company.status == "pending"
    assert not user.company_admin  # only once confirmed


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"credit_code": GOOD_CODE[:-1] + "7"}, "credit_code"),
        ({"credit_code": "12345"}, "credit_code"),
        ({"company_name": "  "}, "company_name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": ""}, "email"),
        ({"name": " "}, "name"),
        ({"password": "short1"}, "password"),
        ({"password": "1234567890"}, "password"),
        ({"password": "aaaaaaaaaaaa"}, "password"),
        ({"password": "li.ming-secret-2024"}, "password"),
        ({"size": "huge"}, "size"),
        ({"locale": "fr"}, "locale"),
    ],
)
def test_register_refusals_name_the_field_and_write_nothing(
    db: Any, kw: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _register(**kw)
    assert caught.value.field == field
    assert str(caught.value.message)
    db.session.rollback()
    assert count_rows(User) == 0
    assert count_rows(Company) == 0
    assert count_rows(AuditLog) == 0


def test_bad_credit_code_reports_the_reason(db: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _register(credit_code=GOOD_CODE[:-1] + "7")
    assert caught.value.details["reason"] == "check"
    assert "check character" in str(caught.value.message)


def test_duplicate_email_in_another_case_is_refused(db: Any) -> None:
    _register()
    db.session.commit()
    with pytest.raises(ValidationFailed) as caught:
        _register(email="LI.MING@example.com", credit_code="91330100716105852F")
    assert caught.value.field == "email"
    db.session.rollback()
    assert count_rows(User) == 1
    assert count_rows(Company) == 1  # the second company was not written


def test_password_equal_to_email_is_refused(db: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _register(email="someone@example.com", password="someone@example.com")
    assert caught.value.field == "password"


def test_create_staff_needs_institute(db: Any, make_institute: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        accounts.create_user("s@example.com", name="S", role="staff", password=PASSWORD)
    assert caught.value.field == "institute"
    institute = make_institute()
    staff = accounts.create_user(
        "s@example.com", name="S", role="staff", password=PASSWORD, institute=institute
    )
    assert staff.institute_id == institute.id


def test_create_sme_needs_company(db: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        accounts.create_user("c@example.com", name="C", role=Role.SME, password=PASSWORD)
    assert caught.value.field == "company"


def test_create_user_unknown_role(db: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        accounts.create_user("x@example.com", name="X", role="root", password=PASSWORD)
    assert caught.value.field == "role"


def test_create_admin_records_actor(db: Any, make_user: Any) -> None:
    boss = make_user(Role.ADMIN)
    admin = accounts.create_user(
        "A2@Example.com", name="A", role="admin", password=PASSWORD, actor=boss
    )
    assert admin.email == "a2@example.com"
    assert admin.institute_id is None and admin.company_id is None
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "user_created"))
    assert entry.actor_id == boss.id
    assert entry.object_id == admin.id


def test_authenticate(db: Any, make_user: Any) -> None:
    user = make_user(email="login@example.com")
    assert accounts.authenticate("  LOGIN@example.com ", PASSWORD) is user
    assert user.last_login_at is not None
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "login")) is not None


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("login@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
        ("", PASSWORD),
        ("login@example.com", ""),
    ],
)
def test_authenticate_refusals_are_generic(
    db: Any, make_user: Any, email: str, password: str
) -> None:
    make_user(email="login@example.com")
    with pytest.raises(Unauthorized) as caught:
        accounts.authenticate(email, password)
    assert str(caught.value.message).startswith("Wrong email address or password,")


def test_inactive_user_cannot_authenticate(db: Any, make_user: Any) -> None:
    make_user(email="gone@example.com", active=False)
    with pytest.raises(Unauthorized) as caught:
        accounts.authenticate("gone@example.com", PASSWORD)
    assert str(caught.value.message).startswith("Wrong email address or password,")


def test_set_active(db: Any, make_user: Any) -> None:
    admin = make_user(Role.ADMIN)
    user = make_user(Role.SME)
    accounts.set_active(user, False, actor=admin)
    assert user.active is False
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "user_deactivated"))
    assert (entry.actor_id, entry.from_state, entry.to_state) == (admin.id, "active", "inactive")
    accounts.set_active(user, True, actor=admin)
    assert user.active is True


def test_admin_cannot_deactivate_self(db: Any, make_user: Any) -> None:
    admin = make_user(Role.ADMIN)
    with pytest.raises(ValidationFailed) as caught:
        accounts.set_active(admin, False, actor=admin)
    assert caught.value.field == "active"
    assert admin.active is True
