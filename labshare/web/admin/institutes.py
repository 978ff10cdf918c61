"""Platform admin: institutes (list, create, edit)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from labshare.booking import holiday_admin
from labshare.catalogue import institutes as service
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import Institute, Resource, ResourceKind, Role, User
from labshare.web.admin import bp
from labshare.web.admin.forms import InstituteForm
from labshare.web.auth.decorators import role_required
from labshare.web.main.forms import apply_domain_error

FIELDS = tuple(service.FIELDS)


@bp.get("/institutes")
@role_required(Role.ADMIN)
def institutes() -> Any:
    rows = db.session.scalars(select(Institute).order_by(Institute.code)).all()
    resources = db.session.execute(
        select(Resource.institute_id, Resource.kind, func.count()).group_by(
            Resource.institute_id, Resource.kind
        )
    ).all()
    counts: dict[int, dict[str, int]] = {
        i.id: {"lab": 0, "instrument": 0, "staff": 0} for i in rows
    }
    for institute_id, kind, n in resources:
        if institute_id in counts:
            counts[institute_id][ResourceKind(kind).value] = n
    staff = db.session.execute(
        select(User.institute_id, func.count())
        .where(User.role == Role.STAFF, User.institute_id.is_not(None))
        .group_by(User.institute_id)
    ).all()
    for institute_id, n in staff:
        if institute_id in counts:
            counts[institute_id]["staff"] = n
    return render_template(
        "admin/institutes.html",
        institutes=rows,
        counts=counts,
        holiday_gaps=holiday_admin.gaps_for(),
    )


def _values(form: InstituteForm) -> dict[str, Any]:
    return {name: form[name].data for name in FIELDS}


@bp.route("/institutes/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def new_institute() -> Any:
    form = InstituteForm()
    if form.validate_on_submit():
        try:
            institute = service.create_institute(current_user, **_values(form))
        except ValidationFailed as exc:
            db.session.rollback()
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            flash(_("The institute %(code)s was created.", code=institute.code), "success")
            return redirect(url_for("admin.institutes"))
    status = 422 if form.is_submitted() else 200
    return render_template("admin/institute_form.html", form=form, institute=None), status


@bp.route("/institutes/<int:institute_id>/edit", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def edit_institute(institute_id: int) -> Any:
    institute = db.get_or_404(Institute, institute_id)
    form = InstituteForm(obj=institute)
    if form.validate_on_submit():
        try:
            service.update_institute(current_user, institute, **_values(form))
        except ValidationFailed as exc:
            db.session.rollback()
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            flash(_("The institute %(code)s was saved.", code=institute.code), "success")
            return redirect(url_for("admin.institutes"))
    status = 422 if form.is_submitted() else 200
    return render_template("admin/institute_form.html", form=form, institute=institute), status
