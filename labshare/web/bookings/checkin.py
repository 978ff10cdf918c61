"""Check-in pages: the kiosk / QR page of a lab or instrument, the check-in
button, and the staff's no-show button. Routes register on the bookings blueprint.

The kiosk page shows, to a signed-in user, the bookings of this resource they may
check into: a company member their company's approved bookings that are not over,
staff of the resource's institute all of today's. Anyone else sees an empty list.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import segno
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import select

from labshare.booking import bookings
from labshare.booking.permissions import is_member_of_company, is_staff_of
from labshare.booking.policies import checkin
from labshare.booking.rules import institute_zone, local_midnight_after
from labshare.errors import DomainError, NotAllowed, NotFound
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, Resource
from labshare.timeutil import to_local, utcnow
from labshare.web.bookings import bp
from labshare.web.bookings.forms import ConfirmForm
from labshare.web.bookings.lookup import booking_or_404, resource_or_404

#: Where a check-in button sends the user back to.
BACK = {"kiosk", "detail"}


def kiosk_url(resource: Resource) -> str:
    """The absolute address of the resource's check-in page (for its QR code)."""
    base = str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    return base + url_for("bookings.kiosk", resource_id=resource.id)


def qr_svg(url: str) -> Markup:
    """``url`` as an inline SVG QR code (segno; medium error correction)."""
    code = segno.make(url, error="m", micro=False)
    svg = code.svg_inline(scale=6, border=4, title=url, svgclass="qr-code")
    # segno's own markup: path data, and the title it escapes itself.
    return Markup(svg)  # noqa: S704


def _day_bounds(resource: Resource, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    tz = institute_zone(resource)
    today = to_local(now, tz).date()
    return local_midnight_after(today - dt.timedelta(days=1), tz), local_midnight_after(today, tz)


def _kiosk_bookings(resource: Resource, now: dt.datetime) -> list[Booking]:
    if is_staff_of(current_user, resource.institute_id):
        day_start, day_end = _day_bounds(resource, now)
        return list(
            db.session.scalars(
                select(Booking)
                .where(
                    Booking.resource_id == resource.id,
                    Booking.start_at < day_end,
                    Booking.end_at > day_start,
                    Booking.status.in_(
                        [BookingStatus.APPROVED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW]
                    ),
                )
                .order_by(Booking.start_at, Booking.id)
            )
        )
    company_id = current_user.company_id
    if company_id is None or not is_member_of_company(current_user, company_id):
        return []
    _day_start, day_end = _day_bounds(resource, now)
    rows = db.session.scalars(
        select(Booking)
        .where(
            Booking.resource_id == resource.id,
            Booking.company_id == company_id,
            Booking.status == BookingStatus.APPROVED,
            Booking.end_at > now,
            Booking.start_at < day_end,
        )
        .order_by(Booking.start_at, Booking.id)
    )
    return list(rows)


@bp.get("/resources/<int:resource_id>/check-in")
@login_required
def kiosk(resource_id: int) -> Any:
    resource = resource_or_404(resource_id)
    now = utcnow()
    rows = _kiosk_bookings(resource, now)
    windows = checkin.windows(rows)
    staff = is_staff_of(current_user, resource.institute_id)
    open_ids = {
        b.id
        for b in rows
        if b.status == BookingStatus.APPROVED
        and b.checked_in_at is None
        and windows[b.id].is_open(now)
        and (staff or not windows[b.id].required or now < windows[b.id].release_at)
    }
    return render_template(
        "bookings/checkin.html",
        resource=resource,
        rows=rows,
        windows=windows,
        open_ids=open_ids,
        staff=staff,
        now=now,
        timezone=institute_zone(resource),
        form=ConfirmForm(),
    )


def _back(booking: Booking) -> Any:
    if request.form.get("back") == "kiosk":
        return redirect(url_for("bookings.kiosk", resource_id=booking.resource_id))
    return redirect(url_for("bookings.detail", booking_id=booking.id))


@bp.post("/bookings/<int:booking_id>/check-in")
@login_required
def check_in(booking_id: int) -> Any:
    booking = booking_or_404(booking_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        checkin.check_in(booking, current_user)
    except (NotAllowed, NotFound):
        db.session.rollback()
        raise
    except DomainError as exc:
        db.session.rollback()
        flash(
            _("Booking #%(id)d was not checked in: %(why)s", id=booking_id, why=exc.message),
            "error",
        )
        return _back(booking_or_404(booking_id))
    db.session.commit()
    flash(_("Booking #%(id)d is checked in. Welcome!", id=booking_id), "success")
    return _back(booking)


@bp.post("/bookings/<int:booking_id>/no-show")
@login_required
def no_show(booking_id: int) -> Any:
    booking = booking_or_404(booking_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        bookings.mark_no_show(booking, current_user)
    except (NotAllowed, NotFound):
        db.session.rollback()
        raise
    except DomainError as exc:
        db.session.rollback()
        flash(
            _(
                "Booking #%(id)d was not marked as a no-show: %(why)s",
                id=booking_id,
                why=exc.message,
            ),
            "error",
        )
        return _back(booking_or_404(booking_id))
    db.session.commit()
    flash(_("Booking #%(id)d was marked as a no-show.", id=booking_id), "success")
    return _back(booking)


@bp.app_context_processor
def _checkin_helpers() -> dict[str, Any]:
    """For the booking page: the check-in state of one booking."""

    def checkin_state(booking: Booking) -> dict[str, Any]:
        now = utcnow()
        win = checkin.window(booking)
        staff = is_staff_of(current_user, booking.institute_id)
        approved = booking.status == BookingStatus.APPROVED
        can = (
            approved
            and booking.checked_in_at is None
            and checkin.may_check_in(current_user, booking)
            and win.is_open(now)
            and (staff or not win.required or now < win.release_at)
        )
        return {
            "window": win,
            "can_check_in": can,
            "can_mark_no_show": approved
            and staff
            and booking.checked_in_at is None
            and now >= booking.start_at,
            "form": ConfirmForm(formdata=None),
        }

    return {"checkin_state": checkin_state}
