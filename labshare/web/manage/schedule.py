"""Institute staff: when a resource may be booked: its booking rules, a lab's
opening hours, closures (with what becomes of the bookings they cover)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select

from labshare.booking.policies import closures as closure_service
from labshare.booking.rules import effective_rules, format_period, institute_zone
from labshare.catalogue import catalogue_admin
from labshare.catalogue.catalogue_admin import RulesData
from labshare.errors import DomainError
from labshare.extensions import db
from labshare.models import Booking, Closure
from labshare.timeutil import utcnow
from labshare.web.bookings.forms import ConfirmForm
from labshare.web.bookings.helpers import aware
from labshare.web.manage.forms import ClosureForm, RulesForm, hours_form_class, parse_periods
from labshare.web.manage.views import _fail, bp, own_lab, own_resource, save


@bp.route("/resources/<int:resource_id>/rules", methods=["GET", "POST"])
def rules(resource_id: int) -> Any:
    resource = own_resource(resource_id)
    own = catalogue_admin.own_rules(resource)
    form = RulesForm(obj=own or effective_rules(resource))

    def set_rules() -> None:
        data = RulesData(
            slot_minutes=form.slot_minutes.data,
            min_minutes=form.min_minutes.data,
            max_minutes=form.max_minutes.data,
            lead_time_hours=form.lead_time_hours.data,
            horizon_days=form.horizon_days.data,
            requires_approval=bool(form.requires_approval.data),
            max_active_per_company=form.max_active_per_company.data,
            cancel_deadline_hours=form.cancel_deadline_hours.data,
            checkin_required=bool(form.checkin_required.data),
            checkin_opens_minutes=form.checkin_opens_minutes.data,
            checkin_release_minutes=form.checkin_release_minutes.data,
            waitlist_enabled=bool(form.waitlist_enabled.data),
            waitlist_offer_minutes=form.waitlist_offer_minutes.data,
            buffer_minutes=form.buffer_minutes.data,
            late_cancel_hours=form.late_cancel_hours.data,
            no_show_approval_threshold=form.no_show_approval_threshold.data,
        )
        catalogue_admin.set_rules(current_user, resource, data)

    status = save(
        form,
        set_rules,
        lambda _result: (
            _("Booking rules saved."),
            url_for("manage.rules", resource_id=resource_id),
        ),
    )
    if not isinstance(status, int):
        return status
    resource = own_resource(resource_id)
    return render_template(
        "manage/rules.html",
        resource=resource,
        form=form,
        has_own=catalogue_admin.own_rules(resource) is not None,
        confirm=ConfirmForm(),
    ), status


@bp.post("/resources/<int:resource_id>/rules/clear")
def clear_rules(resource_id: int) -> Any:
    resource = own_resource(resource_id)
    if ConfirmForm().validate_on_submit():
        catalogue_admin.clear_rules(current_user, resource)
        db.session.commit()
        flash(_("The resource now follows its lab's rules, or the defaults."), "success")
    return redirect(url_for("manage.rules", resource_id=resource_id))


@bp.route("/labs/<int:lab_id>/hours", methods=["GET", "POST"])
def hours(lab_id: int) -> Any:
    lab = own_lab(lab_id)
    form_class = hours_form_class()
    form = form_class()
    if request.method == "GET":
        by_day: dict[int, list[str]] = {}
        for p in lab.opening_periods:
            by_day.setdefault(p.weekday, []).append(format_period(p.opens, p.closes))
        for weekday, texts in by_day.items():
            getattr(form, f"day_{weekday}").data = ", ".join(texts)

    def set_hours() -> None:
        periods = [
            (weekday, opens, closes)
            for weekday in range(7)
            for opens, closes in parse_periods(getattr(form, f"day_{weekday}").data or "")
        ]
        catalogue_admin.set_opening_hours(current_user, lab, periods)

    status = save(
        form,
        set_hours,
        lambda _result: (_("Opening hours saved."), url_for("manage.hours", lab_id=lab_id)),
    )
    if not isinstance(status, int):
        return status
    return render_template(
        "manage/hours.html", lab=own_lab(lab_id), form=form, timezone=institute_zone(lab)
    ), status


@bp.route("/resources/<int:resource_id>/closures", methods=["GET", "POST"])
def closures(resource_id: int) -> Any:
    resource = own_resource(resource_id)
    tz = institute_zone(resource)
    form = ClosureForm()
    status = 200
    covered: list[Booking] = []
    if form.validate_on_submit():
        try:
            _closure, inside = closure_service.close(
                current_user,
                resource,
                aware(form.start.data, tz, "start"),
                aware(form.end.data, tz, "end"),
                kind=form.kind.data or "",
                note=form.note.data,
                on_bookings=form.on_bookings.data or None,
                message=form.message.data,
            )
        except closure_service.BookingsInClosure as exc:
            # the confirmation step: the bookings it covers, and what to do with them
            db.session.rollback()
            ids = [b["id"] for b in exc.details["bookings"]]
            covered = list(
                db.session.scalars(
                    select(Booking).where(Booking.id.in_(ids)).order_by(Booking.start_at)
                )
            )
        except DomainError as exc:
            status = _fail(form, exc)
        else:
            db.session.commit()
            flash(_("Closure added."), "success")
            if inside:
                flash(
                    ngettext(
                        "%(num)d company was told about its booking.",
                        "%(num)d bookings: their companies were told.",
                        len(inside),
                    ),
                    "success",
                )
            return redirect(url_for("manage.closures", resource_id=resource_id))
    elif form.is_submitted():
        status = 422
    resource = own_resource(resource_id)
    rows = db.session.scalars(
        select(Closure)
        .where(Closure.resource_id == resource.id, Closure.end_at > utcnow())
        .order_by(Closure.start_at)
    ).all()
    return render_template(
        "manage/closures.html",
        resource=resource,
        form=form,
        closures=rows,
        timezone=tz,
        confirm=ConfirmForm(),
        covered=covered,
    ), status


@bp.post("/closures/<int:closure_id>/delete")
def delete_closure(closure_id: int) -> Any:
    closure = db.session.get(Closure, closure_id)
    if closure is None:
        abort(404)
    resource = own_resource(closure.resource_id)
    if ConfirmForm().validate_on_submit():
        catalogue_admin.delete_closure(current_user, closure)
        db.session.commit()
        flash(_("Closure removed."), "success")
    return redirect(url_for("manage.closures", resource_id=resource.id))
