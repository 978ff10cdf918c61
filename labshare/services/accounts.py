"""Accounts: creating users and SME registrations, and checking a login.

Every function validates its input and raises ``ValidationFailed(field=...)`` (or
``Unauthorized`` for a failed login); nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from labshare.errors import Unauthorized, ValidationFailed
from labshare.extensions import db
from labshare.models import Company, CompanySize, Institute, Role, User
from labshare.models.user import password_hash_method
from labshare.services import audit
from labshare.services.credit_code import CreditCodeError, validate_credit_code
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


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed(_l("Please enter your name."), field="name")
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
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user_created",
        user,
        actor=actor,
        to_state=str(role),
        data={"email": address, "role": str(role)},
    )
    return user


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
    """An SME member registers; the company is created when its code is new and
    joined when it already exists."""
    company_name = (company_name or "").strip()
    if not company_name:
        raise ValidationFailed(_l("Please enter the company name."), field="company_name")
    if len(company_name) > 200:
        raise ValidationFailed(
            _l("The company name may have at most %(n)d characters.", n=200),
            field="company_name",
        )
    try:
        code = validate_credit_code(credit_code or "")
    except CreditCodeError as exc:
        raise ValidationFailed(
            exc.message, field="credit_code", details={"reason": exc.reason}
        ) from None
    company_size = _parse_size(size)
    # Check the person before writing the company, so a refusal writes nothing.
    address = normalize_email(email)
    if email_taken(address):
        raise ValidationFailed(
            _l("An account with this email address already exists."), field="email"
        )
    _check_name(name)
    check_password_policy(password, address)
    _check_locale(locale)

    company = db.session.scalar(select(Company).where(Company.credit_code == code))
    if company is None:
        company = Company(
            name=company_name,
            credit_code=code,
            province=(province or "").strip() or None,
            industry=(industry or "").strip() or None,
            size=company_size,
        )
        db.session.add(company)
        db.session.flush()
        audit.record("company_created", company, actor=None, data={"credit_code": code})
    user = create_user(
        address, name=name, role=Role.SME, password=password, company=company, locale=locale
    )
    return user


@cache
def _dummy_hash(method: str) -> str:
    return generate_password_hash("not a real password, only for timing", method=method)


#: Failed logins in a row before an account is locked; each further failure doubles
#: the lock, from LOCK_BASE up to LOCK_MAX (a growing delay, never a permanent lock
#: an attacker could impose on a victim).
LOCK_AFTER = 5
LOCK_BASE = dt.timedelta(minutes=1)
LOCK_MAX = dt.timedelta(hours=1)


def lock_duration(failed_logins: int) -> dt.timedelta:
    """How long the account is locked after its ``failed_logins``-th failure in a row."""
    if failed_logins < LOCK_AFTER:
        return dt.timedelta(0)
    return min(LOCK_BASE * 2 ** min(failed_logins - LOCK_AFTER, 16), LOCK_MAX)


def _record_failure(user: User, now: dt.datetime) -> None:
    user.failed_logins = (user.failed_logins or 0) + 1
    audit.record("login_failed", user, actor=None, data={"failed_logins": user.failed_logins})
    lock = lock_duration(user.failed_logins)
    if lock:
        user.locked_until = now + lock
        audit.record(
            "account_locked",
            user,
            actor=None,
            data={"failed_logins": user.failed_logins, "seconds": int(lock.total_seconds())},
        )


def authenticate(email: str, password: str) -> User:
    """Return the active user with this email and password, or raise Unauthorized
    with one message whatever was wrong (no hint whether the account exists).

    Every failure is audited and counted on the account; after LOCK_AFTER failures in
    a row the account is locked for a growing time, and while locked even the right
    password is refused without being checked. The caller COMMITS after an
    Unauthorized from here, so that the count and the audit rows are kept."""
    refusal = Unauthorized(_l("Wrong email address or password."))
    address = User.normalize_email(email or "")
    user = (
        db.session.scalar(select(User).where(func.lower(User.email) == address))
        if address
        else None
    )
    now = utcnow()
    if user is None:
        check_password_hash(
            _dummy_hash(password_hash_method()), password or ""
        )  # same time as a real check
        audit.record("login_failed", "user_account", actor=None, data={"email": address[:254]})
        raise refusal
    if user.locked_until is not None and user.locked_until > now:
        audit.record("login_refused_locked", user, actor=None)
        minutes = max(1, int((user.locked_until - now).total_seconds() + 59) // 60)
        raise Unauthorized(
            _l(
                "Too many failed logins: this account is locked for %(n)d more minute(s).",
                n=minutes,
            )
        )
    if not user.check_password(password or "") or not user.active:
        _record_failure(user, now)
        raise refusal
    user.last_login_at = now
    user.failed_logins = 0
    user.locked_until = None
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
    audit.record(
        "user_activated" if active else "user_deactivated",
        user,
        actor=actor,
        from_state=before,
        to_state="active" if active else "inactive",
    )
    return user
