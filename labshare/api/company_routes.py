"""The caller's company, its members and invitations (company administrators), and
the confirmation of new companies (institute staff, platform admins). The rules live
in labshare/accounts/companies.py and invitations.py; each handler commits once, at
the end."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_babel import gettext as _
from pydantic import Field

from labshare.accounts import companies, invitations
from labshare.api import bp
from labshare.api.registry import BodyModel, QueryModel, ResponseModel, endpoint
from labshare.api.schemas import MAX_ID
from labshare.api.serialize import page_json
from labshare.errors import NotAllowed, NotFound
from labshare.extensions import db
from labshare.models import Company, CompanyInvitation, CompanyStatus, Role, User

ADMIN_ERRORS = (403, 404, 409, 422)


class CompanyOut(ResponseModel):
    id: int
    name: str
    credit_code: str
    province: str | None
    status: CompanyStatus = Field(
        description="pending: registered, not yet confirmed by an institute's staff or an "
        "admin (its members read but cannot book); confirmed; rejected"
    )
    created_at: dt.datetime


class MyCompanyOut(CompanyOut):
    company_admin: bool = Field(description="whether the caller administers the company")


class MemberOut(ResponseModel):
    id: int
    email: str
    name: str
    company_admin: bool
    created_at: dt.datetime


class InvitationOut(ResponseModel):
    id: int
    email: str
    created_at: dt.datetime
    expires_at: dt.datetime


class InvitationIn(BodyModel):
    email: str = Field(min_length=1, max_length=254)


class AdminIn(BodyModel):
    admin: bool


class CompaniesQuery(QueryModel):
    status: CompanyStatus = CompanyStatus.PENDING


def company_json(company: Company) -> dict[str, Any]:
    return {
        "id": company.id,
        "name": company.name,
        "credit_code": company.credit_code,
        "province": company.province,
        "status": str(company.status),
        "created_at": company.created_at.isoformat(),
    }


def member_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "company_admin": user.company_admin,
        "created_at": user.created_at.isoformat(),
    }


def invitation_json(invitation: CompanyInvitation) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "email": invitation.email,
        "created_at": invitation.created_at.isoformat(),
        "expires_at": invitation.expires_at.isoformat(),
    }


def _require_admin(user: User) -> Company:
    if not companies.is_company_admin(user):
        raise NotAllowed(_("Only the company administrator can manage its members."))
    assert user.company is not None
    return user.company


def _member(user: User, user_id: int) -> User:
    """A member of the caller's company, for its administrator to act on."""
    _require_admin(user)
    return companies.member_of(user, min(user_id, MAX_ID))


def _one_page(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything on one page: a company's members and open invitations are few."""
    return page_json(items, len(items), 1, max(len(items), 1))


@endpoint(
    bp,
    "/company",
    "GET",
    summary="The caller's company and its confirmation status (SME members)",
    tag="company",
    roles=(Role.SME,),
    response=MyCompanyOut,
)
def my_company(user: User) -> dict[str, Any]:
    assert user.company is not None
    return {**company_json(user.company), "company_admin": companies.is_company_admin(user)}


@endpoint(
    bp,
    "/company/members",
    "GET",
    summary="The company's active members (company administrators)",
    tag="company",
    roles=(Role.SME,),
    response=MemberOut,
    paginated=True,
    errors=(403,),
)
def list_members(user: User) -> dict[str, Any]:
    return _one_page([member_json(m) for m in companies.members(_require_admin(user))])


@endpoint(
    bp,
    "/company/members/<int:user_id>",
    "DELETE",
    summary="Remove a member (company administrators)",
    description="The member's account is deactivated at once: its sessions and API "
    "tokens stop working and it sees nothing of the company any more. The last "
    "company administrator cannot be removed (422, field user_id): hand over the role first.",
    tag="company",
    roles=(Role.SME,),
    response=MemberOut,
    errors=ADMIN_ERRORS,
)
def remove_member(user: User, user_id: int) -> dict[str, Any]:
    member = _member(user, user_id)
    companies.remove_member(member, actor=user)
    db.session.commit()
    return member_json(member)


@endpoint(
    bp,
    "/company/members/<int:user_id>/admin",
    "POST",
    summary="Give a member the company administrator role, or take it back",
    description="A company keeps at least one administrator (422, field admin).",
    tag="company",
    roles=(Role.SME,),
    body=AdminIn,
    response=MemberOut,
    errors=ADMIN_ERRORS,
)
def set_member_admin(user: User, user_id: int, body: AdminIn) -> dict[str, Any]:
    member = _member(user, user_id)
    companies.set_company_admin(member, body.admin, actor=user)
    db.session.commit()
    return member_json(member)


@endpoint(
    bp,
    "/company/invitations",
    "GET",
    summary="Open invitations of the company (company administrators)",
    tag="company",
    roles=(Role.SME,),
    response=InvitationOut,
    paginated=True,
    errors=(403,),
)
def list_invitations(user: User) -> dict[str, Any]:
    return _one_page(
        [invitation_json(i) for i in invitations.open_invitations(_require_admin(user))]
    )


@endpoint(
    bp,
    "/company/invitations",
    "POST",
    summary="Invite someone into the company by e-mail (company administrators)",
    description="201. The link is e-mailed to the address only (never returned here); it "
    "works once, for 7 days, and only to create an account with that address. A new "
    "invitation to the same address replaces the open one. An address that already has "
    "an account: 422 on email.",
    tag="company",
    roles=(Role.SME,),
    body=InvitationIn,
    response=InvitationOut,
    status=201,
    errors=(403, 422),
)
def create_invitation(user: User, body: InvitationIn) -> dict[str, Any]:
    _require_admin(user)
    issued = invitations.invite(body.email, actor=user)
    db.session.commit()
    return invitation_json(issued.invitation)


@endpoint(
    bp,
    "/company/invitations/<int:invitation_id>",
    "DELETE",
    summary="Withdraw an open invitation (company administrators)",
    tag="company",
    roles=(Role.SME,),
    response=InvitationOut,
    errors=ADMIN_ERRORS,
)
def revoke_invitation(user: User, invitation_id: int) -> dict[str, Any]:
    _require_admin(user)
    invitation = invitations.revoke_invitation(min(invitation_id, MAX_ID), actor=user)
    db.session.commit()
    return invitation_json(invitation)


@endpoint(
    bp,
    "/companies",
    "GET",
    summary="Companies by confirmation status (institute staff, admins)",
    description="Pending ones by default, oldest first: check each licence number and "
    "name, then confirm or reject.",
    tag="company",
    roles=(Role.STAFF, Role.ADMIN),
    query=CompaniesQuery,
    response=CompanyOut,
    paginated=True,
)
def list_companies(user: User, query: CompaniesQuery) -> dict[str, Any]:
    rows = companies.companies_to_review(query.status)[:200]
    return page_json([company_json(c) for c in rows], len(rows), 1, 200)


def _decide(user: User, company_id: int, *, confirm: bool) -> dict[str, Any]:
    company = db.session.get(Company, min(company_id, MAX_ID))
    if company is None:
        raise NotFound(_("No such company."))
    companies.decide_company(company, confirm=confirm, actor=user)
    db.session.commit()
    return company_json(company)


@endpoint(
    bp,
    "/companies/<int:company_id>/confirm",
    "POST",
    summary="Confirm a pending company (institute staff, admins)",
    description="Its first member becomes its company administrator and its members may "
    "book. A company already decided: 409 invalid_state.",
    tag="company",
    roles=(Role.STAFF, Role.ADMIN),
    response=CompanyOut,
    errors=(404, 409),
)
def confirm_company(user: User, company_id: int) -> dict[str, Any]:
    return _decide(user, company_id, confirm=True)


@endpoint(
    bp,
    "/companies/<int:company_id>/reject",
    "POST",
    summary="Reject a pending company (institute staff, admins)",
    tag="company",
    roles=(Role.STAFF, Role.ADMIN),
    response=CompanyOut,
    errors=(404, 409),
)
def reject_company(user: User, company_id: int) -> dict[str, Any]:
    return _decide(user, company_id, confirm=False)
