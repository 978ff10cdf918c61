"""Staff book for a company that phones in (``booking/policies/on_behalf``): the company is
found by its credit code, optionally a member by e-mail."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import DateTimeLocalField, EmailField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from labshare.booking.policies import on_behalf
from labshare.booking.rules import institute_zone
from labshare.errors import DomainError, ValidationFailed
from labshare.extensions import db
from labshare.models import Company, User
from labshare.web.bookings.forms import LOCAL_FORMATS
from labshare.web.bookings.helpers import aware, show_error
from labshare.web.manage.views import bp, own_resource


class OnBehalfForm(FlaskForm):
    credit_code = StringField(
        _l("The company's credit code"),
        validators=[InputRequired(_l("This field is required.")), Length(max=18)],
    )
    email = EmailField(
        _l("The member's e-mail (optional)"),
        validators=[Optional(), Length(max=254)],
        description=_l("Default: the company's administrator."),
    )
    start = DateTimeLocalField(
        _l("From"), format=LOCAL_FORMATS, validators=[InputRequired(_l("Enter a date and time."))]
    )
    end = DateTimeLocalField(
        _l("Until"), format=LOCAL_FORMATS, validators=[InputRequired(_l("Enter a date and time."))]
    )
    purpose = TextAreaField(
        _l("Purpose"), validators=[InputRequired(_l("This field is required.")), Length(max=500)]
    )


def _company_and_member(form: OnBehalfForm) -> tuple[int, int | None]:
    code = (form.credit_code.data or "").strip().upper()
    company_id = db.session.scalar(select(Company.id).where(Company.credit_code == code))
    if company_id is None:
        raise ValidationFailed(_l("No company has this credit code."), field="credit_code")
    email = (form.email.data or "").strip().lower()
    if not email:
        return company_id, None
    user_id = db.session.scalar(
        select(User.id).where(func.lower(User.email) == email, User.company_id == company_id)
    )
    if user_id is None:
        raise ValidationFailed(_l("Choose a member of the company."), field="email")
    return company_id, user_id


@bp.route("/resources/<int:resource_id>/book-for", methods=["GET", "POST"])
def book_for(resource_id: int) -> Any:
    resource = own_resource(resource_id)
    tz = institute_zone(resource)
    form = OnBehalfForm()
    status = 200
    if form.validate_on_submit():
        try:
            company_id, user_id = _company_and_member(form)
            booking = on_behalf.book_for_company(
                current_user,
                resource,
                company_id,
                aware(form.start.data, tz, "start"),
                aware(form.end.data, tz, "end"),
                purpose=form.purpose.data or "",
                user_id=user_id,
            )
        except DomainError as exc:
            db.session.rollback()
            show_error(form, exc, aliases={"user_id": "email", "company_id": "credit_code"})
            status = exc.status
        else:
            db.session.commit()
            flash(_("Booked for the company; it has been told."), "success")
            return redirect(url_for("bookings.detail", booking_id=booking.id))
    elif form.is_submitted():
        status = 422
    return render_template(
        "manage/book_for.html", resource=own_resource(resource_id), form=form, timezone=tz
    ), status
