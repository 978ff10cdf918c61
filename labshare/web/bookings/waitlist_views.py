"""Waitlist pages: join from the booking form after a conflict, My
waitlist with take / decline / leave, and a resource's line for its institute's
staff and admins. Routes register on the bookings blueprint."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select

from labshare.booking.permissions import is_member_of_company
from labshare.booking.policies import waitlist
from labshare.booking.rules import effective_rules, institute_zone
from labshare.errors import DomainError, NotFound, SlotTaken
from labshare.extensions import db
from labshare.models import OPEN_WAITLIST_STATUSES, Role, WaitlistEntry, WaitlistStatus
from labshare.timeutil import utcnow
from labshare.web.auth.decorators import role_required
from labshare.web.bookings import bp
from labshare.web.bookings.forms import BookingForm, ConfirmForm
from labshare.web.bookings.helpers import aware
from labshare.web.bookings.lookup import resource_or_404

PER_PAGE = 20
STATUS_LABELS: dict[WaitlistStatus, Any] = {
    WaitlistStatus.WAITING: _l("Waiting"),
    WaitlistStatus.OFFERED: _l("Offered to you"),
    WaitlistStatus.BOOKED: _l("Booked"),
    WaitlistStatus.EXPIRED: _l("Expired"),
    WaitlistStatus.DECLINED: _l("Declined"),
    WaitlistStatus.LEFT: _l("Left"),
}
#: The same states as staff read them (an offer is made to the entry's company).
LINE_STATUS_LABELS: dict[WaitlistStatus, Any] = {
    **STATUS_LABELS,
    WaitlistStatus.OFFERED: _l("Offered, slot held"),
}


def offer_waitlist(exc: DomainError, resource: Any) -> None:
    """After a booking conflict, let the booking form offer "join the waitlist"."""
    if isinstance(exc, SlotTaken) and effective_rules(resource).waitlist_enabled:
        g.waitlist_join = True


def entry_or_404(entry_id: int) -> WaitlistEntry:
    entry = db.session.get(WaitlistEntry, entry_id)
    if entry is None or not is_member_of_company(current_user, entry.company_id):
        abort(404)
    return entry


@bp.post("/resources/<int:resource_id>/waitlist")
@role_required(Role.SME)
def waitlist_join(resource_id: int) -> Any:
    resource = resource_or_404(resource_id)
    tz = institute_zone(resource)
    form = BookingForm()
    back = url_for("bookings.new", resource_id=resource.id)
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for message in errors:
                flash(str(message), "error")
        return redirect(back)
    try:
        waitlist.join(
            resource,
            current_user,
            aware(form.start.data, tz, "start"),
            aware(form.end.data, tz, "end"),
            purpose=form.purpose.data or "",
        )
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
        return redirect(back)
    db.session.commit()
    flash(_("You are on the waitlist. We will tell you when the time becomes free."), "success")
    return redirect(url_for("bookings.waitlist_mine"))


@bp.get("/waitlist")
@role_required(Role.SME)
def waitlist_mine() -> Any:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    where = WaitlistEntry.company_id == current_user.company_id
    total = int(db.session.scalar(select(func.count(WaitlistEntry.id)).where(where)) or 0)
    entries = list(
        db.session.scalars(
            select(WaitlistEntry)
            .where(where)
            .order_by(WaitlistEntry.created_at.desc(), WaitlistEntry.id.desc())
            .offset((page - 1) * PER_PAGE)
            .limit(PER_PAGE)
        ).unique()
    )
    return render_template(
        "bookings/waitlist.html",
        entries=entries,
        positions={e.id: waitlist.position(e) for e in entries},
        open_statuses=[str(s) for s in OPEN_WAITLIST_STATUSES],
        now=utcnow(),
        page=page,
        pages=max((total + PER_PAGE - 1) // PER_PAGE, 1),
        confirm=ConfirmForm(),
        zone_of=institute_zone,
        status_labels=STATUS_LABELS,
    )


@bp.get("/resources/<int:resource_id>/waitlist")
@role_required(Role.STAFF, Role.ADMIN)
def resource_waitlist(resource_id: int) -> Any:
    """Who waits for the resource, in line order: its institute's staff and admins;
    staff of another institute get 404, like its other staff pages."""
    resource = resource_or_404(resource_id)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    try:
        line = waitlist.resource_line(resource, current_user, page=page, per_page=PER_PAGE)
    except NotFound:
        abort(404)
    return render_template(
        "bookings/resource_waitlist.html",
        resource=resource,
        line=line,
        page=page,
        pages=max((line.total + PER_PAGE - 1) // PER_PAGE, 1),
        timezone=institute_zone(resource),
        waitlist_enabled=effective_rules(resource).waitlist_enabled,
        status_labels=LINE_STATUS_LABELS,
        now=utcnow(),
    )


def _answer(entry_id: int, action: str) -> Any:
    entry = entry_or_404(entry_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("bookings.waitlist_mine"))
    try:
        if action == "accept":
            booking = waitlist.accept_offer(entry, current_user)
        elif action == "decline":
            waitlist.decline_offer(entry, current_user)
        else:
            waitlist.leave(entry, current_user)
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
        return redirect(url_for("bookings.waitlist_mine"))
    db.session.commit()
    if action == "accept":
        flash(_("The offered time is booked for you."), "success")
        return redirect(url_for("bookings.detail", booking_id=booking.id))
    if action == "decline":
        flash(_("You declined the offer; it passes to the next in line."), "success")
    else:
        flash(_("You left the waitlist."), "success")
    return redirect(url_for("bookings.waitlist_mine"))


@bp.post("/waitlist/<int:entry_id>/accept")
@role_required(Role.SME)
def waitlist_accept(entry_id: int) -> Any:
    return _answer(entry_id, "accept")


@bp.post("/waitlist/<int:entry_id>/decline")
@role_required(Role.SME)
def waitlist_decline(entry_id: int) -> Any:
    return _answer(entry_id, "decline")


@bp.post("/waitlist/<int:entry_id>/leave")
@role_required(Role.SME)
def waitlist_leave(entry_id: int) -> Any:
    return _answer(entry_id, "leave")
