"""The JSON shapes of API.md, built from model rows. Times come out in the
resource's (its institute's) zone, with the offset."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from labshare.booking.permissions import is_staff_of
from labshare.booking.policies.groups import bundle_members  # booking groups
from labshare.booking.policies.no_shows import no_show_count
from labshare.booking.rules import Rules, institute_zone
from labshare.catalogue import search_pages
from labshare.models import (
    Booking,
    BookingGroup,
    Institute,
    Instrument,
    Resource,
    ResourceKind,
    User,
)
from labshare.timeutil import isoformat_local


def money(value: Decimal | None) -> float:
    return float(value or 0)


def institute_ref(institute: Institute) -> dict[str, Any]:
    return {"id": institute.id, "code": institute.code, "name": institute.name}


def rules_json(rules: Rules) -> dict[str, Any]:
    return {
        "slot_minutes": rules.slot_minutes,
        "min_minutes": rules.min_minutes,
        "max_minutes": rules.max_minutes,
        "lead_time_hours": rules.lead_time_hours,
        "horizon_days": rules.horizon_days,
        "requires_approval": rules.requires_approval,
        "max_active_per_company": rules.max_active_per_company,
        "cancel_deadline_hours": rules.cancel_deadline_hours,
        # -- booking policies --
        "buffer_minutes": rules.buffer_minutes,
        "late_cancel_hours": rules.late_cancel_hours,
        "no_show_approval_threshold": rules.no_show_approval_threshold,
        # -- end booking policies --
        # -- check-in --
        "checkin_required": rules.checkin_required,
        "checkin_opens_minutes": rules.checkin_opens_minutes,
        "checkin_release_minutes": rules.checkin_release_minutes,
        # -- end check-in --
        # -- waitlist --
        "waitlist_enabled": rules.waitlist_enabled,
        "waitlist_offer_minutes": rules.waitlist_offer_minutes,
        # -- end waitlist --
    }


def resource_json(resource: Resource, rules: Rules) -> dict[str, Any]:
    instrument = resource if isinstance(resource, Instrument) else None
    calibration: dt.date | None = instrument.calibration_valid_until if instrument else None
    return {
        "id": resource.id,
        "kind": str(resource.kind),
        "name": resource.name,
        "name_en": resource.name_en,
        "institute": institute_ref(resource.institute),
        "lab_id": instrument.lab_id if instrument else None,
        "field": str(resource.field),
        "province": resource.institute.province,
        "capability": (
            {
                "measurand": instrument.measurand,
                "unit": instrument.unit,
                "range_min": instrument.range_min,
                "range_max": instrument.range_max,
                "accuracy": instrument.accuracy,
            }
            if instrument
            else None
        ),
        "calibration_valid_until": calibration.isoformat() if calibration else None,
        "requires_qualification": resource.requires_qualification,
        "status": str(resource.status),
        "fee_per_hour": money(resource.fee_per_hour),
        "fee_waiver_percent": resource.fee_waiver_percent,
        "timezone": institute_zone(resource),
        "rules": rules_json(rules),
    }


def resource_row_json(row: Sequence[Any], rules: Rules) -> dict[str, Any]:
    """``resource_json`` of a plain row of ``search_pages.row_select`` (a search's
    page, read without ORM instances): the same keys, values and order."""
    (
        rid,
        kind,
        name,
        name_en,
        institute_id,
        institute_code,
        institute_name,
        lab_id,
        field,
        province,
        measurand,
        unit,
        range_min,
        range_max,
        accuracy,
        calibration,
        requires_qualification,
        status,
        fee_per_hour,
        fee_waiver_percent,
        timezone,
    ) = row[: search_pages.ROW_WIDTH]
    instrument = kind == ResourceKind.INSTRUMENT
    return {
        "id": rid,
        "kind": str(kind),
        "name": name,
        "name_en": name_en,
        "institute": {"id": institute_id, "code": institute_code, "name": institute_name},
        "lab_id": lab_id if instrument else None,
        "field": str(field),
        "province": province,
        "capability": (
            {
                "measurand": measurand,
                "unit": unit,
                "range_min": range_min,
                "range_max": range_max,
                "accuracy": accuracy,
            }
            if instrument
            else None
        ),
        "calibration_valid_until": (
            calibration.isoformat() if instrument and calibration else None
        ),
        "requires_qualification": requires_qualification,
        "status": str(status),
        "fee_per_hour": money(fee_per_hour),
        "fee_waiver_percent": fee_waiver_percent,
        "timezone": timezone or "Asia/Shanghai",
        "rules": rules_json(rules),
    }


def booking_json(booking: Booking, viewer: User | None = None) -> dict[str, Any]:
    """``viewer``: who asks; staff of the booking's institute also get the
    company's no-show record (``company_no_shows``, booking policies)."""
    tz = institute_zone(booking.resource)
    out = {
        "id": booking.id,
        "resource_id": booking.resource_id,
        "resource_name": booking.resource.name,
        "institute_id": booking.institute_id,
        "company_id": booking.company_id,
        "user_id": booking.user_id,
        "start": isoformat_local(booking.start_at, tz),
        "end": isoformat_local(booking.end_at, tz),
        "status": str(booking.status),
        "purpose": booking.purpose,
        "samples": booking.samples,
        "fee": money(booking.fee),
        "fee_waived": money(booking.fee_waived),
        "decision_reason": booking.decision_reason,
        "created_at": isoformat_local(booking.created_at, tz),
        "series_id": booking.series_id,  # recurrence
        "booked_by_id": booking.booked_by_id,
        # -- check-in --
        "checked_in_at": (
            isoformat_local(booking.checked_in_at, tz) if booking.checked_in_at else None
        ),
        # -- end check-in --
        "group_id": booking.group_id,  # booking groups
    }
    # -- booking policies: staff see the company's no-shows + late cancellations --
    if viewer is not None and is_staff_of(viewer, booking.institute_id):
        out["company_no_shows"] = no_show_count(booking.company_id, booking.institute_id)
    return out


# -- booking groups --
def bundle_json(resource: Resource) -> dict[str, Any] | None:
    """An instrument's "booked together" bundle, or None."""
    if not isinstance(resource, Instrument) or not (resource.bundle or "").strip():
        return None
    return {
        "name": resource.bundle,
        "instrument_ids": [m.id for m in bundle_members(resource)],
    }


def group_json(group: BookingGroup, members: list[Booking]) -> dict[str, Any]:
    tz = institute_zone(group.lab)
    return {
        "id": group.id,
        "lab_id": group.lab_id,
        "institute_id": group.institute_id,
        "company_id": group.company_id,
        "user_id": group.user_id,
        "purpose": group.purpose,
        "created_at": isoformat_local(group.created_at, tz),
        "bookings": [booking_json(m) for m in members],
    }


# -- end booking groups --


def page_json(items: list[dict[str, Any]], total: int, page: int, per_page: int) -> dict[str, Any]:
    return {"items": items, "total": total, "page": page, "per_page": per_page}
