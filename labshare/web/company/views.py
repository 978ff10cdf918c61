"""The company page (members, invitations), following an invitation, the review of
new companies, and an institute administrator's staff accounts."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user
from flask_wtf import FlaskForm

from labshare.accounts import companies, invitations, staff_accounts
from labshare.errors import DomainError, ValidationFailed
from labshare.extensions import db, limiter
from labshare.models import Company, CompanyStatus, Institute, Role
from labshare.ratelimit import register_limit
from labshare.web.auth.decorators import role_required
from labshare.web.company import bp
from labshare.web.company.forms import AcceptInvitationForm, InviteForm, NewStaffForm
from labshare.web.main.forms import apply_domain_error

# -- the company page -------------------------------------------------------------------


def _company_page(invite_form: InviteForm | None = None, status: int = 200) -> Any:
    company = current_user.company
    is_admin = companies.is_company_admin(current_user)
    members = companies.members(company) if company is not None else []
    return (
        render_template(
            "company/overview.html",
            company=company,
            is_admin=is_admin,
            members=members,
            invitations=invitations.open_invitations(company) if is_admin else [],
            invite_form=invite_form or InviteForm(),
            action_form=FlaskForm(),
        ),
        status,
    )


@bp.get("/company")
@role_required(Role.SME)
def overview() -> Any:
    return _company_page()


@bp.post("/company/invitations")
@role_required(Role.SME)
def invite() -> Any:
    form = InviteForm()
    if not companies.is_company_admin(current_user):
        abort(403)
    if not form.validate_on_submit():
        return _company_page(form, 422)
    try:
        issued = invitations.invite(form.email.data or "", actor=current_user)
    except ValidationFailed as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        return _company_page(form, 422)
    db.session.commit()
    flash(_("An invitation was sent to %(email)s.", email=issued.invitation.email), "success")
    return redirect(url_for("company.overview"))


def _company_action(action: Any, done: str) -> Any:
    if not companies.is_company_admin(current_user):
        abort(403)
    if not FlaskForm().validate_on_submit():
        flash(_("The form expired; please try again."), "error")
        return redirect(url_for("company.overview"))
    try:
        action()
    except ValidationFailed as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        flash(done, "success")
    return redirect(url_for("company.overview"))


@bp.post("/company/invitations/<int:invitation_id>/revoke")
@role_required(Role.SME)
def revoke_invitation(invitation_id: int) -> Any:
    return _company_action(
        lambda: invitations.revoke_invitation(invitation_id, actor=current_user),
        _("The invitation was withdrawn."),
    )


@bp.post("/company/members/<int:user_id>/remove")
@role_required(Role.SME)
def remove_member(user_id: int) -> Any:
    _admin()
    member = companies.member_of(current_user, user_id)
    return _company_action(
        lambda: companies.remove_member(member, actor=current_user),
        _("The member was removed; their access ended."),
    )


@bp.post("/company/members/<int:user_id>/admin")
@role_required(Role.SME)
def set_admin(user_id: int) -> Any:
    _admin()
    member = companies.member_of(current_user, user_id)
    grant = request.form.get("admin") == "1"
    return _company_action(
        lambda: companies.set_company_admin(member, grant, actor=current_user),
        _("The member is now a company administrator.")
        if grant
        else _("The member is no longer a company administrator."),
    )


def _admin() -> None:
    if not companies.is_company_admin(current_user):
        abort(403)


# -- following an invitation ----------------------------------------------------------------


@bp.route("/invitations/<secret>", methods=["GET", "POST"])
@limiter.limit(register_limit, methods=["POST"])
def accept_invitation(secret: str) -> Any:
    try:
        invitation = invitations.find_invitation(secret)
    except DomainError as exc:
        db.session.rollback()
        return render_template("company/invitation_invalid.html", message=exc.message), exc.status
    if current_user.is_authenticated:
        # Someone is signed in: the link belongs to a new account, never theirs.
        message = _("This invitation is for a new account. Please sign out first.")
        return render_template("company/invitation_invalid.html", message=message), 403
    form = AcceptInvitationForm()
    if request.method == "GET":
        form.email.data = invitation.email
    if form.validate_on_submit():
        try:
            user = invitations.accept_invitation(
                secret,
                email=form.email.data or "",
                name=form.name.data or "",
                password=form.password.data or "",
                locale=form.locale.data or "zh_CN",
            )
        except ValidationFailed as exc:
            db.session.rollback()
            apply_domain_error(form, exc)
        except DomainError as exc:
            db.session.rollback()
            return render_template(
                "company/invitation_invalid.html", message=exc.message
            ), exc.status
        else:
            db.session.commit()
            session.clear()  # a new session at sign-up: nothing from before survives
            login_user(user)
            session["locale"] = user.locale
            welcome = _("Welcome to %(company)s on LabShare!", company=invitation.company.name)
            flash(welcome, "success")
            return redirect(url_for("company.overview"))
    status = 422 if form.is_submitted() else 200
    return render_template("company/accept.html", form=form, invitation=invitation), status


# -- institute staff and admins confirm companies --------------------------------------------


@bp.get("/companies")
@role_required(Role.STAFF, Role.ADMIN)
def review() -> Any:
    return render_template(
        "company/review.html",
        pending=companies.companies_to_review(CompanyStatus.PENDING),
        action_form=FlaskForm(),
    )


@bp.post("/companies/<int:company_id>/confirm")
@role_required(Role.STAFF, Role.ADMIN)
def confirm(company_id: int) -> Any:
    return _decide(company_id, "confirm")


@bp.post("/companies/<int:company_id>/reject")
@role_required(Role.STAFF, Role.ADMIN)
def reject(company_id: int) -> Any:
    return _decide(company_id, "reject")


def _decide(company_id: int, decision: str) -> Any:
    company = db.get_or_404(Company, company_id)
    if not FlaskForm().validate_on_submit():
        flash(_("The form expired; please try again."), "error")
        return redirect(url_for("company.review"))
    try:
        companies.decide_company(company, confirm=decision == "confirm", actor=current_user)
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        if decision == "confirm":
            flash(_("%(name)s is confirmed; its members can book.", name=company.name), "success")
        else:
            flash(_("%(name)s was not confirmed.", name=company.name), "info")
    return redirect(url_for("company.review"))


# -- an institute administrator's staff accounts ---------------------------------------------


def _own_institute() -> Institute:
    if not staff_accounts.is_institute_admin(current_user):
        abort(403)
    assert current_user.institute is not None
    institute: Institute = current_user.institute
    return institute


def _staff_page(form: NewStaffForm | None = None, status: int = 200) -> Any:
    institute = _own_institute()
    return (
        render_template(
            "company/staff.html",
            institute=institute,
            staff=staff_accounts.staff_of(institute),
            form=form or NewStaffForm(),
            action_form=FlaskForm(),
        ),
        status,
    )


@bp.get("/institute/staff")
@role_required(Role.STAFF)
def staff() -> Any:
    return _staff_page()


@bp.post("/institute/staff")
@role_required(Role.STAFF)
def new_staff() -> Any:
    institute = _own_institute()
    form = NewStaffForm()
    if not form.validate_on_submit():
        return _staff_page(form, 422)
    try:
        user = staff_accounts.create_staff(
            institute,
            email=form.email.data or "",
            name=form.name.data or "",
            password=form.password.data or "",
            locale=form.locale.data or "zh_CN",
            actor=current_user,
        )
    except ValidationFailed as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        return _staff_page(form, 422)
    db.session.commit()
    flash(_("The account %(email)s was created.", email=user.email), "success")
    return redirect(url_for("company.staff"))


@bp.post("/institute/staff/<int:user_id>/active")
@role_required(Role.STAFF)
def staff_active(user_id: int) -> Any:
    _own_institute()
    user = staff_accounts.staff_member(current_user, user_id)
    if not FlaskForm().validate_on_submit():
        flash(_("The form expired; please try again."), "error")
        return redirect(url_for("company.staff"))
    active = request.form.get("active") == "1"
    try:
        staff_accounts.set_staff_active(user, active, actor=current_user)
    except ValidationFailed as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        if active:
            flash(_("%(email)s can sign in again.", email=user.email), "success")
        else:
            flash(_("%(email)s was deactivated.", email=user.email), "success")
    return redirect(url_for("company.staff"))
