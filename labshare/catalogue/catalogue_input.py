"""Checking what staff type into the catalogue, field by field: labs, instruments
and booking rules (``ValidationFailed(field=...)`` naming the first bad field, or
all of them for the importer). Inputs are plain dataclasses of already-typed
values; forms and the importer only check shape. Used by ``catalogue_admin``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import lazy_gettext as _l

from labshare.catalogue import capability
from labshare.errors import ValidationFailed
from labshare.models import (
    Field,
    ResourceStatus,
)

NAME_MAX = 200
TEXT_MAX = 5000
SHORT_MAX = 100
ACCURACY_MAX = 200
LOCATION_MAX = 300
NOTE_MAX = 300
FEE_MAX = Decimal("9999999999.99")
CAPACITY_MAX = 1000
CLOSURE_MAX = dt.timedelta(days=366 * 2)


# -- inputs -------------------------------------------------------------------------------


@dataclass
class ResourceData:
    """What labs and instruments share."""

    name: str = ""
    name_en: str | None = None
    description: str | None = None
    field: str = ""
    status: str = ResourceStatus.AVAILABLE.value
    fee_per_hour: Decimal | str | None = None
    fee_waiver_percent: int | str | None = None
    requires_qualification: bool = False


@dataclass
class LabData(ResourceData):
    location: str | None = None
    capacity: int | str | None = 1


@dataclass
class InstrumentData(ResourceData):
    model: str | None = None
    manufacturer: str | None = None
    serial_number: str | None = None
    asset_number: str | None = None
    measurand: str = ""
    unit: str = ""
    range_min: float | str | None = None
    range_max: float | str | None = None
    accuracy: str | None = None
    calibration_valid_until: dt.date | str | None = None
    certificate_number: str | None = None
    #: booking groups: "booked together" bundle name; None leaves it as it is
    bundle: str | None = None


@dataclass
class RulesData:
    slot_minutes: int
    min_minutes: int
    max_minutes: int
    lead_time_hours: int
    horizon_days: int
    requires_approval: bool
    max_active_per_company: int
    cancel_deadline_hours: int
    # -- waitlist --
    waitlist_enabled: bool = True
    waitlist_offer_minutes: int | str | None = 120
    # -- end waitlist --
    # -- booking policies --
    buffer_minutes: int | str | None = 0
    late_cancel_hours: int | str | None = 0
    no_show_approval_threshold: int | str | None = None
    # -- end booking policies --
    # -- check-in --
    checkin_required: bool = False
    checkin_opens_minutes: int | str | None = 15
    checkin_release_minutes: int | str | None = 15
    # -- end check-in --


# -- validation ---------------------------------------------------------------------------


class _Errors:
    """Collects one message per field, in the order the fields were checked."""

    def __init__(self) -> None:
        self.by_field: dict[str, str] = {}

    def add(self, field: str, message: Any) -> None:
        self.by_field.setdefault(field, str(message))

    def raise_first(self) -> None:
        if self.by_field:
            field, message = next(iter(self.by_field.items()))
            raise ValidationFailed(message, field=field, details={"errors": dict(self.by_field)})


def _text(
    errors: _Errors, field: str, value: str | None, limit: int, *, required: bool = False
) -> str | None:
    text = (
        (value or "").strip() if isinstance(value, str) else ("" if value is None else str(value))
    )
    if not text:
        if required:
            errors.add(field, _l("This field is required."))
        return None
    if len(text) > limit:
        errors.add(field, _l("At most %(n)d characters are allowed.", n=limit))
        return None
    return text


def _enum(errors: _Errors, field: str, value: str, enum_cls: Any) -> Any:
    try:
        return enum_cls((value or "").strip())
    except ValueError:
        errors.add(
            field,
            _l(
                "Choose one of: %(values)s.",
                values=", ".join(m.value for m in enum_cls),
            ),
        )
        return None


def _decimal(
    errors: _Errors, field: str, value: Decimal | str | float | None, *, default: Decimal
) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        errors.add(field, _l("Enter a number."))
        return None
    if not number.is_finite() or number < 0 or number > FEE_MAX:
        errors.add(field, _l("Enter an amount of 0 or more."))
        return None
    if number != number.quantize(Decimal("0.01")):
        errors.add(field, _l("At most two decimal places."))
        return None
    return number


def _int(
    errors: _Errors,
    field: str,
    value: int | str | None,
    *,
    low: int,
    high: int,
    default: int | None = None,
) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is not None:
            return default
        errors.add(field, _l("This field is required."))
        return None
    if isinstance(value, bool):
        errors.add(field, _l("Enter a whole number."))
        return None
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        errors.add(field, _l("Enter a whole number."))
        return None
    if not low <= number <= high:
        errors.add(field, _l("Enter a whole number from %(low)d to %(high)d.", low=low, high=high))
        return None
    return number


def _float(errors: _Errors, field: str, value: float | str | None) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        errors.add(field, _l("This field is required."))
        return None
    try:
        number = float(str(value).strip()) if not isinstance(value, float | int) else float(value)
    except ValueError:
        errors.add(field, _l("Enter a number."))
        return None
    if not math.isfinite(number):
        errors.add(field, _l("Enter a finite number."))
        return None
    return number


def _date(errors: _Errors, field: str, value: dt.date | str | None) -> dt.date | None:
    if value is None or isinstance(value, dt.datetime):
        return value.date() if isinstance(value, dt.datetime) else None
    if isinstance(value, dt.date):
        return value
    text = value.strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        errors.add(field, _l("Enter a date as YYYY-MM-DD."))
        return None


def _common(errors: _Errors, data: ResourceData) -> dict[str, Any]:
    return {
        "name": _text(errors, "name", data.name, NAME_MAX, required=True),
        "name_en": _text(errors, "name_en", data.name_en, NAME_MAX),
        "description": _text(errors, "description", data.description, TEXT_MAX),
        "field": _enum(errors, "field", data.field, Field),
        "status": _enum(errors, "status", data.status or "available", ResourceStatus),
        "fee_per_hour": _decimal(errors, "fee_per_hour", data.fee_per_hour, default=Decimal(0)),
        "fee_waiver_percent": _int(
            errors, "fee_waiver_percent", data.fee_waiver_percent, low=0, high=100, default=0
        ),
        "requires_qualification": bool(data.requires_qualification),
    }


def lab_values(data: LabData) -> dict[str, Any]:
    """The validated column values of a lab; ValidationFailed names the first bad field
    and carries all of them in ``details["errors"]``."""
    errors = _Errors()
    values = _common(errors, data)
    values["location"] = _text(errors, "location", data.location, LOCATION_MAX)
    values["capacity"] = _int(errors, "capacity", data.capacity, low=1, high=CAPACITY_MAX)
    errors.raise_first()
    return values


BUNDLE_MAX = 50  # booking groups: Instrument.bundle


def instrument_errors(data: InstrumentData) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, errors by field) of an instrument's input: the importer reports every
    bad field of a row, the forms show them next to their fields."""
    errors = _Errors()
    values = _common(errors, data)
    for name, limit in (
        ("model", SHORT_MAX),
        ("manufacturer", NAME_MAX),
        ("serial_number", SHORT_MAX),
        ("asset_number", SHORT_MAX),
        ("certificate_number", SHORT_MAX),
    ):
        values[name] = _text(errors, name, getattr(data, name), limit)
    values["accuracy"] = _text(errors, "accuracy", data.accuracy, ACCURACY_MAX)
    measurand = (data.measurand or "").strip().lower()
    if not measurand:
        errors.add("measurand", _l("This field is required."))
    elif measurand not in capability.MEASURANDS:
        errors.add(
            "measurand",
            _l("Unknown measurand %(name)s.", name=measurand),
        )
    values["measurand"] = measurand
    unit = (data.unit or "").strip()
    if not unit:
        errors.add("unit", _l("This field is required."))
    elif len(unit) > 32:
        errors.add("unit", _l("At most %(n)d characters are allowed.", n=32))
    values["unit"] = unit
    low = _float(errors, "range_min", data.range_min)
    high = _float(errors, "range_max", data.range_max)
    if low is not None and high is not None and high < low:
        errors.add("range_max", _l("The upper end of the range must not be below the lower."))
    values["range_min"], values["range_max"] = low, high
    if "measurand" not in errors.by_field and "unit" not in errors.by_field:
        try:
            capability.check_unit(unit, measurand)
        except ValidationFailed as exc:
            errors.add(exc.field or "unit", exc.message)
    values["calibration_valid_until"] = _date(
        errors, "calibration_valid_until", data.calibration_valid_until
    )
    if data.bundle is not None:  # booking groups
        values["bundle"] = _text(errors, "bundle", data.bundle, BUNDLE_MAX)
    return values, dict(errors.by_field)


def instrument_values(data: InstrumentData) -> dict[str, Any]:
    values, errors = instrument_errors(data)
    if errors:
        field, message = next(iter(errors.items()))
        raise ValidationFailed(message, field=field, details={"errors": errors})
    return values


def rules_values(data: RulesData) -> dict[str, Any]:
    errors = _Errors()
    values: dict[str, Any] = {
        "slot_minutes": _int(errors, "slot_minutes", data.slot_minutes, low=5, high=1440),
        "min_minutes": _int(errors, "min_minutes", data.min_minutes, low=1, high=44640),
        "max_minutes": _int(errors, "max_minutes", data.max_minutes, low=1, high=44640),
        "lead_time_hours": _int(errors, "lead_time_hours", data.lead_time_hours, low=0, high=8760),
        "horizon_days": _int(errors, "horizon_days", data.horizon_days, low=1, high=730),
        "requires_approval": bool(data.requires_approval),
        "max_active_per_company": _int(
            errors, "max_active_per_company", data.max_active_per_company, low=1, high=1000
        ),
        "cancel_deadline_hours": _int(
            errors, "cancel_deadline_hours", data.cancel_deadline_hours, low=0, high=8760
        ),
    }
    # -- waitlist --
    values["waitlist_enabled"] = bool(data.waitlist_enabled)
    values["waitlist_offer_minutes"] = _int(
        errors,
        "waitlist_offer_minutes",
        data.waitlist_offer_minutes,
        low=5,
        high=10080,
        default=120,
    )
    # -- end waitlist --
    # -- booking policies --
    values["buffer_minutes"] = _int(
        errors, "buffer_minutes", data.buffer_minutes, low=0, high=1440, default=0
    )
    values["late_cancel_hours"] = _int(
        errors, "late_cancel_hours", data.late_cancel_hours, low=0, high=8760, default=0
    )
    threshold = data.no_show_approval_threshold
    values["no_show_approval_threshold"] = (
        None
        if threshold is None or (isinstance(threshold, str) and not threshold.strip())
        else _int(errors, "no_show_approval_threshold", threshold, low=1, high=1000)
    )
    # -- end booking policies --
    # -- check-in --
    values["checkin_required"] = bool(data.checkin_required)
    values["checkin_opens_minutes"] = _int(
        errors, "checkin_opens_minutes", data.checkin_opens_minutes, low=0, high=1440, default=15
    )
    values["checkin_release_minutes"] = _int(
        errors,
        "checkin_release_minutes",
        data.checkin_release_minutes,
        low=1,
        high=1440,
        default=15,
    )
    # -- end check-in --
    slot, low, high = values["slot_minutes"], values["min_minutes"], values["max_minutes"]
    if slot and low and low % slot:
        errors.add("min_minutes", _l("Must be a multiple of the slot length."))
    if slot and high and high % slot:
        errors.add("max_minutes", _l("Must be a multiple of the slot length."))
    if low and high and high < low:
        errors.add("max_minutes", _l("Must not be below the minimum duration."))
    errors.raise_first()
    return values
