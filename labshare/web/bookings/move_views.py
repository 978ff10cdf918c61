"""Moving a booking on the web: the resource's week grid, whose free slots fill the
form, and the form itself (CSRF) posting to the same service as the API."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateTimeLocalField
from wtforms.validators import InputRequired

from labshare.booking.move import may_move, move_booking
from labshare.booking.permissions import is_member_of_company, is_staff_of, visible_bookings
from labshare.booking.rules import effective_rules, institute_zone
from labshare.errors import DomainError
from labshare.extensions import db, limiter
from labshare.models import HOLDING_STATUSES, Booking, BookingStatus, Resource
from labshare.ratelimit import booking_limit, caller_key
from labshare.timeutil import utcnow
from labshare.web.bookings.calendar import build_week, parse_week
from labshare.web.bookings.forms import LOCAL_FORMATS
from labshare.web.bookings.helpers import aware, local_input, parse_local_arg, show_error
from labshare.web.bookings.views import booking_or_404, bp

#: The calendar lists at most this many of the viewer's bookings to move.
CALENDAR_MOVABLE = 10


@bp.app_context_processor
def _movable() -> dict[str, Any]:
    def movable_bookings(resource: Resource) -> list[Booking]:
        """The viewer's upcoming bookings of ``resource`` that they may move now."""
        if not current_user.is_authenticated:
            return []
        now = utcnow()
        rows = db.session.scalars(
            select(Booking)
            .where(
                visible_bookings(current_user),
                Booking.resource_id == resource.id,
                Booking.status.in_(HOLDING_STATUSES),
                Booking.start_at > now,
            )
            .order_by(Booking.start_at, Booking.id)
            .limit(CALENDAR_MOVABLE * 3)
        )
        return [b for b in rows if may_move(current_user, b, now)][:CALENDAR_MOVABLE]

    return {"movable_bookings": movable_bookings}


class MoveForm(FlaskForm):
    start = DateTimeLocalField(
        _l("New start"),
        format=LOCAL_FORMATS,
        validators=[InputRequired(message=_l("Enter a date and time."))],
    )
    end = DateTimeLocalField(
        _l("New end"),
        format=LOCAL_FORMATS,
        validators=[InputRequired(message=_l("Enter a date and time."))],
    )


@bp.route("/bookings/<int:booking_id>/move", methods=["GET", "POST"])
@limiter.limit(booking_limit, key_func=caller_key, methods=["POST"])
@login_required
def move(booking_id: int) -> Any:
    booking = booking_or_404(booking_id)
    if not (
        is_staff_of(current_user, booking.institute_id)
        or is_member_of_company(current_user, booking.company_id)
    ):
        abort(403)  # sees it (an admin) but does not act on it
    resource = booking.resource
    tz = institute_zone(resource)
    form = MoveForm()
    status = 200
    if request.method == "GET":
        if not may_move(current_user, booking):
            abort(403 if booking.status in (BookingStatus.PENDING, BookingStatus.APPROVED) else 409)
        # a slot chosen on the grid keeps the booking's length unless an end is given
        start = parse_local_arg(request.args.get("start"))
        end = parse_local_arg(request.args.get("end"))
        form.start.data = start or local_input(booking.start_at, tz)
        if end is None and start is not None:
            try:
                end = start + (booking.end_at - booking.start_at)
            except OverflowError:  # a start at the calendar's end: the user types one
                end = None
        elif end is None:
            end = local_input(booking.end_at, tz)
        form.end.data = end
    elif form.validate_on_submit():
        try:
            move_booking(
                booking,
                current_user,
                aware(form.start.data, tz, "start"),
                aware(form.end.data, tz, "end"),
            )
        except DomainError as exc:
            db.session.rollback()
            show_error(form, exc)
            status = exc.status
            booking = booking_or_404(booking_id)
        else:
            moved_status = booking.status
            db.session.commit()
            if moved_status == BookingStatus.PENDING and not is_staff_of(
                current_user, booking.institute_id
            ):
                flash(_("The booking was moved; the new time waits for approval."), "success")
            else:
                flash(_("The booking was moved."), "success")
            return redirect(url_for("bookings.detail", booking_id=booking_id))
    else:
        status = 422
    week_arg = request.args.get("week")
    monday = parse_week(week_arg)
    if monday is None:  # the week of the booking
        local_start = local_input(booking.start_at, tz)
        assert local_start is not None
        monday = local_start.date()
        monday = monday.fromordinal(monday.toordinal() - monday.weekday())
    return render_template(
        "bookings/move.html",
        booking=booking,
        resource=resource,
        form=form,
        rules=effective_rules(resource),
        timezone=tz,
        week=build_week(resource, monday),
    ), status
