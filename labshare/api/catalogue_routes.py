"""The catalogue for staff and their institute's systems (a LIMS): labs, instruments,
rules, opening hours, closures and quotas. The checks are the web forms' and the
import's (``catalogue_admin``, ``quotas``); a resource of another institute is 404.
``PUT .../by-external-id/{id}`` creates or updates by the institute's own id, and a
payload that changes nothing writes nothing (no audit row, no calendar change)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _
from pydantic import Field

from labshare.api import bp
from labshare.api.registry import AwareTime, BodyModel, ResponseModel, endpoint
from labshare.api.schemas import MAX_ID, QuotaOut
from labshare.booking.policies import closures, quotas
from labshare.booking.rules import format_period, institute_zone
from labshare.catalogue import catalogue_admin, catalogue_sync
from labshare.catalogue.catalogue_admin import InstrumentData, LabData, RulesData
from labshare.errors import NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    BookingQuota,
    Closure,
    Institute,
    Instrument,
    Lab,
    Resource,
    Role,
    User,
)
from labshare.timeutil import isoformat_local
from labshare.web.manage.forms import parse_periods

ERRORS = (403, 404, 422)
Number = float | int | str | None


# -- bodies -------------------------------------------------------------------------------


class ResourceBody(BodyModel):
    external_id: str | None = Field(
        None, description="the institute's own id (its LIMS key), unique in the institute"
    )
    name: str | None = None
    name_en: str | None = None
    description: str | None = None
    field: str | None = Field(None, description="measurement field, e.g. mechanical")
    status: str | None = Field(None, description="available (default), maintenance or retired")
    fee_per_hour: Number = None
    fee_waiver_percent: int | str | None = None
    requires_qualification: bool = False


class LabBody(ResourceBody):
    location: str | None = None
    capacity: int | str | None = 1


class InstrumentBody(ResourceBody):
    lab_id: int | None = Field(None, ge=1, le=MAX_ID, description="the lab (or lab_external_id)")
    lab_external_id: str | None = Field(None, description="the lab by the institute's own id")
    model: str | None = None
    manufacturer: str | None = None
    serial_number: str | None = None
    asset_number: str | None = None
    measurand: str | None = Field(None, description="e.g. pressure, length, temperature")
    unit: str | None = None
    range_min: Number = None
    range_max: Number = None
    accuracy: str | None = None
    calibration_valid_until: str | None = Field(None, description="a date, YYYY-MM-DD")
    certificate_number: str | None = None


class RulesBody(BodyModel):
    slot_minutes: int | str | None = None
    min_minutes: int | str | None = None
    max_minutes: int | str | None = None
    lead_time_hours: int | str | None = None
    horizon_days: int | str | None = None
    requires_approval: bool = True
    max_active_per_company: int | str | None = None
    cancel_deadline_hours: int | str | None = None
    waitlist_enabled: bool = True
    waitlist_offer_minutes: int | str | None = 120
    buffer_minutes: int | str | None = 0
    late_cancel_hours: int | str | None = 0
    no_show_approval_threshold: int | str | None = None
    checkin_required: bool = False
    checkin_opens_minutes: int | str | None = 15
    checkin_release_minutes: int | str | None = 15


class PeriodBody(BodyModel):
    weekday: int = Field(ge=0, le=6, description="0 Monday … 6 Sunday")
    opens: str = Field(description="HH:MM, local time of the institute")
    closes: str = Field(description="HH:MM; 24:00 is midnight; before opens: the next day")


class HoursBody(BodyModel):
    periods: list[PeriodBody] = Field(max_length=70)


class ClosureBody(BodyModel):
    start: AwareTime
    end: AwareTime
    kind: str = Field(description="maintenance, calibration, holiday or other")
    note: str | None = None
    on_bookings: str | None = Field(
        None,
        description="what happens to time-holding bookings inside: cancel, or ask_move "
        "(they go back to pending and the companies are asked to move them). Without it "
        "a closure over bookings is a 409 listing them.",
    )
    message: str | None = Field(None, description="to the companies, in their message")
    dry_run: bool = Field(False, description="only list the bookings it would cover")


class QuotaBody(BodyModel):
    resource_id: int | None = Field(None, ge=1, le=MAX_ID, description="null: the institute")
    period: str = Field(description="day, week, month or year")
    max_hours: Number = None
    max_bookings: int | str | None = None
    count_completed: bool = False


# -- responses ----------------------------------------------------------------------------


class PeriodOut(ResponseModel):
    weekday: int
    opens: str
    closes: str


class CatalogueItemOut(ResponseModel):
    id: int
    kind: str
    external_id: str | None
    institute_id: int
    lab_id: int | None = None
    name: str
    name_en: str | None
    description: str | None
    field: str
    status: str
    fee_per_hour: str
    fee_waiver_percent: int
    requires_qualification: bool
    location: str | None = None
    capacity: int | None = None
    opening_hours: list[PeriodOut] | None = None
    model: str | None = None
    manufacturer: str | None = None
    serial_number: str | None = None
    asset_number: str | None = None
    measurand: str | None = None
    unit: str | None = None
    range_min: float | None = None
    range_max: float | None = None
    accuracy: str | None = None
    calibration_valid_until: str | None = None
    certificate_number: str | None = None
    calendar_version: int


class AffectedBookingOut(ResponseModel):
    id: int
    resource_id: int
    company_id: int
    company_name: str
    start: str
    end: str
    status: str


class ClosureOut(ResponseModel):
    id: int | None = Field(description="null for a dry run")
    resource_id: int
    start: str
    end: str
    kind: str
    note: str | None
    bookings: list[AffectedBookingOut] = Field(
        [], description="the time-holding bookings it covers (covered, for a dry run)"
    )


# -- helpers ------------------------------------------------------------------------------


def _institute(user: User) -> Institute:
    institute = db.session.get(Institute, user.institute_id)
    assert institute is not None  # staff always have one (a check constraint)
    return institute


def own_resource(user: User, resource_id: int, kind: type[Resource] = Resource) -> Any:
    """One of the caller's institute's resources; anything else (another institute's,
    the wrong kind) is 404, as if it did not exist."""
    resource = db.session.get(Resource, min(resource_id, MAX_ID))
    if resource is None or resource.institute_id != user.institute_id:
        raise NotFound(_("No resource %(id)s.", id=resource_id))
    if not isinstance(resource, kind):
        raise NotFound(_("No resource %(id)s.", id=resource_id))
    return resource


def _common(body: ResourceBody) -> dict[str, Any]:
    return {
        "name": body.name or "",
        "name_en": body.name_en,
        "description": body.description,
        "field": body.field or "",
        "status": body.status or "available",
        "fee_per_hour": None if body.fee_per_hour is None else str(body.fee_per_hour),
        "fee_waiver_percent": body.fee_waiver_percent,
        "requires_qualification": body.requires_qualification,
    }


def lab_data(body: LabBody) -> LabData:
    return LabData(**_common(body), location=body.location, capacity=body.capacity)


def instrument_data(body: InstrumentBody) -> InstrumentData:
    return InstrumentData(
        **_common(body),
        model=body.model,
        manufacturer=body.manufacturer,
        serial_number=body.serial_number,
        asset_number=body.asset_number,
        measurand=body.measurand or "",
        unit=body.unit or "",
        range_min=body.range_min,
        range_max=body.range_max,
        accuracy=body.accuracy,
        calibration_valid_until=body.calibration_valid_until,
        certificate_number=body.certificate_number,
    )


def _lab_of(user: User, body: InstrumentBody) -> Lab | None:
    """The body's lab, by id or by external id; None (the service answers 422 on
    lab_id) when it is not one of the caller's institute's labs."""
    if body.lab_external_id is not None:
        key = catalogue_sync.check_external_id(body.lab_external_id, field="lab_external_id")
        found = catalogue_sync.by_external_id(user.institute_id or 0, key) if key else None
        if not isinstance(found, Lab):
            raise ValidationFailed(
                _("No lab of the institute has this id."), field="lab_external_id"
            )
        return found
    if body.lab_id is None:
        return None
    lab = db.session.get(Resource, body.lab_id)
    return lab if isinstance(lab, Lab) and lab.institute_id == user.institute_id else None


def item_json(resource: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": resource.id,
        "kind": str(resource.kind),
        "external_id": resource.external_id,
        "institute_id": resource.institute_id,
        "name": resource.name,
        "name_en": resource.name_en,
        "description": resource.description,
        "field": str(resource.field),
        "status": str(resource.status),
        "fee_per_hour": f"{resource.fee_per_hour:.2f}",
        "fee_waiver_percent": resource.fee_waiver_percent,
        "requires_qualification": resource.requires_qualification,
        "calendar_version": int(resource.calendar_version or 0),
    }
    if isinstance(resource, Lab):
        out["location"] = resource.location
        out["capacity"] = resource.capacity
        out["opening_hours"] = [
            _period_json(p.weekday, p.opens, p.closes)
            for p in sorted(resource.opening_periods, key=lambda p: (p.weekday, p.opens))
        ]
    if isinstance(resource, Instrument):
        cal = resource.calibration_valid_until
        out.update(
            lab_id=resource.lab_id,
            model=resource.model,
            manufacturer=resource.manufacturer,
            serial_number=resource.serial_number,
            asset_number=resource.asset_number,
            measurand=resource.measurand,
            unit=resource.unit,
            range_min=resource.range_min,
            range_max=resource.range_max,
            accuracy=resource.accuracy,
            calibration_valid_until=cal.isoformat() if cal else None,
            certificate_number=resource.certificate_number,
        )
    return out


def _period_json(weekday: int, opens: dt.time, closes: dt.time) -> dict[str, Any]:
    opens_text, closes_text = format_period(opens, closes).split("-")
    return {"weekday": weekday, "opens": opens_text, "closes": closes_text}


def _created_or_found(body: dict[str, Any], created: bool) -> Response:
    response = jsonify(body)
    response.status_code = 201 if created else 200
    return response


def _reload(resource: Resource) -> Resource:
    db.session.refresh(resource)  # the calendar version the triggers wrote
    return resource


# -- labs ---------------------------------------------------------------------------------


@endpoint(
    bp,
    "/catalogue/labs",
    "POST",
    summary="Create a lab (staff)",
    description="A lab of the caller's institute. Every bad field is a 422 naming it.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=LabBody,
    response=CatalogueItemOut,
    status=201,
    errors=ERRORS,
)
def create_lab(user: User, body: LabBody) -> dict[str, Any]:
    key = catalogue_sync.check_external_id(body.external_id)
    lab = catalogue_sync.save_lab(user, _institute(user), None, lab_data(body), key)
    db.session.commit()
    return item_json(_reload(lab))


@endpoint(
    bp,
    "/catalogue/labs/<int:lab_id>",
    "PUT",
    summary="Replace a lab's details (staff of its institute)",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=LabBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def update_lab(user: User, lab_id: int, body: LabBody) -> dict[str, Any]:
    lab = own_resource(user, lab_id, Lab)
    key = catalogue_sync.check_external_id(body.external_id)
    catalogue_sync.save_lab(user, _institute(user), lab, lab_data(body), key)
    db.session.commit()
    return item_json(_reload(lab))


@endpoint(
    bp,
    "/catalogue/labs/by-external-id/<path:external_id>",
    "PUT",
    summary="Create or update a lab by the institute's own id (a LIMS sync)",
    description="The same payload again changes nothing: no audit row, no calendar change.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=LabBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def sync_lab(user: User, external_id: str, body: LabBody) -> Any:
    key = catalogue_sync.check_external_id(external_id)
    if key is None:
        raise ValidationFailed(_("This field is required."), field="external_id")
    found = catalogue_sync.by_external_id(user.institute_id or 0, key)
    if found is not None and not isinstance(found, Lab):
        raise ValidationFailed(_("This id belongs to an instrument."), field="external_id")
    lab = catalogue_sync.save_lab(user, _institute(user), found, lab_data(body), key)
    db.session.commit()
    return _created_or_found(item_json(_reload(lab)), found is None)


@endpoint(
    bp,
    "/catalogue/labs/<int:lab_id>/opening-hours",
    "PUT",
    summary="Replace a lab's weekly opening hours (staff of its institute)",
    description="Local times of the institute; 24:00 closes at midnight, a period that "
    "closes before it opens runs overnight. The same hours again change nothing.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=HoursBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def set_hours(user: User, lab_id: int, body: HoursBody) -> dict[str, Any]:
    lab = own_resource(user, lab_id, Lab)
    periods: list[tuple[int, dt.time, dt.time]] = []
    for index, p in enumerate(body.periods):
        try:
            parsed = parse_periods(f"{p.opens}-{p.closes}")
        except ValueError:
            parsed = []
        if len(parsed) != 1:
            raise ValidationFailed(
                _("Write opening hours like 08:30-12:00."), field=f"periods[{index}]"
            )
        periods.append((p.weekday, *parsed[0]))
    catalogue_admin.set_opening_hours(user, lab, periods)
    db.session.commit()
    return item_json(_reload(lab))


# -- instruments --------------------------------------------------------------------------


@endpoint(
    bp,
    "/catalogue/instruments",
    "POST",
    summary="Create an instrument (staff)",
    description="In one of the caller's institute's labs (lab_id or lab_external_id). "
    "The checks are the form's and the import's; every bad field is a 422 naming it.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=InstrumentBody,
    response=CatalogueItemOut,
    status=201,
    errors=ERRORS,
)
def create_instrument(user: User, body: InstrumentBody) -> dict[str, Any]:
    key = catalogue_sync.check_external_id(body.external_id)
    lab = _lab_of(user, body)
    instrument = catalogue_sync.save_instrument(
        user, _institute(user), None, lab, instrument_data(body), key
    )
    db.session.commit()
    return item_json(_reload(instrument))


@endpoint(
    bp,
    "/catalogue/instruments/<int:instrument_id>",
    "PUT",
    summary="Replace an instrument's details (staff of its institute)",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=InstrumentBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def update_instrument(user: User, instrument_id: int, body: InstrumentBody) -> dict[str, Any]:
    instrument = own_resource(user, instrument_id, Instrument)
    key = catalogue_sync.check_external_id(body.external_id)
    lab = _lab_of(user, body)
    catalogue_sync.save_instrument(
        user, _institute(user), instrument, lab, instrument_data(body), key
    )
    db.session.commit()
    return item_json(_reload(instrument))


@endpoint(
    bp,
    "/catalogue/instruments/by-external-id/<path:external_id>",
    "PUT",
    summary="Create or update an instrument by the institute's own id (a LIMS sync)",
    description="201 when created, 200 when found. The same payload again changes "
    "nothing: no audit row, no calendar change.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=InstrumentBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def sync_instrument(user: User, external_id: str, body: InstrumentBody) -> Any:
    key = catalogue_sync.check_external_id(external_id)
    if key is None:
        raise ValidationFailed(_("This field is required."), field="external_id")
    found = catalogue_sync.by_external_id(user.institute_id or 0, key)
    if found is not None and not isinstance(found, Instrument):
        raise ValidationFailed(_("This id belongs to a lab."), field="external_id")
    lab = _lab_of(user, body)
    instrument = catalogue_sync.save_instrument(
        user, _institute(user), found, lab, instrument_data(body), key
    )
    db.session.commit()
    return _created_or_found(item_json(_reload(instrument)), found is None)


# -- any resource -------------------------------------------------------------------------


@endpoint(
    bp,
    "/catalogue/resources/<int:resource_id>/retire",
    "POST",
    summary="Retire a lab or instrument (staff of its institute)",
    description="Status retired: nothing new is booked on it; its history stays.",
    tag="catalogue",
    roles=(Role.STAFF,),
    response=CatalogueItemOut,
    errors=(403, 404),
)
def retire_resource(user: User, resource_id: int) -> dict[str, Any]:
    resource = own_resource(user, resource_id)
    catalogue_sync.retire(user, resource)
    db.session.commit()
    return item_json(_reload(resource))


@endpoint(
    bp,
    "/catalogue/resources/<int:resource_id>/rules",
    "PUT",
    summary="Give a lab or instrument booking rules of its own (staff of its institute)",
    description="The same checks as the rules form; the same rules again change nothing.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=RulesBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def set_rules(user: User, resource_id: int, body: RulesBody) -> dict[str, Any]:
    resource = own_resource(user, resource_id)
    catalogue_admin.set_rules(user, resource, RulesData(**body.model_dump()))
    db.session.commit()
    return item_json(_reload(resource))


@endpoint(
    bp,
    "/catalogue/resources/<int:resource_id>/rules/clear",
    "POST",
    summary="Drop a resource's own rules: it follows its lab's, or the defaults",
    tag="catalogue",
    roles=(Role.STAFF,),
    response=CatalogueItemOut,
    errors=(403, 404),
)
def clear_rules(user: User, resource_id: int) -> dict[str, Any]:
    resource = own_resource(user, resource_id)
    catalogue_admin.clear_rules(user, resource)
    db.session.commit()
    return item_json(_reload(resource))


def closure_json(closure: Closure, tz: str) -> dict[str, Any]:
    return {
        "id": closure.id,
        "resource_id": closure.resource_id,
        "start": isoformat_local(closure.start_at, tz),
        "end": isoformat_local(closure.end_at, tz),
        "kind": str(closure.kind),
        "note": closure.note,
        "bookings": [],
    }


@endpoint(
    bp,
    "/catalogue/resources/<int:resource_id>/closures",
    "POST",
    summary="Close a lab or instrument for a period (staff of its institute)",
    description="A closure over time-holding bookings is a 409 listing them (error."
    "bookings) unless on_bookings says what happens to them; each booker is then told "
    "once, in-app and by mail, with the nearest free alternatives. dry_run=true: 200 "
    "with the bookings it would cover, nothing written.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=ClosureBody,
    response=ClosureOut,
    status=201,
    errors=(403, 404, 409, 422),
)
def add_closure(user: User, resource_id: int, body: ClosureBody) -> Any:
    resource = own_resource(user, resource_id)
    closure, inside = closures.close(
        user,
        resource,
        body.start,
        body.end,
        kind=body.kind,
        note=body.note,
        on_bookings=body.on_bookings,
        message=body.message,
        dry_run=body.dry_run,
    )
    briefs = [closures.booking_brief(b) for b in inside]
    if closure is None:
        tz = institute_zone(resource)
        db.session.rollback()
        return _created_or_found(
            {
                "id": None,
                "resource_id": resource.id,
                "start": isoformat_local(body.start, tz),
                "end": isoformat_local(body.end, tz),
                "kind": body.kind,
                "note": body.note,
                "bookings": briefs,
            },
            False,
        )
    db.session.commit()
    return {**closure_json(closure, institute_zone(resource)), "bookings": briefs}


@endpoint(
    bp,
    "/catalogue/closures/<int:closure_id>",
    "DELETE",
    summary="Remove a closure (staff of its institute)",
    tag="catalogue",
    roles=(Role.STAFF,),
    response=ClosureOut,
    errors=(403, 404),
)
def delete_closure(user: User, closure_id: int) -> dict[str, Any]:
    closure = db.session.get(Closure, min(closure_id, MAX_ID))
    if closure is None:
        raise NotFound(_("No such closure."))
    resource = own_resource(user, closure.resource_id)
    out = closure_json(closure, institute_zone(resource))
    catalogue_admin.delete_closure(user, closure)
    db.session.commit()
    return out


@endpoint(
    bp,
    "/catalogue/quotas",
    "POST",
    summary="Create a booking quota of the institute or one of its resources (staff)",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=QuotaBody,
    response=QuotaOut,
    status=201,
    errors=ERRORS,
)
def create_quota(user: User, body: QuotaBody) -> dict[str, Any]:
    quota = quotas.create_quota(
        user,
        user.institute_id or 0,
        body.resource_id,
        period=body.period,
        max_hours=body.max_hours,
        max_bookings=body.max_bookings,
        count_completed=body.count_completed,
    )
    db.session.commit()
    return quotas.quota_json(quota)


@endpoint(
    bp,
    "/catalogue/quotas/<int:quota_id>",
    "DELETE",
    summary="Remove one of the institute's quotas (staff)",
    tag="catalogue",
    roles=(Role.STAFF,),
    response=QuotaOut,
    errors=(403, 404),
)
def delete_quota(user: User, quota_id: int) -> dict[str, Any]:
    quota = db.session.get(BookingQuota, min(quota_id, MAX_ID))
    if quota is None or quota.institute_id != user.institute_id:
        raise NotFound(_("No such quota."))
    out = quotas.quota_json(quota)
    quotas.delete_quota(user, quota.id, quota.institute_id)
    db.session.commit()
    return out
