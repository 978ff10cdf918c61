"""Institute staff: the dashboard (approval queue, today's bookings, usage), and
the institute's catalogue (labs, instruments, rules, hours, closures,
qualifications). Another institute's ids answer 404."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import func, or_, select

from labshare.booking.bookings import approve_booking, record_usage, reject_booking
from labshare.booking.policies import closures as closure_service
from labshare.booking.policies import qualifications
from labshare.booking.rules import effective_rules, format_period, institute_zone
from labshare.catalogue import catalogue_admin
from labshare.catalogue.catalogue_admin import InstrumentData, LabData, RulesData
from labshare.errors import DomainError, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    Booking,
    Closure,
    Institute,
    Instrument,
    Lab,
    Qualification,
    Resource,
    Role,
    User,
)
from labshare.timeutil import to_local, utcnow
from labshare.web.auth.decorators import role_required
from labshare.web.bookings.forms import ConfirmForm
from labshare.web.bookings.helpers import aware, local_input, show_error
from labshare.web.manage.forms import (
    ClosureForm,
    InstrumentForm,
    LabForm,
    QualificationForm,
    RejectForm,
    RulesForm,
    UsageForm,
    hours_form_class,
    parse_periods,
)
from labshare.web.manage.queue import build_dashboard

bp = Blueprint("manage", __name__, url_prefix="/manage")

PER_PAGE = 50


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
    status = 200
    if form.validate_on_submit():
        try:
            reject_booking(booking, current_user, form.reason.data or "")
        except DomainError as exc:
            status = _fail(form, exc)
        else:
            db.session.commit()
            flash(_("Booking #%(id)d rejected.", id=booking_id), "success")
            return redirect(url_for("manage.dashboard"))
    elif form.is_submitted():
        status = 422
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
        # check-in (issue 8): the booking's own check-in time, where someone checked in
        form.checked_in_at.data = local_input(booking.checked_in_at or booking.start_at, tz)
        form.checked_out_at.data = local_input(min(booking.end_at, utcnow()), tz)
        if form.checked_out_at.data <= form.checked_in_at.data:
            form.checked_out_at.data = local_input(booking.end_at, tz)
    status = 200
    if form.validate_on_submit():
        try:
            record_usage(
                booking,
                current_user,
                checked_in_at=aware(form.checked_in_at.data, tz, "checked_in_at"),
                checked_out_at=aware(form.checked_out_at.data, tz, "checked_out_at"),
                service_type=form.service_type.data or "",
                samples_count=int(form.samples_count.data or 0),
                problem_solved=form.problem_solved.data == "yes",
                notes=form.notes.data or None,
            )
        except DomainError as exc:
            status = _fail(form, exc)
        else:
            db.session.commit()
            flash(_("Usage of booking #%(id)d recorded.", id=booking_id), "success")
            return redirect(url_for("manage.dashboard"))
    elif form.is_submitted():
        status = 422
    booking = own_booking(booking_id)
    return render_template("manage/usage.html", booking=booking, form=form, timezone=tz), status


# -- the catalogue: labs and instruments --------------------------------------------------


@bp.get("/resources")
def resources() -> Any:
    inst = institute()
    labs = db.session.scalars(select(Lab).where(Lab.institute_id == inst.id).order_by(Lab.id)).all()
    q = (request.args.get("q") or "").strip()[:100]
    query = select(Instrument).where(Instrument.institute_id == inst.id)
    if q:
        pattern = f"%{q}%"
        query = query.where(
            or_(
                Instrument.name.ilike(pattern),
                Instrument.name_en.ilike(pattern),
                Instrument.model.ilike(pattern),
                Instrument.serial_number.ilike(pattern),
            )
        )
    page = db.paginate(
        query.order_by(Instrument.lab_id, Instrument.id),
        per_page=PER_PAGE,
        max_per_page=PER_PAGE,
        error_out=False,
    )
    counts: dict[int, int] = dict(
        db.session.execute(  # type: ignore[arg-type]
            select(Instrument.lab_id, func.count(Instrument.id))
            .where(Instrument.institute_id == inst.id)
            .group_by(Instrument.lab_id)
        ).all()
    )
    return render_template(
        "manage/resources.html",
        labs=labs,
        page=page,
        q=q,
        counts=counts,
        institute=inst,
        today=to_local(utcnow(), inst.timezone).date(),
    )


def _lab_data(form: LabForm) -> LabData:
    return LabData(
        name=form.name.data or "",
        name_en=form.name_en.data,
        description=form.description.data,
        field=form.field.data or "",
        status=form.status.data or "",
        fee_per_hour=form.fee_per_hour.data,
        fee_waiver_percent=form.fee_waiver_percent.data,
        requires_qualification=bool(form.requires_qualification.data),
        location=form.location.data,
        capacity=form.capacity.data,
    )


@bp.route("/labs/new", methods=["GET", "POST"])
def new_lab() -> Any:
    form = LabForm()
    status = 200
    if form.validate_on_submit():
        try:
            lab = catalogue_admin.create_lab(current_user, institute(), _lab_data(form))
        except DomainError as exc:
            status = _fail(form, exc)
        else:
            db.session.commit()
            flash(_("Lab “%(name)s” created. Now set its opening hours.", name=lab.name), "success")
            return redirect(url_for("manage.hours", lab_id=lab.id))
    elif form.is_submitted():
        status = 422
    return render_template("manage/lab_form.html", form=form, lab=None), status


@bp.route("/labs/<int:lab_id>/edit", methods=["GET", "POST"])
def edit_lab(lab_id: int) -> Any:
    lab = own_lab(lab_id)
    form = LabForm(obj=lab)
    status = 200
    if form.validate_on_submit():
        try:
            catalogue_admin.update_lab(current_user, lab, _lab_data(form))
        except DomainError as exc:
            status = _fail(form, exc)
        else:
            db.session.commit()
            flash(_("Lab “%(name)s” saved.", name=lab.name), "success")
            return redirect(url_for("manage.resources"))
    elif form.is_submitted():
        status = 422
    return render_template("manage/lab_form.html", form=form, lab=own_lab(lab_id)), status


def _lab_choices(form: InstrumentForm) -> None:
    labs = db.session.scalars(
        select(Lab).where(Lab.institute_id == current_user.institute_id).order_by(Lab.id)
    ).all()
    form.lab_id.choices = [(str(lab.id), lab.name) for lab in labs]


def _chosen_lab(form: InstrumentForm) -> Lab | None:
    value = form.lab_id.data or ""
    if not value.isdigit():
        return None
    lab = db.session.get(Lab, int(value))
    if lab is None or lab.institute_id != current_user.institute_id:
        return None
    return lab


def _instrument_data(form: InstrumentForm) -> InstrumentData:
    return InstrumentData(
        name=form.name.data or "",
        name_en=form.name_en.data,
        description=form.description.data,
        field=form.field.data or "",
        status=form.status.data or "",
        fee_per_hour=form.fee_per_hour.data,
        fee_waiver_percent=form.fee_waiver_percent.data,
        requires_qualification=bool(form.requires_qualification.data),
        model=form.model.data,
        manufacturer=form.manufacturer.data,
        serial_number=form.serial_number.data,
        asset_number=form.asset_number.data,
        measurand=form.measurand.data or "",
        unit=form.unit.data or "",
        range_min=form.range_min.data,
        range_max=form.range_max.data,
        accuracy=form.accuracy.data,
        calibration_valid_until=form.calibration_valid_until.data,
        certificate_number=form.certificate_number.data,
        bundle=form.bundle.data or "",  # booking groups (issue 8)
    )


@bp.route("/instruments/new", methods=["GET", "POST"])
def new_instrument() -> Any:
    form = InstrumentForm()
    _lab_choices(form)
    if request.method == "GET" and request.args.get("lab", "").isdigit():
        form.lab_id.data = request.args["lab"]
    status = 200
    if form.validate_on_submit():
        try:
            instrument = catalogue_admin.create_instrument(
                current_user, _chosen_lab(form), _instrument_data(form)
            )
        except DomainError as exc:
            status = _fail(form, exc)
        else:
            db.session.commit()
            flash(_("Instrument “%(name)s” created.", name=instrument.name), "success")
            return redirect(url_for("manage.resources"))
    elif form.is_submitted():
        status = 422
    return render_template("manage/instrument_form.html", form=form, instrument=None), status


@bp.route("/instruments/<int:instrument_id>/edit", methods=["GET", "POST"])
def edit_instrument(instrument_id: int) -> Any:
    instrument = own_instrument(instrument_id)
    form = InstrumentForm(obj=instrument)
    _lab_choices(form)
    if request.method == "GET":
        form.lab_id.data = str(instrument.lab_id)
    status = 200
    if form.validate_on_submit():
        try:
            catalogue_admin.update_instrument(
                current_user, instrument, _chosen_lab(form), _instrument_data(form)
            )
        except DomainError as exc:
            status = _fail(form, exc)
        else:
            db.session.commit()
            flash(_("Instrument “%(name)s” saved.", name=instrument.name), "success")
            return redirect(url_for("manage.resources"))
    elif form.is_submitted():
        status = 422
    return render_template(
        "manage/instrument_form.html", form=form, instrument=own_instrument(instrument_id)
    ), status


# -- booking rules, opening hours, closures -----------------------------------------------


@bp.route("/resources/<int:resource_id>/rules", methods=["GET", "POST"])
def rules(resource_id: int) -> Any:
    resource = own_resource(resource_id)
    own = catalogue_admin.own_rules(resource)
    form = RulesForm(obj=own or effective_rules(resource))
    status = 200
    if form.validate_on_submit():
        data = RulesData(
            slot_minutes=form.slot_minutes.data,
            min_minutes=form.min_minutes.data,
            max_minutes=form.max_minutes.data,
            lead_time_hours=form.lead_time_hours.data,
            horizon_days=form.horizon_days.data,
            requires_approval=bool(form.requires_approval.data),
            max_active_per_company=form.max_active_per_company.data,
            cancel_deadline_hours=form.cancel_deadline_hours.data,
            checkin_required=bool(form.checkin_required.data),  # check-in (issue 8)
            checkin_opens_minutes=form.checkin_opens_minutes.data,  # check-in (issue 8)
            checkin_release_minutes=form.checkin_release_minutes.data,  # check-in (issue 8)
            waitlist_enabled=bool(form.waitlist_enabled.data),  # waitlist (issue 8)
            waitlist_offer_minutes=form.waitlist_offer_minutes.data,  # waitlist (issue 8)
            buffer_minutes=form.buffer_minutes.data,  # booking policies (issue 8)
            late_cancel_hours=form.late_cancel_hours.data,  # booking policies
            no_show_approval_threshold=form.no_show_approval_threshold.data,  # booking policies
        )
        try:
            catalogue_admin.set_rules(current_user, resource, data)
        except DomainError as exc:
            status = _fail(form, exc)
        else:
            db.session.commit()
            flash(_("Booking rules saved."), "success")
            return redirect(url_for("manage.rules", resource_id=resource_id))
    elif form.is_submitted():
        status = 422
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
    status = 200
    if form.validate_on_submit():
        periods = [
            (weekday, opens, closes)
            for weekday in range(7)
            for opens, closes in parse_periods(getattr(form, f"day_{weekday}").data or "")
        ]
        try:
            catalogue_admin.set_opening_hours(current_user, lab, periods)
        except DomainError as exc:
            status = _fail(form, exc)
        else:
            db.session.commit()
            flash(_("Opening hours saved."), "success")
            return redirect(url_for("manage.hours", lab_id=lab_id))
    elif form.is_submitted():
        status = 422
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


# -- qualifications -----------------------------------------------------------------------


@bp.route("/instruments/<int:instrument_id>/qualifications", methods=["GET", "POST"])
def instrument_qualifications(instrument_id: int) -> Any:
    instrument = own_instrument(instrument_id)
    form = QualificationForm()
    status = 200
    if form.validate_on_submit():
        email = User.normalize_email(form.email.data or "")
        user = db.session.scalar(select(User).where(User.email == email))
        try:
            if user is None or not user.active:
                raise ValidationFailed(_("No active account has this email."), field="email")
            qualifications.grant_qualification(
                current_user, user, instrument, valid_until=form.valid_until.data
            )
        except DomainError as exc:
            status = _fail(form, exc, aliases={"user": "email"})
        else:
            db.session.commit()
            flash(_("%(name)s may now book this instrument.", name=user.name), "success")
            return redirect(
                url_for("manage.instrument_qualifications", instrument_id=instrument_id)
            )
    elif form.is_submitted():
        status = 422
    instrument = own_instrument(instrument_id)
    rows = db.session.execute(
        select(Qualification, User)
        .join(User, User.id == Qualification.user_id)
        .where(Qualification.resource_id == instrument.id)
        .order_by(User.name)
    ).all()
    return render_template(
        "manage/qualifications.html",
        instrument=instrument,
        form=form,
        rows=rows,
        confirm=ConfirmForm(),
    ), status


@bp.post("/instruments/<int:instrument_id>/qualifications/<int:user_id>/revoke")
def revoke_qualification(instrument_id: int, user_id: int) -> Any:
    instrument = own_instrument(instrument_id)
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    if ConfirmForm().validate_on_submit() and qualifications.revoke_qualification(
        current_user, user, instrument
    ):
        db.session.commit()
        flash(_("Qualification of %(name)s removed.", name=user.name), "success")
    return redirect(url_for("manage.instrument_qualifications", instrument_id=instrument_id))
