"""API bearer tokens and the calendar feed secret.

A token's secret is shown once; only its SHA-256 digest is stored, so a leaked
database does not leak working tokens. SHA-256 (not a slow password hash) is
enough because the secret is 256 random bits, not something a person chose.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, select
from sqlalchemy.orm import defer, joinedload

from labshare.accounts.accounts import check_one_line
from labshare.database import begin_write
from labshare.errors import NotFound, Unauthorized, ValidationFailed
from labshare.extensions import db
from labshare.models import ApiToken, Company, Institute, User
from labshare.ops import audit
from labshare.timeutil import utcnow

TOKEN_PREFIX = "lsk_"  # noqa: S105 - a label, not a secret
MAX_PERSONAL_TOKENS = 20


@dataclass(frozen=True)
class IssuedToken:
    secret: str
    token: ApiToken


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _issue(
    user: User,
    *,
    name: str,
    personal: bool,
    expires_at: dt.datetime | None,
    now: dt.datetime | None = None,
) -> IssuedToken:
    secret = _new_secret()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=digest(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 4],
        personal=personal,
        created_at=now or utcnow(),
        expires_at=expires_at,
    )
    db.session.add(token)
    db.session.flush()
    return IssuedToken(secret=secret, token=token)


def issue_login_token(user: User, ttl_hours: int) -> IssuedToken:
    """A short-lived token for ``POST /api/v1/auth/token``."""
    return _issue(
        user,
        name="login",
        personal=False,
        expires_at=utcnow() + dt.timedelta(hours=ttl_hours),
    )


def create_personal_token(
    user: User, name: str, *, expires_at: dt.datetime | None = None
) -> IssuedToken:
    """A named token the user manages in the web UI; it works until revoked or
    until ``expires_at`` (by default ``PERSONAL_TOKEN_DAYS`` from now, 90 days)."""
    now = utcnow()
    if expires_at is None:
        expires_at = now + dt.timedelta(days=personal_token_days())
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed(_l("Give the token a name of 1 to 100 characters."), field="name")
    check_one_line(name, "name")
    if expires_at <= now:
        raise ValidationFailed(_l("The expiry must be in the future."), field="expires_at")
    active = list_personal_tokens(user)
    if len(active) >= MAX_PERSONAL_TOKENS:
        raise ValidationFailed(
            _l("You have %(n)d active tokens; revoke one first.", n=len(active)), field="name"
        )
    issued = _issue(user, name=name, personal=True, expires_at=expires_at, now=now)
    audit.record("token_created", issued.token, actor=user, data={"name": name})
    return issued


def personal_token_days() -> int:
    from flask import current_app

    return int(current_app.config.get("PERSONAL_TOKEN_DAYS") or 90)


def list_personal_tokens(user: User) -> list[ApiToken]:
    """The user's personal tokens that still work, newest first."""
    now = utcnow()
    tokens = db.session.scalars(
        select(ApiToken)
        .where(
            ApiToken.user_id == user.id,
            ApiToken.personal.is_(True),
            ApiToken.revoked_at.is_(None),
        )
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return [t for t in tokens if t.expires_at is None or t.expires_at > now]


def revoke_token(user: User, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s own tokens (another user's is NotFound)."""
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        raise NotFound(_l("No such token."))
    token.revoked_at = utcnow()
    audit.record("token_revoked", token, actor=user, data={"name": token.name})
    return token


#: Every API request looks its token up: the statement is built once (building it
#: costs more CPU than SQLAlchemy's cached compilation of it). It reads the token's
#: two columns that decide, not a token instance: only the user is needed after.
#: Of the user, its company and its institute (joined), not the columns no API
#: request reads of them (a request that reads one loads it then): each column of
#: the result costs every API request CPU to describe and load.
_BY_HASH = (
    select(ApiToken.revoked_at, ApiToken.expires_at, User)
    .join(User, User.id == ApiToken.user_id)
    .options(
        defer(User.password_hash),
        defer(User.session_nonce),
        defer(User.created_at),
        defer(User.last_login_at),
        joinedload(User.company).load_only(Company.name, Company.credit_code, Company.status),
        joinedload(User.institute).load_only(
            Institute.code,
            Institute.name,
            Institute.name_en,
            Institute.province_code,
            Institute.province,
            Institute.timezone,
            Institute.active,
            Institute.follows_holidays,
        ),
    )
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def user_for_token(secret: str) -> User:
    """The active user a bearer secret belongs to; Unauthorized otherwise."""
    if not secret or len(secret) > 200:
        raise Unauthorized(_l("Invalid token."))
    found = db.session.execute(_BY_HASH, {"token_hash": digest(secret)}).first()
    if found is None:
        raise Unauthorized(_l("Invalid token."))
    revoked_at, expires_at, user = found
    if revoked_at is not None:
        raise Unauthorized(_l("Invalid token."))
    if expires_at is not None and expires_at <= utcnow():
        raise Unauthorized(_l("The token has expired; request a new one."))
    if not user.active:
        raise Unauthorized(_l("This account is deactivated."))
    return user


def calendar_token(user: User) -> str:
    """The user's calendar feed secret, created on first use (under the write lock:
    the page that shows it is a GET, which does not take it)."""
    if not user.calendar_token:
        begin_write()
        db.session.refresh(user)
        if not user.calendar_token:
            user.calendar_token = secrets.token_urlsafe(32)
    return str(user.calendar_token)


def reset_calendar_token(user: User) -> str:
    """A new feed secret: the old link stops working."""
    user.calendar_token = secrets.token_urlsafe(32)
    audit.record("calendar_link_reset", user, actor=user)
    return user.calendar_token


def user_for_calendar_token(secret: str) -> User:
    if not secret or len(secret) > 64:
        raise NotFound(_l("No such calendar."))
    user = db.session.scalar(select(User).where(User.calendar_token == secret))
    if user is None or not user.active:
        raise NotFound(_l("No such calendar."))
    return user
