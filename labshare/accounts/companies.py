"""Companies and their members: confirmation, the company administrator (the
invitations are labshare/accounts/invitations.py).

A company's public credit code gives nobody any access: the first account of a
self-registered company waits until an institute's staff or the platform admin
confirms the company (and then becomes its company administrator); everyone else
joins only through an invitation from a company administrator. Nothing here commits.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from labshare.database import begin_write
from labshare.errors import InvalidTransition, NotAllowed, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import ApiToken, Company, CompanyInvitation, CompanyStatus, Role, User
from labshare.models.user import new_session_nonce
from labshare.ops import audit
from labshare.timeutil import utcnow

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


def require_company_admin(actor: User) -> Company:
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
    company = require_company_admin(actor)
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
    company = require_company_admin(actor)
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
    company = require_company_admin(actor)
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
