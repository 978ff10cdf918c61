"""Recurring bookings on the web: the booking form's "repeat" option with
its preview step, and the series page with its whole-series buttons. Routes
register on the bookings blueprint; the work is done by booking/policies/recurrence.py."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from labshare.booking.permissions import is_member_of_company, is_staff_of
from labshare.booking.policies import recurrence
from labshare.booking.rules import effective_rules, institute_zone
from labshare.errors import DomainError, NotFound
from labshare.extensions import db, limiter
from labshare.labels import WEEKDAY_LABELS
from labshare.models import BookingSeries, BookingStatus, Role
from labshare.ratelimit import booking_limit, caller_key
from labshare.web.auth.decorators import role_required
from labshare.web.bookings import bp
from labshare.web.bookings.forms import BookingForm, ConfirmForm
from labshare.web.bookings.helpers import aware, show_error
from labshare.web.bookings.lookup import resource_or_404

FREQ_CHOICES = [
    ("daily", _l("Daily")),
    ("weekly", _l("Weekly")),
    ("monthly", _l("Monthly")),
]
END_CHOICES = [("count", _l("After a number of times")), ("until", _l("On a date"))]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class RepeatRule(FlaskForm):
    """The repeat rule's fields after "how often" and "every", which each form words
    itself (shape only; the service checks the rule)."""

    freq: SelectField
    interval: IntegerField
    weekdays = MultiCheckboxField(
        _l("On"),
        choices=[(str(d), label) for d, label in enumerate(WEEKDAY_LABELS)],
        validators=[Optional()],
        description=_l("weekly only; none: the start's weekday"),
    )
    ends = SelectField(_l("Ends"), choices=END_CHOICES, default="count")
    count = IntegerField(
        _l("Number of times"),
        default=4,
        validators=[Optional(), NumberRange(min=1, max=recurrence.MAX_OCCURRENCES)],
    )
    until = DateField(_l("Last day"), validators=[Optional()])

    def spec(self) -> recurrence.RecurrenceSpec:
        weekdays = [int(d) for d in (self.weekdays.data or [])]
        by_count = self.ends.data == "count"
        return recurrence.validate_spec(
            self.freq.data or "",
            interval=self.interval.data or 1,
            weekdays=weekdays if self.freq.data == "weekly" else None,
            count=self.count.data if by_count else None,
            until=None if by_count else self.until.data,
        )


class SeriesForm(BookingForm, RepeatRule):
    """The booking form plus the repeat rule."""

    freq = SelectField(_l("How often"), choices=FREQ_CHOICES, default="weekly")
    interval = IntegerField(
        _l("Every"),
        default=1,
        validators=[InputRequired(), NumberRange(min=1, max=recurrence.MAX_INTERVAL)],
        description=_l("days, weeks or months between occurrences"),
    )


#: Service field names -> form field names.
ALIASES = {
    "recurrence.freq": "freq",
    "recurrence.interval": "interval",
    "recurrence.weekdays": "weekdays",
    "recurrence.until": "until",
    "recurrence.count": "count",
}


class SeriesReasonForm(FlaskForm):
    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=500)])


def _form_page(resource: Any, form: SeriesForm, status: int, plan: Any = None) -> Any:
    tz = institute_zone(resource)
    return render_template(
        "bookings/series_new.html",
        resource=resource,
        form=form,
        rules=effective_rules(resource),
        timezone=tz,
        plan=plan,
        max_occurrences=recurrence.MAX_OCCURRENCES,
    ), status


@bp.route("/resources/<int:resource_id>/book/series", methods=["GET", "POST"])
@limiter.limit(booking_limit, key_func=caller_key, methods=["POST"])
@role_required(Role.SME)
def new_series(resource_id: int) -> Any:
    """GET, or POST ``action=form`` (the booking form's "Repeat" button, carrying
    what was typed there): the form. ``action=preview``: every occurrence, ok or
    why not, and the choice to book the rest (``book_rest``), all or nothing
    (``book_all``), or nothing (back to the calendar)."""
    resource = resource_or_404(resource_id)
    tz = institute_zone(resource)
    form = SeriesForm()
    action = request.form.get("action", "preview")
    if request.method == "GET" or action == "form":
        return _form_page(resource, form, 200)
    if not form.validate_on_submit():
        return _form_page(resource, form, 422)
    try:
        start = aware(form.start.data, tz, "start")
        end = aware(form.end.data, tz, "end")
        spec = form.spec()
        if action not in ("book_all", "book_rest"):
            plan = recurrence.preview_series(
                resource,
                current_user,
                start,
                end,
                spec,
                purpose=form.purpose.data or "",
                samples=form.samples.data or None,
            )
            db.session.rollback()
            return _form_page(resource, form, 200, plan)
        plan = recurrence.create_series(
            resource,
            current_user,
            start,
            end,
            spec,
            purpose=form.purpose.data or "",
            samples=form.samples.data or None,
            skip_conflicting=action == "book_rest",
        )
    except DomainError as exc:
        db.session.rollback()
        show_error(form, exc, aliases=ALIASES)
        return _form_page(resource, form, exc.status)
    db.session.commit()
    assert plan.series is not None
    booked = sum(1 for o in plan.occurrences if o.ok)
    flash(
        _(
            "%(n)d bookings made; %(skipped)d occurrences skipped.",
            n=booked,
            skipped=len(plan.failed),
        ),
        "success",
    )
    return redirect(url_for("bookings.series_detail", series_id=plan.series.id))


# -- the series page ----------------------------------------------------------------------


def _series_or_404(series_id: int) -> BookingSeries:
    try:
        return recurrence.get_series(series_id, current_user)
    except NotFound:
        abort(404)


def _series_page(series: BookingSeries, status: int = 200, form: Any = None) -> Any:
    bookings = recurrence.series_bookings(series)
    staff = is_staff_of(current_user, series.institute_id)
    member = is_member_of_company(current_user, series.company_id)
    statuses = {BookingStatus(b.status) for b in bookings}
    holding = bool(statuses & {BookingStatus.PENDING, BookingStatus.APPROVED})
    return render_template(
        "bookings/series.html",
        series=series,
        bookings=bookings,
        timezone=series.timezone,
        can_decide=staff and BookingStatus.PENDING in statuses,
        can_cancel=(staff or member) and holding,
        confirm_form=ConfirmForm(formdata=None),
        reason_form=form or SeriesReasonForm(formdata=None),
    ), status


@bp.get("/series/<int:series_id>")
@login_required
def series_detail(series_id: int) -> Any:
    return _series_page(_series_or_404(series_id))


def _transition(series_id: int, name: str) -> Any:
    series = _series_or_404(series_id)
    form = SeriesReasonForm()
    if not form.validate_on_submit():
        return _series_page(series, 422, form)
    reason = form.reason.data or ""
    try:
        if name == "approve":
            outcome = recurrence.approve_series(series, current_user)
        elif name == "reject":
            outcome = recurrence.reject_series(series, current_user, reason)
        else:
            outcome = recurrence.cancel_series(series, current_user, reason or None)
    except DomainError as exc:
        db.session.rollback()
        show_error(form, exc)
        return _series_page(_series_or_404(series_id), exc.status, form)
    db.session.commit()
    flash(
        _(
            "%(n)d occurrences changed; %(skipped)d refused by a rule.",
            n=len(outcome.changed),
            skipped=len(outcome.skipped),
        ),
        "success",
    )
    for booking, refusal in outcome.skipped:
        flash(
            _("Booking %(id)s: %(message)s", id=booking.id, message=str(refusal.message)),
            "warning",
        )
    return redirect(url_for("bookings.series_detail", series_id=series_id))


@bp.post("/series/<int:series_id>/approve")
@login_required
def series_approve(series_id: int) -> Any:
    return _transition(series_id, "approve")


@bp.post("/series/<int:series_id>/reject")
@login_required
def series_reject(series_id: int) -> Any:
    return _transition(series_id, "reject")


@bp.post("/series/<int:series_id>/cancel")
@login_required
def series_cancel(series_id: int) -> Any:
    return _transition(series_id, "cancel")
