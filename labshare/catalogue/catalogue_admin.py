"""Institute staff maintain their catalogue: labs, instruments, booking rules,
opening hours and closures.

Every function checks that the actor is staff of the resource's institute
(``actor=None`` is the command line, trusted), validates its input field by field
(``ValidationFailed(field=...)``, nothing written then), writes, audits, and
leaves the commit to the caller. Inputs are plain dataclasses of already-typed
values; forms and the importer only check shape.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from labshare.booking.permissions import is_staff_of
from labshare.booking.rules import period_minutes
from labshare.catalogue import capability
from labshare.database import begin_write
from labshare.errors import NotAllowed, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingRules,
    Closure,
    ClosureKind,
    Field,
    Institute,
    Instrument,
    Lab,
    OpeningPeriod,
    Resource,
    ResourceStatus,
    User,
)
from labshare.ops import audit

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
    #: booking groups (issue 8): "booked together" bundle name; None leaves it as it is
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
    # -- waitlist (issue 8) --
    waitlist_enabled: bool = True
    waitlist_offer_minutes: int | str | None = 120
    # -- end waitlist --
    # -- booking policies (issue 8) --
    buffer_minutes: int | str | None = 0
    late_cancel_hours: int | str | None = 0
    no_show_approval_threshold: int | str | None = None
    # -- end booking policies --
    # -- check-in (issue 8) --
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
    if data.bundle is not None:  # booking groups (issue 8)
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
    # -- waitlist (issue 8) --
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
    # -- booking policies (issue 8) --
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
    # -- check-in (issue 8) --
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


# -- authorization ------------------------------------------------------------------------


def _authorize(actor: User | None, institute_id: int) -> None:
    """``actor=None``: the command line, run by the operator."""
    if actor is not None and not is_staff_of(actor, institute_id):
        raise NotAllowed(_l("Only staff of the institute can change its catalogue."))


def _changes(obj: Any, values: dict[str, Any]) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for key, value in values.items():
        before = getattr(obj, key, None)
        if before != value:
            changed[key] = _jsonable(value)
        setattr(obj, key, value)
    return changed


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


# -- labs ---------------------------------------------------------------------------------


def create_lab(actor: User | None, institute: Institute, data: LabData) -> Lab:
    _authorize(actor, institute.id)
    values = lab_values(data)
    begin_write()
    lab = Lab(institute_id=institute.id, **values)
    db.session.add(lab)
    db.session.flush()
    audit.record("lab.create", lab, actor=actor, data={"name": lab.name})
    return lab


def update_lab(actor: User | None, lab: Lab, data: LabData) -> Lab:
    _authorize(actor, lab.institute_id)
    values = lab_values(data)
    begin_write()
    changed = _changes(lab, values)
    db.session.flush()
    if changed:
        audit.record("lab.update", lab, actor=actor, data=changed)
    return lab


# -- instruments --------------------------------------------------------------------------


def _check_lab(actor: User | None, lab: Lab | None, institute_id: int | None = None) -> Lab:
    if lab is None:
        raise ValidationFailed(_l("Choose one of the institute's labs."), field="lab_id")
    _authorize(actor, lab.institute_id)
    if institute_id is not None and lab.institute_id != institute_id:
        raise ValidationFailed(_l("Choose one of the institute's labs."), field="lab_id")
    return lab


def _apply_instrument(instrument: Instrument, values: dict[str, Any]) -> dict[str, Any]:
    changed = _changes(instrument, values)
    capability.refresh_base_range(instrument)
    return changed


def create_instrument(actor: User | None, lab: Lab | None, data: InstrumentData) -> Instrument:
    lab = _check_lab(actor, lab)
    values = instrument_values(data)
    begin_write()
    instrument = Instrument(institute_id=lab.institute_id, lab_id=lab.id)
    _apply_instrument(instrument, values)
    db.session.add(instrument)
    db.session.flush()
    audit.record("instrument.create", instrument, actor=actor, data={"name": instrument.name})
    return instrument


def update_instrument(
    actor: User | None, instrument: Instrument, lab: Lab | None, data: InstrumentData
) -> Instrument:
    _authorize(actor, instrument.institute_id)
    lab = _check_lab(actor, lab, instrument.institute_id)
    values = instrument_values(data)
    begin_write()
    values["lab_id"] = lab.id
    changed = _apply_instrument(instrument, values)
    db.session.flush()
    if changed:
        audit.record("instrument.update", instrument, actor=actor, data=changed)
    return instrument


# -- booking rules ------------------------------------------------------------------------


def own_rules(resource: Resource) -> BookingRules | None:
    return db.session.scalar(select(BookingRules).where(BookingRules.resource_id == resource.id))


def set_rules(actor: User | None, resource: Resource, data: RulesData) -> BookingRules:
    """Give ``resource`` rules of its own (an instrument no longer follows its lab's)."""
    _authorize(actor, resource.institute_id)
    values = rules_values(data)
    begin_write()
    row = own_rules(resource)
    if row is None:
        row = BookingRules(resource_id=resource.id)
        db.session.add(row)
    changed = _changes(row, values)
    db.session.flush()
    if changed:  # the same rules again (a nightly sync) leave no trace
        audit.record("rules.set", resource, actor=actor, data=changed)
    return row


def clear_rules(actor: User | None, resource: Resource) -> bool:
    """Drop the resource's own rules: it follows its lab's, or the defaults."""
    _authorize(actor, resource.institute_id)
    begin_write()
    row = own_rules(resource)
    if row is None:
        return False
    db.session.delete(row)
    db.session.flush()
    audit.record("rules.clear", resource, actor=actor)
    return True


# -- opening hours ------------------------------------------------------------------------

Period = tuple[int, dt.time, dt.time]


def check_periods(periods: Sequence[Period]) -> list[Period]:
    """Sorted periods; overlapping or empty ones are refused, naming ``day_<weekday>``.
    A period that closes at or before its opening time closes on the next day
    (``rules.closes_next_day``: 24:00 is 00:00, 22:00-06:00 runs overnight), so
    overlaps are judged over the whole week, Sunday night into Monday included."""
    errors = _Errors()
    week = 7 * 24 * 60
    spans: list[tuple[int, int, int]] = []  # (first minute of the week, last + 1, weekday)
    for weekday, opens, closes in periods:
        if not 0 <= weekday <= 6:
            raise ValidationFailed(_l("Unknown weekday."), field="weekday")
        if opens == closes and opens != dt.time(0):
            errors.add(f"day_{weekday}", _l("Each period must close after it opens."))
            continue
        first = weekday * 24 * 60 + opens.hour * 60 + opens.minute
        spans.append((first, first + period_minutes(opens, closes), weekday))
    spans.sort()
    for (_f1, last1, _w1), (first2, _l2, weekday2) in itertools.pairwise(spans):
        if first2 < last1:
            errors.add(f"day_{weekday2}", _l("The periods of a day must not overlap."))
    if len(spans) > 1 and spans[-1][1] > spans[0][0] + week:  # Sunday night into Monday
        errors.add(f"day_{spans[0][2]}", _l("The periods of a day must not overlap."))
    errors.raise_first()
    return sorted((w, o, c) for w, o, c in periods)


def set_opening_hours(actor: User | None, lab: Lab, periods: Sequence[Period]) -> Lab:
    """Replace the lab's weekly opening hours (local time of the institute). Existing
    bookings are kept; they were valid when made."""
    _authorize(actor, lab.institute_id)
    checked = check_periods(periods)
    begin_write()
    current = sorted((p.weekday, p.opens, p.closes) for p in lab.opening_periods)
    if current == checked:  # unchanged: no rows rewritten, so no calendar version bump
        return lab
    lab.opening_periods.clear()
    db.session.flush()
    for weekday, opens, closes in checked:
        lab.opening_periods.append(OpeningPeriod(weekday=weekday, opens=opens, closes=closes))
    db.session.flush()
    audit.record(
        "lab.opening_hours",
        lab,
        actor=actor,
        data={
            "periods": [[w, o.isoformat("minutes"), c.isoformat("minutes")] for w, o, c in checked]
        },
    )
    return lab


# -- closures -----------------------------------------------------------------------------


def add_closure(
    actor: User | None,
    resource: Resource,
    start: dt.datetime,
    end: dt.datetime,
    *,
    kind: ClosureKind | str,
    note: str | None = None,
) -> Closure:
    _authorize(actor, resource.institute_id)
    errors = _Errors()
    for field, value in (("start", start), ("end", end)):
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            errors.add(field, _l("A date and time is required."))
    errors.raise_first()
    if end <= start:
        errors.add("end", _l("The end must be after the start."))
    elif end - start > CLOSURE_MAX:
        errors.add("end", _l("A closure may last at most two years."))
    closure_kind = _enum(errors, "kind", str(kind), ClosureKind)
    note_text = _text(errors, "note", note, NOTE_MAX)
    errors.raise_first()
    begin_write()
    closure = Closure(
        resource_id=resource.id,
        start_at=start.astimezone(dt.UTC),
        end_at=end.astimezone(dt.UTC),
        kind=closure_kind,
        note=note_text,
    )
    db.session.add(closure)
    db.session.flush()
    audit.record(
        "closure.create",
        closure,
        actor=actor,
        data={"resource_id": resource.id, "start": start.isoformat(), "end": end.isoformat()},
    )
    return closure


def bookings_in_closure(closure: Closure) -> int:
    """How many time-holding bookings fall in ``closure`` (staff decide what to do)."""
    resource = db.session.get(Resource, closure.resource_id)
    ids = [closure.resource_id]
    if isinstance(resource, Lab):
        ids += list(
            db.session.scalars(select(Instrument.id).where(Instrument.lab_id == resource.id))
        )
    return int(
        db.session.scalar(
            select(func.count(Booking.id)).where(
                Booking.resource_id.in_(ids),
                Booking.status.in_(HOLDING_STATUSES),
                Booking.start_at < closure.end_at,
                Booking.end_at > closure.start_at,
            )
        )
        or 0
    )


def delete_closure(actor: User | None, closure: Closure) -> None:
    resource = db.session.get(Resource, closure.resource_id)
    assert resource is not None
    _authorize(actor, resource.institute_id)
    begin_write()
    audit.record("closure.delete", closure, actor=actor, data={"resource_id": resource.id})
    db.session.delete(closure)
    db.session.flush()


def field_names(data_cls: type[Any]) -> list[str]:
    return [f.name for f in fields(data_cls)]
