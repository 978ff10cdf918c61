"""Invitations into a company: a single-use link, mailed through the outbox, that
creates an account with the invited address. The database keeps a digest of the
link's secret, never the secret. Nothing here commits."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from labshare.accounts import accounts
from labshare.accounts.companies import require_company_admin
from labshare.errors import InvalidTransition, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import Company, CompanyInvitation, CompanyStatus, Role, User
from labshare.ops import audit
from labshare.timeutil import utcnow

#: How long an invitation link stays valid.
INVITATION_DAYS = 7
INVITATION_KIND = "company_invitation"
#: Invitations a company may send in a day: enough for any real team, too few to use
#: our mail server for spam.
INVITATIONS_PER_DAY = 50


@dataclass(frozen=True)
class IssuedInvitation:
    secret: str
    invitation: CompanyInvitation


#: Stands for the link in the stored message; the mail sender puts the link in at
#: send time (``invitation_link_for``), so no table ever holds a usable secret.
LINK_PLACEHOLDER = "[invitation-link]"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _secret_for(invitation_id: int, email: str, salt: str) -> str:
    """The link's secret: an HMAC under the app's SECRET_KEY of the invitation and a
    random salt. The database keeps the salt and the secret's digest, never the
    secret, so neither a copy of the database nor the outbox opens an invitation."""
    key = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    message = f"company-invitation:{invitation_id}:{email}:{salt}".encode()
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def invitation_url(secret: str) -> str:
    base = str(current_app.config.get("PUBLIC_BASE_URL", "")).rstrip("/")
    return f"{base}/invitations/{secret}"


def open_invitations(company: Company) -> list[CompanyInvitation]:
    now = utcnow()
    return list(
        db.session.scalars(
            select(CompanyInvitation)
            .where(
                CompanyInvitation.company_id == company.id,
                CompanyInvitation.accepted_at.is_(None),
                CompanyInvitation.revoked_at.is_(None),
                CompanyInvitation.expires_at > now,
            )
            .order_by(CompanyInvitation.created_at.desc(), CompanyInvitation.id.desc())
        )
    )


def invite(email: str, *, actor: User, locale: str | None = None) -> IssuedInvitation:
    """Invite ``email`` into the actor's company: a single-use link, valid for
    INVITATION_DAYS, mailed through the outbox. A new invitation to the same
    address replaces an open one."""
    company = require_company_admin(actor)
    address = accounts.normalize_email(email)
    if accounts.email_taken(address):
        raise ValidationFailed(
            _l(
                "An account with this email address already exists; an invitation can only "
                "create a new account."
            ),
            field="email",
        )
    now = utcnow()
    sent_today = db.session.scalar(
        select(func.count(CompanyInvitation.id)).where(
            CompanyInvitation.company_id == company.id,
            CompanyInvitation.created_at > now - dt.timedelta(days=1),
        )
    )
    if (sent_today or 0) >= INVITATIONS_PER_DAY:
        raise ValidationFailed(
            _l(
                "Your company has sent %(n)d invitations today; please try again tomorrow.",
                n=INVITATIONS_PER_DAY,
            ),
            field="email",
        )
    for old in open_invitations(company):
        if old.email == address:
            old.revoked_at = now
            audit.record("invitation_replaced", old, actor=actor, data={"email": address})
    salt = secrets.token_urlsafe(24)
    invitation = CompanyInvitation(
        company_id=company.id,
        email=address,
        token_hash=_digest(salt),  # replaced below: the secret needs the id
        salt=salt,
        invited_by_id=actor.id,
        created_at=now,
        expires_at=now + dt.timedelta(days=INVITATION_DAYS),
    )
    db.session.add(invitation)
    db.session.flush()
    secret = _secret_for(invitation.id, address, salt)
    invitation.token_hash = _digest(secret)
    db.session.flush()
    audit.record(
        "invitation_created",
        invitation,
        actor=actor,
        data={"email": address, "company_id": company.id},
    )
    _mail_invitation(invitation, actor, locale or actor.locale)
    return IssuedInvitation(secret=secret, invitation=invitation)


def invitation_link_for(note_dedupe_key: str) -> str | None:
    """The link of the invitation an outbox row announces (``invitation:<id>``), for
    the mail sender to put in place of LINK_PLACEHOLDER; None when it is gone."""
    prefix = "invitation:"
    if not note_dedupe_key.startswith(prefix) or not note_dedupe_key[len(prefix) :].isdigit():
        return None
    invitation = db.session.get(CompanyInvitation, int(note_dedupe_key[len(prefix) :]))
    if invitation is None or invitation.salt is None:
        return None
    return invitation_url(_secret_for(invitation.id, invitation.email, invitation.salt))


def _mail_invitation(invitation: CompanyInvitation, actor: User, locale: str) -> None:
    env = current_app.jinja_env
    with force_locale(locale if locale in accounts.LOCALES else "zh_CN"):
        context = {
            "company": invitation.company,
            "inviter": actor,
            "url": LINK_PLACEHOLDER,
            "days": INVITATION_DAYS,
        }
        text = env.get_template("email/company_invitation.txt").render(**context)
        html = env.get_template("email/company_invitation.html").render(**context)
        subject = _("Invitation to join %(company)s on LabShare", company=invitation.company.name)
    note = notify.enqueue(
        actor,
        INVITATION_KIND,
        subject=subject,
        body_text=text,
        body_html=html,
        dedupe_key=f"invitation:{invitation.id}",
    )
    if note is not None:
        note.to_email = invitation.email


def revoke_invitation(invitation_id: int, *, actor: User) -> CompanyInvitation:
    company = require_company_admin(actor)
    invitation = db.session.get(CompanyInvitation, invitation_id)
    if invitation is None or invitation.company_id != company.id:
        raise NotFound(_l("No such invitation."))
    if invitation.accepted_at is not None:
        raise InvalidTransition(_l("This invitation was already used."))
    if invitation.revoked_at is None:
        # Conditional, as the acceptance is: of the two at once, one wins.
        withdrawn = db.session.execute(
            update(CompanyInvitation)
            .where(
                CompanyInvitation.id == invitation.id,
                CompanyInvitation.accepted_at.is_(None),
                CompanyInvitation.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.refresh(invitation)
        if withdrawn.rowcount != 1:  # type: ignore[attr-defined]
            if invitation.accepted_at is not None:
                raise InvalidTransition(_l("This invitation was already used."))
            return invitation
        audit.record("invitation_revoked", invitation, actor=actor)
    return invitation


def find_invitation(secret: str) -> CompanyInvitation:
    """The open invitation behind a link; a refusal that says why otherwise."""
    invitation = (
        db.session.scalar(
            select(CompanyInvitation).where(CompanyInvitation.token_hash == _digest(secret))
        )
        if secret and len(secret) <= 100
        else None
    )
    if invitation is None:
        raise NotFound(
            _l("This invitation link is not valid. Please check that it was copied whole.")
        )
    if invitation.accepted_at is not None:
        raise InvalidTransition(_l("This invitation was already used."))
    if invitation.revoked_at is not None:
        raise InvalidTransition(_l("This invitation was withdrawn."))
    if invitation.expires_at <= utcnow():
        raise InvalidTransition(
            _l("This invitation has expired. Please ask your company administrator for a new one.")
        )
    if invitation.company.status != CompanyStatus.CONFIRMED:
        raise InvalidTransition(_l("This invitation was withdrawn."))
    return invitation


def accept_invitation(
    secret: str, *, email: str, name: str, password: str, locale: str = "zh_CN"
) -> User:
    """Create the invitee's account in the inviting company. The e-mail must be the
    invited one; the link works once (a conditional UPDATE decides a race)."""
    invitation = find_invitation(secret)
    address = accounts.normalize_email(email)
    if address != invitation.email:
        raise ValidationFailed(_l("This invitation is for another email address."), field="email")
    user = accounts.create_user(
        address,
        name=name,
        role=Role.SME,
        password=password,
        company=invitation.company,
        locale=locale,
    )
    taken = db.session.execute(
        update(CompanyInvitation)
        .where(
            CompanyInvitation.id == invitation.id,
            CompanyInvitation.accepted_at.is_(None),
            CompanyInvitation.revoked_at.is_(None),
        )
        .values(accepted_at=utcnow(), accepted_user_id=user.id)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidTransition(_l("This invitation was already used."))
    audit.record(
        "member_added",
        user,
        actor=None,
        data={"company_id": invitation.company_id, "invitation_id": invitation.id},
    )
    return user
