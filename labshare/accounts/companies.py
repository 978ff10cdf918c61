"""Companies and their members: confirmation, invitations, the company administrator.

A company's public credit code gives nobody any access: the first account of a
self-registered company waits until an institute's staff or the platform admin
confirms the company (and then becomes its company administrator); everyone else
joins only through an invitation from a company administrator. Nothing here commits.
"""

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
from labshare.database import begin_write
from labshare.errors import InvalidTransition, NotAllowed, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import ApiToken, Company, CompanyInvitation, CompanyStatus, Role, User
from labshare.models.user import new_session_nonce
from labshare.ops import audit
from labshare.timeutil import utcnow

#: How long an invitation link stays valid.
INVITATION_DAYS = 7
INVITATION_KIND = "company_invitation"
#: Invitations a company may send in a day: enough for any real team, too few to use
#: our mail server for spam.
INVITATIONS_PER_DAY = 50


# -- who may do what ----------------------------------------------------------------------


def can_review_companies(user: User) -> bool:
    """Institute staff (of any institute) and platform admins vouch for companies."""
    return bool(user.active and user.role in (Role.STAFF, Role.ADMIN))


def is_company_admin(user: User, company_id: int | None = None) -> bool:
    return bool(
        user.active
        and user.role == Role.SME
        and user.company_admin
        and user.company_id is not None
        and user.company is not None
        and user.company.status == CompanyStatus.CONFIRMED
        and (company_id is None or user.company_id == company_id)
    )


def _require_company_admin(actor: User) -> Company:
    if not is_company_admin(actor):
        raise NotAllowed(_l("Only the company administrator can manage its members."))
    assert actor.company is not None
    return actor.company


def booking_refusal(company: Company | None) -> NotAllowed | None:
    """Why members of ``company`` may not book yet, or None when they may."""
    if company is None:
        return NotAllowed(_l("Only members of a company can book."))
    if company.status == CompanyStatus.PENDING:
        return NotAllowed(
            _l(
                "Your company has not been confirmed yet. Until an institute's staff or the "
                "platform administrator confirms it, you can search and read but not book."
            ),
            rule="company_not_confirmed",
        )
    if company.status == CompanyStatus.REJECTED:
        return NotAllowed(
            _l(
                "Your company's registration was not confirmed, so its members cannot book. "
                "Please contact the institute."
            ),
            rule="company_not_confirmed",
        )
    return None


# -- confirmation -------------------------------------------------------------------------


def companies_to_review(status: CompanyStatus = CompanyStatus.PENDING) -> list[Company]:
    return list(
        db.session.scalars(
            select(Company).where(Company.status == status).order_by(Company.created_at, Company.id)
        )
    )


def first_member(company: Company) -> User | None:
    return db.session.scalar(
        select(User)
        .where(User.company_id == company.id, User.role == Role.SME, User.active.is_(True))
        .order_by(User.created_at, User.id)
        .limit(1)
    )


def decide_company(company: Company, *, confirm: bool, actor: User) -> Company:
    """Confirm (the first member becomes the company administrator) or reject a
    company waiting for confirmation."""
    if not can_review_companies(actor):
        raise NotAllowed(_l("Only institute staff and platform admins confirm companies."))
    begin_write()
    db.session.refresh(company, with_for_update=True)
    before = CompanyStatus(company.status)
    if before != CompanyStatus.PENDING:
        raise InvalidTransition(_l("This company was already confirmed or rejected."))
    company.status = CompanyStatus.CONFIRMED if confirm else CompanyStatus.REJECTED
    company.decided_at = utcnow()
    audit.record(
        "company_confirmed" if confirm else "company_rejected",
        company,
        actor=actor,
        from_state=before,
        to_state=company.status,
        data={"credit_code": company.credit_code, "name": company.name},
    )
    if confirm:
        first = first_member(company)
        if first is not None and not _has_admin(company.id):
            first.company_admin = True
            audit.record(
                "company_admin_granted", first, actor=actor, data={"company_id": company.id}
            )
    return company


# -- members --------------------------------------------------------------------------------


def members(company: Company) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .where(User.company_id == company.id, User.role == Role.SME, User.active.is_(True))
            .order_by(User.created_at, User.id)
        )
    )


def _has_admin(company_id: int, *, besides: User | None = None) -> bool:
    query = select(func.count(User.id)).where(
        User.company_id == company_id,
        User.role == Role.SME,
        User.active.is_(True),
        User.company_admin.is_(True),
    )
    if besides is not None:
        query = query.where(User.id != besides.id)
    return bool(db.session.scalar(query))


def member_of(actor: User, user_id: int) -> User:
    """A member of the actor's company, by id; 404 for anyone else."""
    company = _require_company_admin(actor)
    user = db.session.get(User, user_id)
    if user is None or user.company_id != company.id or user.role != Role.SME or not user.active:
        raise NotFound(_l("No such member of your company."))
    return user


def _lock_admins(company_id: int) -> None:
    """Serialise changes to one company's administrators (never none left): the
    write lock on SQLite, the company's row on PostgreSQL."""
    begin_write()
    db.session.execute(select(Company.id).where(Company.id == company_id).with_for_update())


def _lock_admins_of(actor: User) -> None:
    if actor.company_id is not None:
        _lock_admins(actor.company_id)
        db.session.refresh(actor)


def remove_member(member: User, *, actor: User) -> User:
    """End a member's access at once: the account is deactivated (an SME account
    exists only as a member of one company), its administrator flag and API tokens
    go; sessions end because every request reloads the account."""
    _lock_admins_of(actor)
    company = _require_company_admin(actor)
    if member.company_id != company.id or member.role != Role.SME:
        raise NotFound(_l("No such member of your company."))
    if member.company_admin and not _has_admin(company.id, besides=member):
        raise ValidationFailed(
            _l("A company needs at least one administrator: hand over the role first."),
            field="user_id",
        )
    member.active = False
    member.company_admin = False
    # A new nonce, so that reactivating the account later revives no old cookie.
    member.session_nonce = new_session_nonce()
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == member.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    withdraw_invitations_of(member)
    audit.record(
        "member_removed",
        member,
        actor=actor,
        from_state="active",
        to_state="inactive",
        data={"company_id": company.id},
    )
    return member


def withdraw_invitations_of(user: User) -> None:
    """Withdraw the open invitations ``user`` sent: an administrator removed from the
    company must not come back through one sent to another address of theirs."""
    db.session.execute(
        update(CompanyInvitation)
        .where(
            CompanyInvitation.invited_by_id == user.id,
            CompanyInvitation.accepted_at.is_(None),
            CompanyInvitation.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def keep_an_admin(company_id: int | None, *, actor: User | None) -> User | None:
    """After an account left a confirmed company by other means (a platform admin
    deactivated it), make its earliest active member administrator if none is left."""
    if company_id is None:
        return None
    company = db.session.get(Company, company_id)
    if company is None or company.status != CompanyStatus.CONFIRMED or _has_admin(company_id):
        return None
    first = first_member(company)
    if first is not None:
        first.company_admin = True
        audit.record("company_admin_granted", first, actor=actor, data={"company_id": company_id})
    return first


def set_company_admin(member: User, admin: bool, *, actor: User) -> User:
    """Make a member a company administrator, or take the role back (never from
    the last one)."""
    _lock_admins_of(actor)
    company = _require_company_admin(actor)
    if member.company_id != company.id or member.role != Role.SME or not member.active:
        raise NotFound(_l("No such member of your company."))
    if member.company_admin == admin:
        return member
    if not admin and not _has_admin(company.id, besides=member):
        raise ValidationFailed(
            _l("A company needs at least one administrator: hand over the role first."),
            field="admin",
        )
    member.company_admin = admin
    audit.record(
        "company_admin_granted" if admin else "company_admin_revoked",
        member,
        actor=actor,
        data={"company_id": company.id},
    )
    return member


# -- invitations --------------------------------------------------------------------------


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
    company = _require_company_admin(actor)
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
    company = _require_company_admin(actor)
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
