"""Accounts: creating users and SME registrations, and checking a login.

Every function validates its input and raises ``ValidationFailed(field=...)`` (or
``Unauthorized`` for a failed login); nothing here commits.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from functools import cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from labshare.accounts.credit_code import CreditCodeError, validate_credit_code
from labshare.database import begin_write
from labshare.errors import Unauthorized, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    ApiToken,
    Company,
    CompanySize,
    CompanyStatus,
    Institute,
    LoginThrottle,
    Role,
    User,
)
from labshare.models.user import new_session_nonce, password_hash_method
from labshare.ops import audit
from labshare.timeutil import utcnow

LOCALES = ("zh_CN", "en")
MIN_PASSWORD_LENGTH = 10

#: The most common passwords of at least MIN_PASSWORD_LENGTH characters in public
#: breach lists, plus local favourites; compared case-insensitively.
COMMON_PASSWORDS = frozenset(
    {
        "1234567890",
        "12345678910",
        "123456789a",
        "a123456789",
        "0123456789",
        "9876543210",
        "1111111111",
        "0000000000",
        "1234512345",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "qwertyuiop",
        "asdfghjkl;",
        "zaq12wsxcde3",
        "qwerty12345",
        "qwerty123456",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "p@ssw0rd123",
        "iloveyou123",
        "abcdefghij",
        "abc1234567",
        "abcd123456",
        "abc123456789",
        "woaini1314",
        "woaini520520",
        "5201314520",
        "1314520520",
        "aa123456789",
        "qq123456789",
        "letmein1234",
        "welcome123",
        "welcome1234",
        "admin12345",
        "admin123456",
        "administrator",
        "changeme123",
        "football123",
        "baseball123",
        "sunshine123",
        "princess123",
        "dragon12345",
        "labshare123",
        "labshare2024",
        "labshare2025",
    }
)

_REASONABLE_NAME = 100


def normalize_email(email: str) -> str:
    """Check the syntax (no DNS lookup) and return the lower-cased address."""
    raw = (email or "").strip()
    if not raw:
        raise ValidationFailed(_l("Please enter an email address."), field="email")
    try:
        checked = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(
            _l("This is not a valid email address: %(reason)s", reason=str(exc)), field="email"
        ) from None
    return User.normalize_email(checked.normalized)


def email_taken(email: str) -> bool:
    return (
        db.session.scalar(select(User.id).where(func.lower(User.email) == email.lower()))
        is not None
    )


def user_by_email(address: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == address.lower()))


def check_password_policy(password: str, email: str, *, field: str = "password") -> None:
    """A minimum length, not the email or its name part, not a common password."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            _l("The password must have at least %(n)d characters.", n=MIN_PASSWORD_LENGTH),
            field=field,
        )
    lowered = password.lower()
    local = email.split("@", 1)[0].lower()
    if lowered == email.lower() or (len(local) >= 3 and local in lowered):
        raise ValidationFailed(
            _l("The password must not contain your email address or its name part."),
            field=field,
        )
    if lowered in COMMON_PASSWORDS or len(set(lowered)) <= 2:
        raise ValidationFailed(
            _l("This password is too common; please choose another one."), field=field
        )


def check_one_line(text: str, field: str) -> None:
    """Refuse a control character (PostgreSQL refuses a NUL in text) or a line break
    of any kind in a single-line value such as a name."""
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in text):
        raise ValidationFailed(
            _l("Please write this on one line, without control characters."), field=field
        )


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed(_l("Please enter your name."), field="name")
    check_one_line(name, "name")
    if len(name) > _REASONABLE_NAME:
        raise ValidationFailed(
            _l("The name may have at most %(n)d characters.", n=_REASONABLE_NAME), field="name"
        )
    return name


def _check_locale(locale: str) -> str:
    if locale not in LOCALES:
        raise ValidationFailed(_l("Please choose a language."), field="locale")
    return locale


def _parse_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationFailed(_l("Unknown role."), field="role") from None


def create_user(
    email: str,
    *,
    name: str,
    role: Role | str,
    password: str,
    institute: Institute | None = None,
    company: Company | None = None,
    locale: str = "zh_CN",
    actor: User | None = None,
) -> User:
    """Create an account of any role; ``actor`` is the admin who made it (None: CLI)."""
    role = _parse_role(role)
    address = normalize_email(email)
    if email_taken(address):
        raise ValidationFailed(
            _l("An account with this email address already exists."), field="email"
        )
    name = _check_name(name)
    check_password_policy(password, address)
    locale = _check_locale(locale)
    if role is Role.SME and company is None:
        raise ValidationFailed(_l("An SME account needs a company."), field="company")
    if role is Role.STAFF and institute is None:
        raise ValidationFailed(_l("A staff account needs an institute."), field="institute")
    user = User(
        email=address,
        name=name,
        role=role,
        locale=locale,
        active=True,
        company=company if role is Role.SME else None,
        institute=institute if role is Role.STAFF else None,
    )
    user.set_password(password)
    try:
        # A savepoint: another request may take the address after the check above.
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError:
        if user_by_email(address) is not None:
            raise EmailTaken(address) from None
        raise
    audit.record(
        "user_created",
        user,
        actor=actor,
        to_state=str(role),
        data={"email": address, "role": str(role)},
    )
    return user


class EmailTaken(ValidationFailed):
    """Registration with the address of an existing account. The web page answers as
    for a new account (and mails the owner), so it tells nobody which addresses have
    accounts."""

    def __init__(self, address: str) -> None:
        super().__init__(_l("An account with this email address already exists."), field="email")
        self.address = address


def _parse_size(size: CompanySize | str | None) -> CompanySize | None:
    if size is None or size == "":
        return None
    try:
        return CompanySize(size)
    except ValueError:
        raise ValidationFailed(_l("Please choose a company size."), field="size") from None


def register_sme(
    *,
    email: str,
    name: str,
    password: str,
    company_name: str,
    credit_code: str,
    province: str | None = None,
    industry: str | None = None,
    size: CompanySize | str | None = None,
    locale: str = "zh_CN",
) -> User:
    """The first member of a new company registers it; the company waits for
    confirmation. A code already registered is refused (join by invitation)."""
    company_name = (company_name or "").strip()
    if not company_name:
        raise ValidationFailed(_l("Please enter the company name."), field="company_name")
    if len(company_name) > 200:
        raise ValidationFailed(
            _l("The company name may have at most %(n)d characters.", n=200),
            field="company_name",
        )
    check_one_line(company_name, "company_name")
    check_one_line(province or "", "province")
    check_one_line(industry or "", "industry")
    try:
        code = validate_credit_code(credit_code or "")
    except CreditCodeError as exc:
        raise ValidationFailed(
            exc.message, field="credit_code", details={"reason": exc.reason}
        ) from None
    company_size = _parse_size(size)
    # Check the person before writing the company, so a refusal writes nothing; the
    # address last, so every other mistake is reported alike whether it is taken.
    address = normalize_email(email)
    _check_name(name)
    check_password_policy(password, address)
    _check_locale(locale)
    if db.session.scalar(select(Company.id).where(Company.credit_code == code)) is not None:
        # The code is public (on every licence and invoice): knowing it must give no
        # access. Members join by their company administrator's invitation.
        # Before the address: the answer must not depend on whether it is taken.
        raise ValidationFailed(
            _l(
                "This company is already registered on LabShare. Please ask its company "
                "administrator to invite you: the invitation e-mail has a link to sign up."
            ),
            field="credit_code",
        )
    if email_taken(address):
        generate_password_hash(
            password, method=password_hash_method()
        )  # as long as a new account takes
        raise EmailTaken(address)
    # Nobody has vouched for a self-registered company yet: it may read, not book,
    # until an institute's staff or the platform admin confirms it.
    company = Company(
        name=company_name,
        credit_code=code,
        province=(province or "").strip() or None,
        industry=(industry or "").strip() or None,
        size=company_size,
        status=CompanyStatus.PENDING,
    )
    db.session.add(company)
    db.session.flush()
    audit.record("company_created", company, actor=None, data={"credit_code": code})
    user = create_user(
        address, name=name, role=Role.SME, password=password, company=company, locale=locale
    )
    user.email_verified_at = None  # self-registered: the address is confirmed by mail
    return user


@cache
def _dummy_hash(method: str) -> str:
    return generate_password_hash("not a real password, only for timing", method=method)


def _throttle_after() -> int:
    return int(_config("LOGIN_THROTTLE_AFTER", THROTTLE_AFTER))


def _throttle_cap() -> dt.timedelta:
    return dt.timedelta(seconds=int(_config("LOGIN_THROTTLE_MAX_SECONDS", THROTTLE_MAX_SECONDS)))


def _config(name: str, default: int) -> int:
    from flask import current_app, has_app_context

    if has_app_context() and current_app.config.get(name) is not None:
        return int(current_app.config[name])
    return default


#: Failed logins of one address from one client address before each further one
#: must wait; the wait doubles from THROTTLE_BASE up to LOGIN_THROTTLE_MAX_SECONDS.
#: It holds for that pair only: the owner signing in from anywhere else is never
#: slowed by a stranger's attempts, and even the same address waits at most the cap.
THROTTLE_AFTER = 5
THROTTLE_BASE = dt.timedelta(seconds=15)
THROTTLE_MAX_SECONDS = 15 * 60
#: Rows of pairs with no failure for this long are removed.
THROTTLE_FORGET = dt.timedelta(days=1)


def throttle_delay(failures: int) -> dt.timedelta:
    """How long a (account, address) pair waits after its ``failures``-th failure."""
    after = _throttle_after()
    if failures < after:
        return dt.timedelta(0)
    return min(THROTTLE_BASE * 2 ** min(failures - after, 20), _throttle_cap())


def _throttle_row(address: str, client: str) -> LoginThrottle | None:
    return db.session.scalar(
        select(LoginThrottle).where(LoginThrottle.email == address, LoginThrottle.address == client)
    )


def _record_failure(address: str, client: str, now: dt.datetime) -> None:
    """Count one failure of the pair, atomically (two failures at once both count)."""
    values = {"email": address, "address": client, "failures": 1, "last_failure_at": now}
    table = LoginThrottle.__table__
    dialect = db.session.get_bind().dialect.name
    insert: Any = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.email, table.c.address],
        set_={"failures": table.c.failures + 1, "last_failure_at": now},
    )
    db.session.execute(stmt)
    row = _throttle_row(address, client)
    assert row is not None
    db.session.refresh(row)
    delay = throttle_delay(row.failures)
    row.blocked_until = now + delay if delay else None
    db.session.execute(
        delete(LoginThrottle).where(LoginThrottle.last_failure_at < now - THROTTLE_FORGET)
    )


def authenticate(email: str, password: str, *, client: str = "") -> User:
    """Return the active user with this email and password, or raise Unauthorized
    with one message whatever was wrong: an unknown address, a wrong password, a
    deactivated account and a throttled attempt all read the same, take about the
    same time, and count the same.

    Failures are counted per (address, ``client`` address); after
    LOGIN_THROTTLE_AFTER of them in a row that pair must wait a doubling, capped
    delay, and an attempt inside it is refused without checking the password. A
    success resets the pair. The caller COMMITS after an Unauthorized from here, so
    that the count and the audit rows are kept."""
    refusal = Unauthorized(
        _l("Wrong email address or password, or too many attempts: wait a minute and try again.")
    )
    address = User.normalize_email(email or "")[:254]
    if "\x00" in address:  # no account has one, and PostgreSQL refuses it in text
        address = ""
    client = (client or "unknown")[:64]
    user = (
        db.session.scalar(select(User).where(func.lower(User.email) == address))
        if address
        else None
    )
    now = utcnow()
    throttle = _throttle_row(address, client) if address else None
    throttled = throttle is not None and (
        throttle.blocked_until is not None and throttle.blocked_until > now
    )
    if throttled:
        check_password_hash(
            _dummy_hash(password_hash_method()), password or ""
        )  # same time as a real check
    accepted = (
        not throttled and user is not None and user.check_password(password or "") and user.active
    )
    if user is None and not throttled:
        check_password_hash(
            _dummy_hash(password_hash_method()), password or ""
        )  # same time as a real check
    # Every outcome writes (audit, throttle, last login). The slow hash is checked
    # before, so SQLite's write lock (BEGIN IMMEDIATE) is held only for the writes;
    # the rows read so far are read again inside the writer's transaction.
    begin_write()
    throttle = _throttle_row(address, client) if address else None
    if throttled:
        audit.record(
            "login_throttled",
            user if user is not None else "user_account",
            actor=None,
            data={"email": address, "client": client},
        )
        raise refusal
    if not accepted or user is None:
        if address:
            _record_failure(address, client, now)
        audit.record(
            "login_failed",
            user if user is not None else "user_account",
            actor=None,
            data={"email": address, "client": client},
        )
        raise refusal
    if throttle is not None:
        db.session.delete(throttle)
    user.last_login_at = now
    audit.record("login", user, actor=user)
    return user


def set_active(user: User, active: bool, *, actor: User) -> User:
    """An admin deactivates (or reactivates) an account; nobody locks themselves out."""
    if user.id == actor.id and not active:
        raise ValidationFailed(_l("You cannot deactivate your own account."), field="active")
    if user.active == active:
        return user
    before = "active" if user.active else "inactive"
    user.active = active
    if not active:
        # Its sessions and API tokens stay dead even if the account is reactivated later.
        user.session_nonce = new_session_nonce()
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    audit.record(
        "user_activated" if active else "user_deactivated",
        user,
        actor=actor,
        from_state=before,
        to_state="active" if active else "inactive",
    )
    return user
