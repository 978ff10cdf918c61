"""In-app notifications: the user's rows of the outbox, with mark-read."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from labshare.extensions import db
from labshare.messaging import inbox
from labshare.web.bookings.forms import ConfirmForm

bp = Blueprint("notifications", __name__)


@bp.get("/notifications")
@login_required
def index() -> Any:
    page_arg = request.args.get("page", "1")
    page = int(page_arg) if page_arg.isdigit() and 0 < int(page_arg) < 10_000 else 1
    rows, total = inbox.list_notifications(current_user, page=page)
    pages = max(1, -(-total // inbox.PAGE_SIZE))
    return render_template(
        "bookings/notifications.html",
        notifications=rows,
        page=page,
        pages=pages,
        unread=inbox.unread_count(current_user),
        form=ConfirmForm(),
    )


@bp.post("/notifications/<int:notification_id>/read")
@login_required
def mark_read(notification_id: int) -> Any:
    form = ConfirmForm()
    if form.validate_on_submit():
        inbox.mark_read(current_user, notification_id)  # NotFound: not the user's
        db.session.commit()
        flash(_("Marked as read."), "success")
    return redirect(url_for("notifications.index"))


@bp.post("/notifications/read-all")
@login_required
def mark_all_read() -> Any:
    form = ConfirmForm()
    if form.validate_on_submit():
        count = inbox.mark_all_read(current_user)
        db.session.commit()
        flash(_("%(n)d notifications marked as read.", n=count), "success")
    return redirect(url_for("notifications.index"))
