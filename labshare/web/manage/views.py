"""Institute staff: the ``manage`` blueprint, the lookups every page of it uses
(another institute's ids answer 404), the dashboard (approval queue, today's
bookings) and the decisions on bookings and their usage. The catalogue pages are
resources.py, schedule.py and qualifications.py beside this one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from labshare.booking.bookings import approve_booking, record_usage, reject_booking
from labshare.booking.rules import institute_zone
from labshare.errors import DomainError, ValidationFailed
from labshare.extensions import db
from labshare.models import Booking, Institute, Instrument, Lab, Resource, Role
from labshare.timeutil import utcnow
from labshare.web.auth.decorators import role_required
from labshare.web.bookings.forms import ConfirmForm
from labshare.web.bookings.helpers import aware, local_input, show_error
from labshare.web.manage.forms import RejectForm, UsageForm
from labshare.web.manage.queue import build_dashboard

bp = Blueprint("manage", __name__, url_prefix="/manage")


@bp.before_request
@role_required(Role.STAFF)
def _staff_only() -> None:
    """Every page here is for institute staff (anonymous: login; others: 403)."""


def institute() -> Institute:
    inst: Institute | None = current_user.institute
    if inst is None:
        abort(403)
    return inst


def own_booking(booking_id: int) -> Booking:
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.institute_id != current_user.institute_id:
        abort(404)
    return booking


def own_resource(resource_id: int) -> Resource:
    resource = db.session.get(Resource, resource_id)
    if resource is None or resource.institute_id != current_user.institute_id:
        abort(404)
    return resource


def own_lab(lab_id: int) -> Lab:
    resource = own_resource(lab_id)
    if not isinstance(resource, Lab):
        abort(404)
    return resource


def own_instrument(instrument_id: int) -> Instrument:
    resource = own_resource(instrument_id)
    if not isinstance(resource, Instrument):
        abort(404)
    return resource


def _fail(form: Any, exc: DomainError, aliases: dict[str, str] | None = None) -> int:
    """Roll back and show ``exc`` (and every other bad field it lists) on ``form``."""
    db.session.rollback()
    errors = exc.details.get("errors")
    if isinstance(errors, dict) and len(errors) > 1:
        for name, message in errors.items():
            show_error(form, ValidationFailed(message, field=name), aliases=aliases)
    else:
        show_error(form, exc, aliases=aliases)
    return exc.status


T = TypeVar("T")


def save(
    form: Any,
    action: Callable[[], T],
    done: Callable[[T], tuple[str, str]],
    aliases: dict[str, str] | None = None,
) -> Any:
    """A form page's POST: when ``form`` is valid, ``action()``, commit, flash and
    redirect as ``done(result)`` says (message, URL). Otherwise the status to show the
    form again with: a refusal rolled back and shown on the form (its status), an
    invalid form 422, a GET 200."""
    if not form.validate_on_submit():
        return 422 if form.is_submitted() else 200
    try:
        result = action()
    except DomainError as exc:
        return _fail(form, exc, aliases)
    db.session.commit()
    message, target = done(result)
    flash(message, "success")
    return redirect(target)


# -- dashboard and bookings ---------------------------------------------------------------


@bp.get("")
def dashboard() -> Any:
    board = build_dashboard(institute())
    return render_template(
        "manage/dashboard.html",
        board=board,
        form=ConfirmForm(),
        reject_form=RejectForm(formdata=None),
    )


@bp.post("/bookings/<int:booking_id>/approve")
def approve(booking_id: int) -> Any:
    booking = own_booking(booking_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            approve_booking(booking, current_user)
        except DomainError as exc:
            db.session.rollback()
            flash(
                _("Booking #%(id)d was not approved: %(why)s", id=booking_id, why=exc.message),
                "error",
            )
        else:
            db.session.commit()
            flash(_("Booking #%(id)d approved.", id=booking_id), "success")
    return redirect(url_for("manage.dashboard"))


@bp.route("/bookings/<int:booking_id>/reject", methods=["GET", "POST"])
def reject(booking_id: int) -> Any:
    booking = own_booking(booking_id)
    form = RejectForm()
    status = save(
        form,
        lambda: reject_booking(booking, current_user, form.reason.data or ""),
        lambda _result: (
            _("Booking #%(id)d rejected.", id=booking_id),
            url_for("manage.dashboard"),
        ),
    )
    if not isinstance(status, int):
        return status
    booking = own_booking(booking_id)
    return render_template(
        "manage/reject.html", booking=booking, form=form, timezone=institute_zone(booking.resource)
    ), status


@bp.route("/bookings/<int:booking_id>/usage", methods=["GET", "POST"])
def usage(booking_id: int) -> Any:
    booking = own_booking(booking_id)
    tz = institute_zone(booking.resource)
    form = UsageForm()
    if request.method == "GET":
        # the booking's own check-in time, where someone checked in
        form.checked_in_at.data = local_input(booking.checked_in_at or booking.start_at, tz)
        form.checked_out_at.data = local_input(min(booking.end_at, utcnow()), tz)
        if form.checked_out_at.data <= form.checked_in_at.data:
            form.checked_out_at.data = local_input(booking.end_at, tz)

    def record() -> Any:
        return record_usage(
            booking,
            current_user,
            checked_in_at=aware(form.checked_in_at.data, tz, "checked_in_at"),
            checked_out_at=aware(form.checked_out_at.data, tz, "checked_out_at"),
            service_type=form.service_type.data or "",
            samples_count=int(form.samples_count.data or 0),
            problem_solved=form.problem_solved.data == "yes",
            notes=form.notes.data or None,
        )

    status = save(
        form,
        record,
        lambda _result: (
            _("Usage of booking #%(id)d recorded.", id=booking_id),
            url_for("manage.dashboard"),
        ),
    )
    if not isinstance(status, int):
        return status
    booking = own_booking(booking_id)
    return render_template("manage/usage.html", booking=booking, form=form, timezone=tz), status
