"""Institute staff: the institute's labs and instruments (list, add, edit)."""

from __future__ import annotations

from typing import Any

from flask import render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select

from labshare.catalogue import catalogue_admin
from labshare.catalogue.catalogue_admin import InstrumentData, LabData
from labshare.extensions import db
from labshare.models import Instrument, Lab
from labshare.timeutil import to_local, utcnow
from labshare.web.manage.forms import InstrumentForm, LabForm
from labshare.web.manage.views import bp, institute, own_instrument, own_lab, save

PER_PAGE = 50


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


def _resource_fields(form: LabForm | InstrumentForm) -> dict[str, Any]:
    """What the lab and the instrument forms share (``ResourceData``)."""
    return {
        "name": form.name.data or "",
        "name_en": form.name_en.data,
        "description": form.description.data,
        "field": form.field.data or "",
        "status": form.status.data or "",
        "fee_per_hour": form.fee_per_hour.data,
        "fee_waiver_percent": form.fee_waiver_percent.data,
        "requires_qualification": bool(form.requires_qualification.data),
    }


def _lab_data(form: LabForm) -> LabData:
    return LabData(
        **_resource_fields(form),
        location=form.location.data,
        capacity=form.capacity.data,
    )


@bp.route("/labs/new", methods=["GET", "POST"])
def new_lab() -> Any:
    form = LabForm()
    status = save(
        form,
        lambda: catalogue_admin.create_lab(current_user, institute(), _lab_data(form)),
        lambda lab: (
            _("Lab “%(name)s” created. Now set its opening hours.", name=lab.name),
            url_for("manage.hours", lab_id=lab.id),
        ),
    )
    if not isinstance(status, int):
        return status
    return render_template("manage/lab_form.html", form=form, lab=None), status


@bp.route("/labs/<int:lab_id>/edit", methods=["GET", "POST"])
def edit_lab(lab_id: int) -> Any:
    lab = own_lab(lab_id)
    form = LabForm(obj=lab)
    status = save(
        form,
        lambda: catalogue_admin.update_lab(current_user, lab, _lab_data(form)),
        lambda _result: (_("Lab “%(name)s” saved.", name=lab.name), url_for("manage.resources")),
    )
    if not isinstance(status, int):
        return status
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
        **_resource_fields(form),
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
        bundle=form.bundle.data or "",
    )


@bp.route("/instruments/new", methods=["GET", "POST"])
def new_instrument() -> Any:
    form = InstrumentForm()
    _lab_choices(form)
    if request.method == "GET" and request.args.get("lab", "").isdigit():
        form.lab_id.data = request.args["lab"]
    status = save(
        form,
        lambda: catalogue_admin.create_instrument(
            current_user, _chosen_lab(form), _instrument_data(form)
        ),
        lambda instrument: (
            _("Instrument “%(name)s” created.", name=instrument.name),
            url_for("manage.resources"),
        ),
    )
    if not isinstance(status, int):
        return status
    return render_template("manage/instrument_form.html", form=form, instrument=None), status


@bp.route("/instruments/<int:instrument_id>/edit", methods=["GET", "POST"])
def edit_instrument(instrument_id: int) -> Any:
    instrument = own_instrument(instrument_id)
    form = InstrumentForm(obj=instrument)
    _lab_choices(form)
    if request.method == "GET":
        form.lab_id.data = str(instrument.lab_id)
    status = save(
        form,
        lambda: catalogue_admin.update_instrument(
            current_user, instrument, _chosen_lab(form), _instrument_data(form)
        ),
        lambda _result: (
            _("Instrument “%(name)s” saved.", name=instrument.name),
            url_for("manage.resources"),
        ),
    )
    if not isinstance(status, int):
        return status
    return render_template(
        "manage/instrument_form.html", form=form, instrument=own_instrument(instrument_id)
    ), status
