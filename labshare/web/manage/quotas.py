"""Staff page of the institute's quotas per period (booking policies):
list, add and remove quotas of the institute and of its labs and instruments.
Routes live on the ``manage`` blueprint (staff only, another institute's ids 404)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import Length, Optional

from labshare.booking.policies import quotas
from labshare.booking.policies.quotas import PERIOD_LABELS
from labshare.errors import DomainError
from labshare.extensions import db
from labshare.models import BookingQuota, Resource
from labshare.web.bookings.forms import ConfirmForm
from labshare.web.manage.views import _fail, bp, institute

INSTITUTE_SCOPE = "institute"


class QuotaForm(FlaskForm):
    """Shape only: ``booking.policies.quotas.create_quota`` checks the values."""

    scope = SelectField(_l("Applies to"), choices=[], validate_choice=False)
    period = SelectField(_l("Per"), choices=[], validate_choice=False)
    max_hours = StringField(_l("Hours at most"), validators=[Optional(), Length(max=20)])
    max_bookings = StringField(_l("Bookings at most"), validators=[Optional(), Length(max=20)])
    count_completed = BooleanField(_l("Completed bookings count too"))


def _resources() -> list[Resource]:
    return list(
        db.session.scalars(
            select(Resource)
            .where(Resource.institute_id == current_user.institute_id)
            .order_by(Resource.kind.desc(), Resource.name, Resource.id)
        ).unique()
    )


def _form_choices(form: QuotaForm, resources: list[Resource]) -> None:
    form.scope.choices = [(INSTITUTE_SCOPE, _("The whole institute"))] + [
        (str(r.id), r.name) for r in resources
    ]
    form.period.choices = [(str(p), str(label)) for p, label in PERIOD_LABELS.items()]


@bp.route("/quotas", methods=["GET", "POST"])
def quotas_page() -> Any:
    inst = institute()
    resources = _resources()
    form = QuotaForm()
    _form_choices(form, resources)
    status = 200
    if form.validate_on_submit():
        scope = (form.scope.data or "").strip()
        resource_id: int | None = None
        if scope != INSTITUTE_SCOPE:
            resource_id = int(scope) if scope.isdigit() and len(scope) < 10 else -1
        try:
            quotas.create_quota(
                current_user,
                inst.id,
                resource_id,
                period=form.period.data or "",
                max_hours=form.max_hours.data,
                max_bookings=form.max_bookings.data,
                count_completed=bool(form.count_completed.data),
            )
        except DomainError as exc:
            status = _fail(form, exc, aliases={"resource_id": "scope"})
        else:
            db.session.commit()
            flash(_("Quota added."), "success")
            return redirect(url_for("manage.quotas_page"))
    elif form.is_submitted():
        status = 422
    inst = institute()
    rows = quotas.institute_quotas(inst.id)
    return render_template(
        "manage/quotas.html",
        form=form,
        quotas=rows,
        scope_of=quotas.scope_of,
        period_labels=PERIOD_LABELS,
        confirm=ConfirmForm(),
    ), status


@bp.post("/quotas/<int:quota_id>/delete")
def delete_quota(quota_id: int) -> Any:
    inst = institute()
    quota = db.session.get(BookingQuota, quota_id)
    if quota is None or quota.institute_id != inst.id:
        abort(404)
    if ConfirmForm().validate_on_submit():
        quotas.delete_quota(current_user, quota_id, inst.id)
        db.session.commit()
        flash(_("Quota removed."), "success")
    return redirect(url_for("manage.quotas_page"))
