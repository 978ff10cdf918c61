"""SME pages: the week calendar, the booking form, My bookings, one booking, cancel.

Views are thin: parse, load, authorize, one service call, commit, respond. Times
are shown and typed in the institute's zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select

from labshare.accounts import tokens
from labshare.booking.bookings import cancel_booking, compute_fee
from labshare.booking.move import may_move
from labshare.booking.permissions import (
    is_member_of_company,
    is_staff_of,
    visible_bookings,
)
from labshare.booking.policies import recurrence
from labshare.booking.policies.no_shows import cancellation_is_late, no_show_count  # policies
from labshare.booking.rules import effective_rules, institute_zone
from labshare.errors import DomainError
from labshare.extensions import db, limiter
from labshare.labels import WEEKDAY_LABELS
from labshare.messaging import inbox
from labshare.models import HOLDING_STATUSES, Booking, BookingStatus, Resource, Role
from labshare.ops import audit
from labshare.ratelimit import booking_limit, caller_key
from labshare.timeutil import utcnow
from labshare.web.auth.decorators import role_required
from labshare.web.bookings import bp
from labshare.web.bookings.calendar import build_week, parse_week
from labshare.web.bookings.forms import BookingForm, CancelForm
from labshare.web.bookings.group_views import book
from labshare.web.bookings.helpers import aware, parse_local_arg, show_error
from labshare.web.bookings.lookup import booking_or_404, resource_or_404
from labshare.web.bookings.waitlist_views import offer_waitlist

SLOT_LABELS: dict[str, Any] = {
    "free": _l("Free"),
    "booked": _l("Booked"),
    "offered": _l("Offered to the waitlist"),  # waitlist
    "closed": _l("Closed"),
    "closure": _l("Closed (maintenance or holiday)"),
    "holiday": _l("Public holiday"),
    "calibration_expired": _l("Calibration expired"),
    "unavailable": _l("Not available"),
    "past": _l("Past"),
    "soon": _l("Too soon to book"),
    "later": _l("Not yet bookable"),
    "none": "—",
}


@bp.app_context_processor
def _calendar_labels() -> dict[str, Any]:
    def weekday_label(weekday: int) -> str:
        return str(WEEKDAY_LABELS[weekday])

    def slot_label(state: str) -> str:
        return str(SLOT_LABELS.get(state, state))

    return {"weekday_label": weekday_label, "slot_label": slot_label}


HISTORY_PER_PAGE = 20
UPCOMING_LIMIT = 200
SERIES_LIMIT = 10  # My bookings lists this many series (those still running first)


def cancel_deadlines(bookings: Iterable[Booking]) -> dict[int, dt.datetime]:
    """When each booking stops being cancellable online (its rules' deadline)."""
    hours: dict[int, int] = {}
    out: dict[int, dt.datetime] = {}
    for booking in bookings:
        if booking.resource_id not in hours:
            hours[booking.resource_id] = effective_rules(booking.resource).cancel_deadline_hours
        out[booking.id] = booking.start_at - dt.timedelta(hours=hours[booking.resource_id])
    return out


def may_cancel(booking: Booking, deadline: dt.datetime | None) -> bool:
    if booking.status not in HOLDING_STATUSES:
        return False
    if is_staff_of(current_user, booking.institute_id):
        return True
    return (
        is_member_of_company(current_user, booking.company_id)
        and deadline is not None
        and utcnow() <= deadline
    )


# -- the week calendar --------------------------------------------------------------------


@bp.get("/resources/<int:resource_id>/calendar")
def calendar(resource_id: int) -> Any:
    resource = resource_or_404(resource_id)
    week_arg = request.args.get("week")
    monday = parse_week(week_arg)
    if week_arg and monday is None:
        flash(_("Unknown week %(week)s; showing this week.", week=week_arg[:20]), "warning")
    week = build_week(resource, monday)
    return render_template("bookings/calendar.html", resource=resource, week=week)


# -- the booking form ---------------------------------------------------------------------


@bp.route("/resources/<int:resource_id>/book", methods=["GET", "POST"])
@limiter.limit(booking_limit, key_func=caller_key, methods=["POST"])
@role_required(Role.SME)
def new(resource_id: int) -> Any:
    resource = resource_or_404(resource_id)
    tz = institute_zone(resource)
    form = BookingForm()
    if request.method == "GET":
        form.start.data = parse_local_arg(request.args.get("start"))
        form.end.data = parse_local_arg(request.args.get("end"))
    status = 200
    if form.validate_on_submit():
        try:
            booking = book(
                resource,
                current_user,
                aware(form.start.data, tz, "start"),
                aware(form.end.data, tz, "end"),
                purpose=form.purpose.data or "",
                samples=form.samples.data or None,
            )
        except DomainError as exc:
            db.session.rollback()
            show_error(form, exc)
            status = exc.status
            offer_waitlist(exc, resource)
        else:
            db.session.commit()
            if booking.status == BookingStatus.PENDING:
                flash(_("Your request was sent; the institute will confirm it."), "success")
            else:
                flash(_("Your booking is confirmed."), "success")
            return redirect(url_for("bookings.detail", booking_id=booking.id))
    elif form.is_submitted():
        status = 422
    return render_template(
        "bookings/new.html",
        resource=resource,
        form=form,
        rules=effective_rules(resource),
        timezone=tz,
        estimate=_estimate(resource, form, tz),
        week=request.args.get("week"),
    ), status


def _estimate(resource: Resource, form: BookingForm, tz: str) -> Any:
    """The fee of the typed slot, when it is a valid one (shown, never enforced)."""
    try:
        start = aware(form.start.data, tz, "start")
        end = aware(form.end.data, tz, "end")
    except DomainError:
        return None
    if end <= start or end - start > dt.timedelta(days=31):
        return None
    return compute_fee(resource, start, end)


# -- My bookings --------------------------------------------------------------------------


def _feed_url() -> str:
    had = bool(current_user.calendar_token)
    secret = tokens.calendar_token(current_user)
    if not had:
        db.session.commit()
    base = str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    return f"{base}/calendar/{secret}.ics"


@bp.get("/bookings")
@role_required(Role.SME)
def mine() -> Any:
    now = utcnow()
    scope = visible_bookings(current_user)
    upcoming = list(
        db.session.scalars(
            select(Booking)
            .where(scope, Booking.status.in_(HOLDING_STATUSES), Booking.end_at > now)
            .order_by(Booking.start_at)
            .limit(UPCOMING_LIMIT)
        )
    )
    history_query = select(Booking).where(scope)
    if upcoming:
        history_query = history_query.where(Booking.id.not_in([b.id for b in upcoming]))
    history = db.paginate(
        history_query.order_by(Booking.start_at.desc(), Booking.id.desc()),
        per_page=HISTORY_PER_PAGE,
        max_per_page=HISTORY_PER_PAGE,
        error_out=False,
    )
    deadlines = cancel_deadlines(upcoming)
    series, series_total = recurrence.series_overview(current_user, now, limit=SERIES_LIMIT)
    return render_template(
        "bookings/mine.html",
        series=series,
        series_total=series_total,
        upcoming=upcoming,
        history=history,
        deadlines=deadlines,
        cancellable={b.id for b in upcoming if may_cancel(b, deadlines.get(b.id))},
        cancel_form=CancelForm(formdata=None),
        feed_url=_feed_url(),
        unread=inbox.unread_count(current_user),
        zone_of=institute_zone,
    )


@bp.get("/bookings/all")
@role_required(Role.ADMIN)
def all() -> Any:
    status = request.args.get("status", "")
    query = select(Booking).order_by(Booking.start_at.desc(), Booking.id.desc())
    if status in {s.value for s in BookingStatus}:
        query = query.where(Booking.status == BookingStatus(status))
    page = db.paginate(query, per_page=50, max_per_page=50, error_out=False)
    return render_template(
        "bookings/all.html",
        page=page,
        status=status,
        statuses=list(BookingStatus),
        zone_of=institute_zone,
    )


# -- one booking --------------------------------------------------------------------------


def _detail(booking: Booking, form: CancelForm, status: int = 200) -> Any:
    deadline = cancel_deadlines([booking])[booking.id]
    history = audit.booking_history(booking.id)
    return render_template(
        "bookings/detail.html",
        booking=booking,
        history=history,
        history_names=audit.actor_names(history),
        deadline=deadline,
        can_cancel=may_cancel(booking, deadline),
        can_move=may_move(current_user, booking),
        cancel_form=form,
        timezone=institute_zone(booking.resource),
        is_staff=is_staff_of(current_user, booking.institute_id),
        company_no_shows=(  # booking policies: the company's record, for staff
            no_show_count(booking.company_id, booking.institute_id)
            if is_staff_of(current_user, booking.institute_id)
            else None
        ),
        cancel_is_late=(  # booking policies: the company is warned before a late cancellation
            not is_staff_of(current_user, booking.institute_id) and cancellation_is_late(booking)
        ),
    ), status


@bp.get("/bookings/<int:booking_id>")
@login_required
def detail(booking_id: int) -> Any:
    return _detail(booking_or_404(booking_id), CancelForm(formdata=None))


@bp.post("/bookings/<int:booking_id>/cancel")
@login_required
def cancel(booking_id: int) -> Any:
    booking = booking_or_404(booking_id)
    form = CancelForm()
    if not form.validate_on_submit():
        return _detail(booking, form, 422)
    try:
        cancel_booking(booking, current_user, form.reason.data or None)
    except DomainError as exc:
        db.session.rollback()
        show_error(form, exc)
        return _detail(booking_or_404(booking_id), form, exc.status)
    db.session.commit()
    flash(_("The booking was cancelled."), "success")
    return redirect(url_for("bookings.detail", booking_id=booking_id))
