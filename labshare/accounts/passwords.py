"""Passwords, e-mail links and the end of sessions.

Sessions: every session cookie and remember-me cookie carries the account's
``session_nonce`` in its user id (``User.get_id``), and the user loader refuses a
cookie whose nonce is not the account's current one. Replacing the nonce therefore
ends every session of the account on every device, with no extra query per request.

Links (password reset, e-mail verification) are signed with ``SECRET_KEY``
(itsdangerous), each kind with its own salt, and carry their issue time:
- a reset link names the account and a fingerprint of its current password hash,
  so it stops working as soon as the password changes (single use) and after
  ``PASSWORD_RESET_MINUTES``;
- a verification link names the account and its e-mail address, and is refused once
  the address is verified or after ``EMAIL_VERIFY_HOURS``.

Nothing here commits; the callers commit once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select, update

from labshare.accounts.accounts import check_password_policy, normalize_email
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.messaging import notify
from labshare.messaging.inbox import MAIL_ONLY_KINDS
from labshare.models import ApiToken, Notification, Role, User
from labshare.ops import audit
from labshare.timeutil import utcnow

RESET_SALT = "labshare.password-reset"
VERIFY_SALT = "labshare.verify-email"

RESET_KIND = "password_reset"
VERIFY_KIND = "verify_email"
ACCOUNT_EXISTS_KIND = "account_exists"
#: At most one reset (or verification) mail per account in this interval (no
#: mail-bombing a victim).
RESET_MAIL_INTERVAL = dt.timedelta(minutes=1)
# Messages that carry a secret link are mailed only, never listed in-app (inbox.py).
assert {RESET_KIND, VERIFY_KIND, ACCOUNT_EXISTS_KIND} == set(MAIL_ONLY_KINDS)


# -- sessions and tokens ----------------------------------------------------------------


def end_sessions(user: User) -> None:
    """End every session (and remember-me cookie) of ``user``, everywhere."""
    user.session_nonce = secrets.token_hex(8)


def revoke_all_tokens(user: User) -> int:
    """Revoke every API token of ``user`` that still works; returns how many."""
    now = utcnow()
    result = db.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def sign_out_everywhere(user: User, *, actor: User, keep_tokens: bool = True) -> None:
    """The "sign out other devices" button (the caller signs the current device in
    again with the new nonce) and logout."""
    end_sessions(user)
    revoked = 0 if keep_tokens else revoke_all_tokens(user)
    audit.record("sessions_ended", user, actor=actor, data={"tokens_revoked": revoked})


def _password_changed(user: User, new_password: str, *, actor: User | None, action: str) -> int:
    user.set_password(new_password)
    end_sessions(user)
    revoked = revoke_all_tokens(user)
    audit.record(action, user, actor=actor, data={"tokens_revoked": revoked})
    return revoked


# -- change -----------------------------------------------------------------------------


def change_password(user: User, current: str, new: str) -> int:
    """The signed-in owner changes the password; needs the current one. Ends every
    other session and revokes every API token (the caller signs this device in
    again); returns how many tokens were revoked."""
    if not user.check_password(current or ""):
        raise ValidationFailed(_l("The current password is not right."), field="current_password")
    check_password_policy(new or "", user.email, field="new_password")
    if user.check_password(new):
        raise ValidationFailed(
            _l("The new password must differ from the current one."), field="new_password"
        )
    return _password_changed(user, new, actor=user, action="password_changed")


# -- signed links -----------------------------------------------------------------------


class _ClockSigner(TimestampSigner):
    """Stamps and ages links by the app's clock (timeutil.utcnow), as everything else."""

    def get_timestamp(self) -> int:
        return int(utcnow().timestamp())


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        str(current_app.config["SECRET_KEY"]), salt=salt, signer=_ClockSigner
    )


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def reset_token(user: User) -> str:
    return _serializer(RESET_SALT).dumps(
        {"u": user.id, "p": _fingerprint(user.password_hash), "e": _fingerprint(user.email)}
    )


def verify_token(user: User) -> str:
    return _serializer(VERIFY_SALT).dumps({"u": user.id, "e": _fingerprint(user.email)})


def _link_invalid() -> ValidationFailed:
    return ValidationFailed(
        _l("This link is not valid or has expired; please ask for a new one."), field="token"
    )


def _load(token: str, salt: str, max_age_seconds: int) -> dict[str, Any]:
    """The signed payload; the same refusal for a forged, expired or garbled link."""
    if not token or len(token) > 500:
        raise _link_invalid()
    try:
        data = _serializer(salt).loads(token, max_age=max_age_seconds)
    except (SignatureExpired, BadSignature):
        raise _link_invalid() from None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        raise _link_invalid()
    return dict(data)


def _reset_minutes() -> int:
    return int(current_app.config.get("PASSWORD_RESET_MINUTES") or 30)


def _verify_hours() -> int:
    return int(current_app.config.get("EMAIL_VERIFY_HOURS") or 72)


def user_for_reset_token(token: str) -> User:
    """The active account a reset link is for, or ValidationFailed(field="token")
    when it is tampered with, expired, used (the password changed since) or for an
    account whose address changed."""
    data = _load(token, RESET_SALT, _reset_minutes() * 60)
    user = db.session.get(User, data["u"])
    if (
        user is None
        or not user.active
        or data.get("p") != _fingerprint(user.password_hash)
        or data.get("e") != _fingerprint(user.email)
    ):
        raise _link_invalid()
    return user


def reset_password(token: str, new_password: str) -> User:
    """Set a new password through a reset link. The link dies with the old password;
    every session ends and every API token is revoked. Opening the mailed link also
    proves the address, so it counts as verified."""
    user = user_for_reset_token(token)
    check_password_policy(new_password or "", user.email, field="new_password")
    # Lock the account and read it again: of two requests with one link, the later
    # one sees the password the first one set, and the link is used up.
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    db.session.refresh(user)
    data = _load(token, RESET_SALT, _reset_minutes() * 60)
    if not user.active or data.get("p") != _fingerprint(user.password_hash):
        raise _link_invalid()
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    _password_changed(user, new_password, actor=user, action="password_reset")
    return user


def verify_email(token: str) -> User:
    """Mark the address of a verification link's account verified. A link that is
    tampered with, expired, for an address since changed, or already used is refused."""
    data = _load(token, VERIFY_SALT, _verify_hours() * 3600)
    user = db.session.get(User, data["u"])
    if user is None or not user.active or data.get("e") != _fingerprint(user.email):
        raise _link_invalid()
    if user.email_verified_at is not None:
        raise ValidationFailed(_l("This address is already confirmed."), field="token")
    user.email_verified_at = utcnow()
    audit.record("email_verified", user, actor=user)
    return user


# -- mails ------------------------------------------------------------------------------


def _base_url() -> str:
    return str(current_app.config.get("PUBLIC_BASE_URL", "")).rstrip("/")


def _mail(user: User, kind: str, subject: str, template: str, **context: Any) -> None:
    """Queue one private message (a fresh dedupe key each time: every request mails)."""
    text, html = notify.render_for(template, user, **context)
    notify.enqueue(
        user,
        kind,
        subject=subject,
        body_text=text,
        body_html=html,
        dedupe_key=f"{kind}:{user.id}:{secrets.token_hex(8)}",
    )


def _mailed_recently(user: User, kind: str) -> bool:
    return (
        db.session.scalar(
            select(Notification.id)
            .where(
                Notification.user_id == user.id,
                Notification.kind == kind,
                Notification.created_at > utcnow() - RESET_MAIL_INTERVAL,
            )
            .limit(1)
        )
        is not None
    )


def request_reset(email: str) -> None:
    """Mail a reset link to the account with this address, if there is an active
    one. The caller answers the same whatever happened, so nobody learns from it
    which addresses have accounts."""
    try:
        address = normalize_email(email)
    except ValidationFailed:
        return
    user = db.session.scalar(select(User).where(User.email == address))
    if user is None or not user.active:
        return
    if _mailed_recently(user, RESET_KIND):  # one a minute at most, however many ask
        return
    link = f"{_base_url()}/password/reset/{reset_token(user)}"
    with force_locale(notify.locale_of(user)):
        _mail(
            user,
            RESET_KIND,
            _("Reset your LabShare password"),
            "password_reset",
            link=link,
            minutes=_reset_minutes(),
        )
    audit.record("password_reset_requested", user, actor=None)


def send_verification(user: User) -> None:
    """Mail (again) the link that confirms ``user``'s address; nothing for an address
    already confirmed."""
    if user.email_verified_at is not None or not user.active:
        return
    # Anyone can register with someone else's address: the button that mails the
    # link again must not flood that address.
    if _mailed_recently(user, VERIFY_KIND):
        return
    link = f"{_base_url()}/verify/{verify_token(user)}"
    with force_locale(notify.locale_of(user)):
        _mail(
            user,
            VERIFY_KIND,
            _("Confirm your e-mail address for LabShare"),
            "verify_email",
            link=link,
            hours=_verify_hours(),
        )


def notify_existing_account(user: User) -> None:
    """Someone registered with the address of an existing account: tell its owner
    (instead of telling the registrant that the address is taken)."""
    if not user.active:
        return
    with force_locale(notify.locale_of(user)):
        _mail(
            user,
            ACCOUNT_EXISTS_KIND,
            _("Someone tried to register with your e-mail address"),
            "account_exists",
            login_link=f"{_base_url()}/login",
            reset_link=f"{_base_url()}/password/forgot",
        )


def needs_verification(user: User) -> bool:
    """Whether ``user`` must confirm the address before booking."""
    return user.role == Role.SME and user.email_verified_at is None
