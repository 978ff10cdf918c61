"""The request bodies and responses of the staff catalogue API
(labshare/api/catalogue_routes.py), and the conversions between them and the
catalogue's own inputs and rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from labshare.api.registry import AwareTime, BodyModel, ResponseModel
from labshare.api.schemas import MAX_ID
from labshare.booking.rules import format_period
from labshare.catalogue.catalogue_admin import InstrumentData, LabData
from labshare.models import Closure, Instrument, Lab, Resource
from labshare.timeutil import isoformat_local

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
