"""Institute staff: who may book an instrument that requires a qualification."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from labshare.booking.policies import qualifications
from labshare.errors import DomainError, ValidationFailed
from labshare.extensions import db
from labshare.models import Qualification, User
from labshare.web.bookings.forms import ConfirmForm
from labshare.web.manage.forms import QualificationForm
from labshare.web.manage.views import _fail, bp, own_instrument


@bp.route("/instruments/<int:instrument_id>/qualifications", methods=["GET", "POST"])
def instrument_qualifications(instrument_id: int) -> Any:
    instrument = own_instrument(instrument_id)
    form = QualificationForm()
    status = 200
    if form.validate_on_submit():
        email = User.normalize_email(form.email.data or "")
        user = db.session.scalar(select(User).where(User.email == email))
        try:
            if user is None or not user.active:
                raise ValidationFailed(_("No active account has this email."), field="email")
            qualifications.grant_qualification(
                current_user, user, instrument, valid_until=form.valid_until.data
            )
        except DomainError as exc:
            status = _fail(form, exc, aliases={"user": "email"})
        else:
            db.session.commit()
            flash(_("%(name)s may now book this instrument.", name=user.name), "success")
            return redirect(
                url_for("manage.instrument_qualifications", instrument_id=instrument_id)
            )
    elif form.is_submitted():
        status = 422
    instrument = own_instrument(instrument_id)
    rows = db.session.execute(
        select(Qualification, User)
        .join(User, User.id == Qualification.user_id)
        .where(Qualification.resource_id == instrument.id)
        .order_by(User.name)
    ).all()
    return render_template(
        "manage/qualifications.html",
        instrument=instrument,
        form=form,
        rows=rows,
        confirm=ConfirmForm(),
    ), status


@bp.post("/instruments/<int:instrument_id>/qualifications/<int:user_id>/revoke")
def revoke_qualification(instrument_id: int, user_id: int) -> Any:
    instrument = own_instrument(instrument_id)
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    if ConfirmForm().validate_on_submit() and qualifications.revoke_qualification(
        current_user, user, instrument
    ):
        db.session.commit()
        flash(_("Qualification of %(name)s removed.", name=user.name), "success")
    return redirect(url_for("manage.instrument_qualifications", instrument_id=instrument_id))
