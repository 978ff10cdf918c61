"""Platform admin: accounts, and mail that could not be delivered."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, or_, select
from wtforms.fields.choices import SelectChoice

from labshare.accounts import accounts, companies, staff_accounts
from labshare.errors import DomainError, ValidationFailed
from labshare.extensions import db
from labshare.labels import ROLE_LABELS
from labshare.messaging import mail
from labshare.models import Institute, Notification, Role, User
from labshare.web.admin import bp
from labshare.web.admin.forms import NewUserForm, UserFilterForm
from labshare.web.auth.decorators import role_required
from labshare.web.company.forms import RoleForm
from labshare.web.main.forms import apply_domain_error

PER_PAGE = 50


@bp.get("/users")
@role_required(Role.ADMIN)
def users() -> Any:
    filters = UserFilterForm(request.args)
    query = select(User).order_by(User.created_at.desc(), User.id.desc())
    q = (filters.q.data or "").strip()
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            or_(func.lower(User.email).like(pattern), func.lower(User.name).like(pattern))
        )
    if filters.role.data in {r.value for r in Role}:
        query = query.where(User.role == Role(filters.role.data))
    page = db.paginate(query, per_page=PER_PAGE, max_per_page=PER_PAGE, error_out=False)
    return render_template("admin/users.html", page=page, filters=filters, action_form=FlaskForm())


@bp.route("/users/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def new_user() -> Any:
    form = NewUserForm()
    institutes = db.session.scalars(select(Institute).order_by(Institute.code)).all()
    form.institute.choices = [SelectChoice("", _("No institute"))] + [
        SelectChoice(str(i.id), f"{i.code} · {i.name}") for i in institutes
    ]
    if form.validate_on_submit():
        institute = (
            db.session.get(Institute, int(form.institute.data)) if form.institute.data else None
        )
        try:
            user = accounts.create_user(
                form.email.data or "",
                name=form.name.data or "",
                role=form.role.data or "",
                password=form.password.data or "",
                institute=institute,
                locale=form.locale.data or "zh_CN",
                actor=current_user,
            )
        except ValidationFailed as exc:
            db.session.rollback()
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            flash(_("The account %(email)s was created.", email=user.email), "success")
            return redirect(url_for("admin.users"))
    status = 422 if form.is_submitted() else 200
    return render_template("admin/new_user.html", form=form), status


@bp.post("/users/<int:user_id>/active")
@role_required(Role.ADMIN)
def set_active(user_id: int) -> Any:
    form = FlaskForm()
    if not form.validate_on_submit():
        flash(_("The form expired; please try again."), "error")
        return redirect(url_for("admin.users"))
    user = db.get_or_404(User, user_id)
    active = request.form.get("active") == "1"
    try:
        accounts.set_active(user, active, actor=current_user)
        if not active and user.role == Role.SME:
            companies.withdraw_invitations_of(user)
        if not active and user.role == Role.SME and user.company_admin:
            user.company_admin = False
            db.session.flush()
            companies.keep_an_admin(user.company_id, actor=current_user)
    except ValidationFailed as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        if active:
            flash(_("%(email)s can sign in again.", email=user.email), "success")
        else:
            flash(_("%(email)s was deactivated.", email=user.email), "success")
    return redirect(url_for("admin.users"))


@bp.get("/mail")
@role_required(Role.ADMIN)
def undelivered_mail() -> Any:
    """Messages the sender gave up on (failed) or cannot know about (uncertain)."""
    notes = mail.undelivered()
    recipients = {
        u.id: u
        for u in db.session.scalars(select(User).where(User.id.in_({n.user_id for n in notes})))
    }
    return render_template(
        "admin/mail.html", notes=notes, recipients=recipients, action_form=FlaskForm()
    )


@bp.post("/mail/<int:notification_id>/requeue")
@role_required(Role.ADMIN)
def requeue_mail(notification_id: int) -> Any:
    return _handle_mail(notification_id, requeue=True)


@bp.post("/mail/<int:notification_id>/delivered")
@role_required(Role.ADMIN)
def mark_mail_delivered(notification_id: int) -> Any:
    return _handle_mail(notification_id, requeue=False)


def _handle_mail(notification_id: int, *, requeue: bool) -> Any:
    form = FlaskForm()
    if not form.validate_on_submit():
        flash(_("The form expired; please try again."), "error")
        return redirect(url_for("admin.undelivered_mail"))
    note = db.get_or_404(Notification, notification_id)
    try:
        if requeue:
            mail.requeue(note, current_user)
        else:
            mail.mark_delivered(note, current_user)
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        if requeue:
            flash(_("Message %(id)d will be sent again.", id=notification_id), "success")
        else:
            flash(_("Message %(id)d is marked as delivered.", id=notification_id), "success")
    return redirect(url_for("admin.undelivered_mail"))


@bp.route("/users/<int:user_id>/role", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def change_role(user_id: int) -> Any:
    """Staff (of an institute, optionally its institute administrator) or admin."""
    user = db.get_or_404(User, user_id)
    form = RoleForm()
    institutes = db.session.scalars(select(Institute).order_by(Institute.code)).all()
    form.role.choices = [
        SelectChoice(Role.STAFF.value, ROLE_LABELS[Role.STAFF]),
        SelectChoice(Role.ADMIN.value, ROLE_LABELS[Role.ADMIN]),
    ]
    form.institute.choices = [SelectChoice("", _("No institute"))] + [
        SelectChoice(str(i.id), f"{i.code} · {i.name}") for i in institutes
    ]
    if request.method == "GET":
        form.role.data = str(user.role)
        form.institute.data = str(user.institute_id or "")
        form.institute_admin.data = user.institute_admin
    if form.validate_on_submit():
        # isdecimal, not isdigit: int() refuses "²"; nine digits stay inside INTEGER.
        number = form.institute.data or ""
        institute = (
            db.session.get(Institute, int(number))
            if number.isdecimal() and len(number) <= 9
            else None
        )
        try:
            staff_accounts.change_role(
                user,
                role=form.role.data or "",
                institute=institute,
                institute_admin=bool(form.institute_admin.data),
                actor=current_user,
            )
        except ValidationFailed as exc:
            db.session.rollback()
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            flash(_("The role of %(email)s was changed.", email=user.email), "success")
            return redirect(url_for("admin.users"))
    status = 422 if form.is_submitted() else 200
    return render_template("admin/role.html", form=form, user=user), status
