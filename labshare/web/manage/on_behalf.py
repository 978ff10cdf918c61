"""Staff book for a company that phones in (``booking/policies/on_behalf``): the company is
found by its credit code, optionally a member by e-mail. The same form books one
booking, a lab with instruments ticked (a group), or, with "Repeat", a series."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    EmailField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from labshare.booking.policies import groups, on_behalf, recurrence
from labshare.booking.rules import institute_zone
from labshare.errors import DomainError, ValidationFailed
from labshare.extensions import db
from labshare.models import Booking, Company, User
from labshare.web.bookings.forms import LOCAL_FORMATS
from labshare.web.bookings.group_views import chosen_ids, group_choices
from labshare.web.bookings.helpers import aware, show_error
from labshare.web.bookings.series import ALIASES, FREQ_CHOICES, RepeatRule
from labshare.web.manage.views import bp, own_resource


class OnBehalfForm(RepeatRule):
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
    # "Repeat": empty books once; else a series with the rule below (the service
    # checks it, as on the company's series form).
    freq = SelectField(
        _l("Repeat"), choices=[("", _l("Does not repeat")), *FREQ_CHOICES], default=""
    )
    interval = IntegerField(
        _l("Every"),
        default=1,
        validators=[Optional(), NumberRange(min=1, max=recurrence.MAX_INTERVAL)],
        description=_l("days, weeks or months between occurrences"),
    )
    skip_conflicting = BooleanField(_l("Book the occurrences that can be, skip the rest"))


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
            target = _book(form, resource, tz, company_id, user_id)
        except DomainError as exc:
            db.session.rollback()
            aliases = {"user_id": "email", "company_id": "credit_code", **ALIASES}
            show_error(form, exc, aliases=aliases)
            status = exc.status
        else:
            db.session.commit()
            flash(_("Booked for the company; it has been told."), "success")
            return redirect(target)
    elif form.is_submitted():
        status = 422
    resource = own_resource(resource_id)
    return render_template(
        "manage/book_for.html",
        resource=resource,
        form=form,
        timezone=tz,
        choices=group_choices(resource),
        chosen=_chosen(),
    ), status


def _chosen() -> set[int]:
    try:
        return set(chosen_ids())
    except ValidationFailed:
        return set()


def _book(form: OnBehalfForm, resource: Any, tz: str, company_id: int, user_id: int | None) -> str:
    """Book what the form asks (a series, a group or one booking); the page to go to."""
    start = aware(form.start.data, tz, "start")
    end = aware(form.end.data, tz, "end")
    purpose = form.purpose.data or ""
    ids = chosen_ids()
    if form.freq.data:
        if ids:
            raise ValidationFailed(
                _l("A series books one resource: untick the instruments, or book once."),
                field="instrument_ids",
            )
        plan = on_behalf.book_series_for_company(
            current_user,
            resource,
            company_id,
            start,
            end,
            form.spec(),
            purpose=purpose,
            user_id=user_id,
            skip_conflicting=bool(form.skip_conflicting.data),
        )
        assert plan.series is not None
        return url_for("bookings.series_detail", series_id=plan.series.id)
    booking: Booking
    if ids:
        group = on_behalf.book_group_for_company(
            current_user, resource, ids, company_id, start, end, purpose=purpose, user_id=user_id
        )
        booking = next(b for b in groups.members_of(group.id) if b.resource_id == resource.id)
    else:
        booking = on_behalf.book_for_company(
            current_user, resource, company_id, start, end, purpose=purpose, user_id=user_id
        )
    return url_for("bookings.detail", booking_id=booking.id)
