"""Human labels for the domain's enumerations, translated lazily.

One place, so templates, forms and exports all say the same thing in both languages.
"""

from __future__ import annotations

import enum
from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms.fields.choices import SelectChoice

from labshare.models import (
    BookingStatus,
    ClosureKind,
    CompanySize,
    CompanyStatus,
    Field,
    InstituteKind,
    NotificationStatus,
    ResourceKind,
    ResourceStatus,
    Role,
    ServiceType,
)

FIELD_LABELS: dict[Field, Any] = {
    Field.GEOMETRIC: _l("Geometric / length"),
    Field.THERMAL: _l("Thermal"),
    Field.MECHANICAL: _l("Mechanical"),
    Field.ELECTROMAGNETIC: _l("Electromagnetic"),
    Field.RADIO: _l("Radio"),
    Field.TIME_FREQUENCY: _l("Time and frequency"),
    Field.IONIZING_RADIATION: _l("Ionizing radiation"),
    Field.CHEMICAL: _l("Chemical"),
    Field.ACOUSTIC: _l("Acoustic"),
    Field.OPTICAL: _l("Optical"),
}

INSTITUTE_KIND_LABELS: dict[InstituteKind, Any] = {
    InstituteKind.NATIONAL: _l("National metrology institute"),
    InstituteKind.PROVINCIAL: _l("Provincial metrology institute"),
    InstituteKind.MUNICIPAL: _l("Municipal metrology institute"),
    InstituteKind.INDUSTRY_CENTRE: _l("Industrial metrology test centre"),
    InstituteKind.OTHER: _l("Other institute"),
}

RESOURCE_KIND_LABELS: dict[ResourceKind, Any] = {
    ResourceKind.LAB: _l("Laboratory"),
    ResourceKind.INSTRUMENT: _l("Instrument"),
}

RESOURCE_STATUS_LABELS: dict[ResourceStatus, Any] = {
    ResourceStatus.AVAILABLE: _l("Available"),
    ResourceStatus.MAINTENANCE: _l("In maintenance"),
    ResourceStatus.RETIRED: _l("Retired"),
}

BOOKING_STATUS_LABELS: dict[BookingStatus, Any] = {
    BookingStatus.PENDING: _l("Pending approval"),
    BookingStatus.APPROVED: _l("Approved"),
    BookingStatus.REJECTED: _l("Rejected"),
    BookingStatus.CANCELLED: _l("Cancelled"),
    BookingStatus.COMPLETED: _l("Completed"),
    BookingStatus.NO_SHOW: _l("No-show"),
}

SERVICE_TYPE_LABELS: dict[ServiceType, Any] = {
    ServiceType.VERIFICATION: _l("Verification"),
    ServiceType.CALIBRATION: _l("Calibration"),
    ServiceType.TESTING: _l("Testing"),
    ServiceType.TRAINING: _l("Training"),
    ServiceType.CONSULTATION: _l("Consultation"),
}

CLOSURE_KIND_LABELS: dict[ClosureKind, Any] = {
    ClosureKind.MAINTENANCE: _l("Maintenance"),
    ClosureKind.CALIBRATION: _l("Calibration"),
    ClosureKind.HOLIDAY: _l("Holiday"),
    ClosureKind.OTHER: _l("Other"),
}

COMPANY_SIZE_LABELS: dict[CompanySize, Any] = {
    CompanySize.MICRO: _l("Micro enterprise"),
    CompanySize.SMALL: _l("Small enterprise"),
    CompanySize.MEDIUM: _l("Medium-sized enterprise"),
}

ROLE_LABELS: dict[Role, Any] = {
    Role.SME: _l("SME member"),
    Role.STAFF: _l("Institute staff"),
    Role.ADMIN: _l("Platform admin"),
}

WEEKDAY_LABELS: tuple[Any, ...] = (
    _l("Monday"),
    _l("Tuesday"),
    _l("Wednesday"),
    _l("Thursday"),
    _l("Friday"),
    _l("Saturday"),
    _l("Sunday"),
)

#: Measurands of catalogue.capability, by their machine name.
MEASURAND_LABELS: dict[str, Any] = {
    "length": _l("Length"),
    "roughness": _l("Surface roughness"),
    "roundness": _l("Roundness"),
    "angle": _l("Angle"),
    "temperature": _l("Temperature"),
    "relative_humidity": _l("Relative humidity"),
    "pressure": _l("Pressure"),
    "force": _l("Force"),
    "torque": _l("Torque"),
    "mass": _l("Mass"),
    "flow_rate": _l("Flow rate"),
    "rotational_speed": _l("Rotational speed"),
    "acceleration": _l("Acceleration"),
    "voltage": _l("Voltage"),
    "current": _l("Electric current"),
    "resistance": _l("Resistance"),
    "capacitance": _l("Capacitance"),
    "inductance": _l("Inductance"),
    "frequency": _l("Frequency"),
    "power": _l("Power"),
    "time_interval": _l("Time interval"),
    "dose_rate": _l("Dose rate"),
    "air_kerma": _l("Air kerma"),
    "activity": _l("Activity"),
    "activity_concentration": _l("Activity concentration"),
    "amount_fraction": _l("Amount fraction"),
    "wavelength": _l("Wavelength"),
    "ph": _l("pH value"),
    "conductivity": _l("Electrolytic conductivity"),
    "mass_concentration": _l("Mass concentration"),
    "mass_fraction": _l("Mass fraction"),
    "sound_pressure_level": _l("Sound pressure level"),
    "illuminance": _l("Illuminance"),
    "luminance": _l("Luminance"),
}


NOTIFICATION_STATUS_LABELS = {
    NotificationStatus.PENDING: _l("Waiting to be sent"),
    NotificationStatus.SENDING: _l("Being sent"),
    NotificationStatus.SENT: _l("Sent"),
    NotificationStatus.FAILED: _l("Failed"),
    NotificationStatus.UNCERTAIN: _l("Uncertain"),
}

COMPANY_STATUS_LABELS: dict[CompanyStatus, Any] = {
    CompanyStatus.PENDING: _l("waiting for confirmation"),
    CompanyStatus.CONFIRMED: _l("confirmed"),
    CompanyStatus.REJECTED: _l("not confirmed"),
}


def measurand_label(name: str | None) -> str:
    if not name:
        return ""
    found = MEASURAND_LABELS.get(name)
    return str(found) if found is not None else name.replace("_", " ")


_ALL: dict[type[enum.StrEnum], dict[Any, Any]] = {
    Field: FIELD_LABELS,
    InstituteKind: INSTITUTE_KIND_LABELS,
    ResourceKind: RESOURCE_KIND_LABELS,
    ResourceStatus: RESOURCE_STATUS_LABELS,
    BookingStatus: BOOKING_STATUS_LABELS,
    ServiceType: SERVICE_TYPE_LABELS,
    ClosureKind: CLOSURE_KIND_LABELS,
    CompanySize: COMPANY_SIZE_LABELS,
    Role: ROLE_LABELS,
    CompanyStatus: COMPANY_STATUS_LABELS,
    NotificationStatus: NOTIFICATION_STATUS_LABELS,
}


def label(value: enum.StrEnum | None) -> str:
    """The translated label of an enum member (its value when there is none)."""
    if value is None:
        return ""
    table = _ALL.get(type(value))
    if table is None or value not in table:
        return str(value)
    return str(table[value])


def choices(enum_cls: type[enum.StrEnum]) -> list[SelectChoice]:
    """Options of a select field (value, lazy label), in declaration order."""
    table = _ALL[enum_cls]
    return [SelectChoice(member.value, table[member]) for member in enum_cls]
