"""Forms of the staff pages: shape only. Values are checked again, with the
rules, by ``labshare.catalogue.catalogue_admin`` and the booking services."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    DecimalField,
    EmailField,
    FloatField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from labshare.catalogue.capability import measurand_names
from labshare.labels import WEEKDAY_LABELS, choices
from labshare.models import ClosureKind, Field, ResourceStatus, ServiceType
from labshare.web.bookings.forms import LOCAL_FORMATS


def _required() -> DataRequired:
    return DataRequired(message=_l("Please fill in this field."))


def _number() -> InputRequired:
    return InputRequired(message=_l("Enter a number."))


class RejectForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason for rejecting"),
        validators=[_required(), Length(max=500)],
        description=_l("The company sees this reason."),
    )


class UsageForm(FlaskForm):
    checked_in_at = DateTimeLocalField(
        _l("Checked in"), format=LOCAL_FORMATS, validators=[InputRequired(_l("Enter a time."))]
    )
    checked_out_at = DateTimeLocalField(
        _l("Checked out"), format=LOCAL_FORMATS, validators=[InputRequired(_l("Enter a time."))]
    )
    service_type = SelectField(_l("Service given"), choices=choices(ServiceType))
    samples_count = IntegerField(
        _l("Samples measured"),
        default=0,
        validators=[InputRequired(_l("Enter a whole number.")), NumberRange(min=0, max=100000)],
    )
    problem_solved = RadioField(
        _l("Was the company's problem solved?"),
        choices=[("yes", _l("Yes")), ("no", _l("No"))],
        validators=[InputRequired(_l("Answer yes or no."))],
    )
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=5000)])


class _ResourceForm(FlaskForm):
    name = StringField(_l("Name (Chinese)"), validators=[_required(), Length(max=200)])
    name_en = StringField(_l("Name (English)"), validators=[Optional(), Length(max=200)])
    field = SelectField(_l("Measurement field"), choices=choices(Field))
    status = SelectField(_l("Status"), choices=choices(ResourceStatus))
    fee_per_hour = DecimalField(
        _l("Fee per hour (yuan)"),
        places=2,
        default=0,
        validators=[InputRequired(_l("Enter an amount.")), NumberRange(min=0)],
    )
    fee_waiver_percent = IntegerField(
        _l("SME fee waiver (%)"),
        default=0,
        validators=[InputRequired(_l("Enter a whole number.")), NumberRange(min=0, max=100)],
    )
    requires_qualification = BooleanField(_l("Users need training (qualification) to book"))
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=5000)])


class LabForm(_ResourceForm):
    location = StringField(_l("Location"), validators=[Optional(), Length(max=300)])
    capacity = IntegerField(
        _l("Companies at once"),
        default=1,
        validators=[InputRequired(_l("Enter a whole number.")), NumberRange(min=1, max=1000)],
    )


class InstrumentForm(_ResourceForm):
    lab_id = SelectField(_l("Lab"), coerce=str, validate_choice=False)
    model = StringField(_l("Model"), validators=[Optional(), Length(max=100)])
    manufacturer = StringField(_l("Manufacturer"), validators=[Optional(), Length(max=200)])
    serial_number = StringField(_l("Serial number"), validators=[Optional(), Length(max=100)])
    asset_number = StringField(_l("Asset number"), validators=[Optional(), Length(max=100)])
    measurand = SelectField(
        _l("Measurand"), choices=[(m, m.replace("_", " ")) for m in measurand_names()]
    )
    unit = StringField(
        _l("Unit"),
        validators=[_required(), Length(max=32)],
        description=_l("As on the certificate, e.g. MPa, °C, mm, V."),
    )
    range_min = FloatField(_l("Range from"), validators=[_number()])
    range_max = FloatField(_l("Range to"), validators=[_number()])
    accuracy = StringField(_l("Accuracy or uncertainty"), validators=[Optional(), Length(max=200)])
    calibration_valid_until = DateField(_l("Calibration valid until"), validators=[Optional()])
    certificate_number = StringField(
        _l("Calibration certificate number"), validators=[Optional(), Length(max=100)]
    )
    # booking groups
    bundle = StringField(
        _l("Booked together"),
        validators=[Optional(), Length(max=50)],
        description=_l(
            "A short name: instruments of this lab with the same name are always booked "
            "together. Leave empty for none."
        ),
    )


class RulesForm(FlaskForm):
    slot_minutes = IntegerField(
        _l("Slot length (minutes)"), validators=[InputRequired(_l("Enter a whole number."))]
    )
    min_minutes = IntegerField(
        _l("Shortest booking (minutes)"), validators=[InputRequired(_l("Enter a whole number."))]
    )
    max_minutes = IntegerField(
        _l("Longest booking (minutes)"), validators=[InputRequired(_l("Enter a whole number."))]
    )
    lead_time_hours = IntegerField(
        _l("Book at least this many hours ahead"),
        validators=[InputRequired(_l("Enter a whole number."))],
    )
    horizon_days = IntegerField(
        _l("Book at most this many days ahead"),
        validators=[InputRequired(_l("Enter a whole number."))],
    )
    requires_approval = BooleanField(_l("Staff approve each request"))
    max_active_per_company = IntegerField(
        _l("Active bookings per company, at most"),
        validators=[InputRequired(_l("Enter a whole number."))],
    )
    cancel_deadline_hours = IntegerField(
        _l("Companies may cancel online until this many hours before"),
        validators=[InputRequired(_l("Enter a whole number."))],
    )
    # -- check-in --
    checkin_required = BooleanField(
        _l("Check-in required: release bookings nobody checked into (no-show)")
    )
    checkin_opens_minutes = IntegerField(
        _l("Check-in opens this many minutes before the start"),
        validators=[Optional()],
        default=15,
    )
    checkin_release_minutes = IntegerField(
        _l("Release a booking nobody checked into this many minutes after its start"),
        validators=[Optional()],
        default=15,
        description=_l("Only where check-in is required."),
    )
    # -- end check-in --
    # -- waitlist --
    waitlist_enabled = BooleanField(_l("Companies may join the waitlist of a taken slot"))
    waitlist_offer_minutes = IntegerField(
        _l("A freed slot is held for the first in line for (minutes)"),
        validators=[Optional()],  # empty: the default, 120
    )
    # -- end waitlist --
    # -- booking policies --
    buffer_minutes = IntegerField(
        _l("Buffer kept free before and after each booking (minutes)"),
        validators=[Optional()],
        default=0,
        description=_l("Instruments and single-place labs; 0: none."),
    )
    late_cancel_hours = IntegerField(
        _l("A company's cancellation is late (counted as a no-show) within this many hours"),
        validators=[Optional()],
        default=0,
        description=_l("0: off."),
    )
    no_show_approval_threshold = IntegerField(
        _l("Companies with this many no-shows in a year need approval"),
        validators=[Optional()],
        description=_l("Empty: off. Late cancellations count as no-shows."),
    )
    # -- end booking policies --


_PERIOD = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–~]\s*(\d{1,2}):(\d{2})\s*$")


def parse_periods(text: str) -> list[tuple[dt.time, dt.time]]:
    """``08:30-12:00, 13:30-17:00`` as time pairs; ``24:00`` closes at the end of the
    day (stored as 00:00, see ``rules.closes_next_day``), and a period that closes
    earlier than it opens runs overnight (``22:00-06:00``)."""
    out: list[tuple[dt.time, dt.time]] = []
    for part in re.split(r"[,，;；]", text or ""):
        if not part.strip():
            continue
        match = _PERIOD.match(part)
        if not match:
            raise ValueError(part.strip())
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if (h2, m2) == (24, 0):
            h2 = 0
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(part.strip())
        opens, closes = dt.time(h1, m1), dt.time(h2, m2)
        if opens == closes and opens != dt.time(0):
            raise ValueError(part.strip())  # 24 hours are written 00:00-24:00
        out.append((opens, closes))
    return out


def _periods_validator(form: Any, field: Any) -> None:
    try:
        parse_periods(field.data or "")
    except ValueError as exc:
        raise ValidationError(
            _l("Write periods as 08:30-12:00, 13:30-17:00 (not “%(part)s”).", part=str(exc))
        ) from None


def hours_form_class() -> type[FlaskForm]:
    """One text field per weekday, named day_0 (Monday) … day_6."""
    attrs: dict[str, Any] = {
        f"day_{i}": StringField(
            WEEKDAY_LABELS[i], validators=[Optional(), Length(max=200), _periods_validator]
        )
        for i in range(7)
    }
    return type("HoursForm", (FlaskForm,), attrs)


class ClosureForm(FlaskForm):
    start = DateTimeLocalField(
        _l("From"), format=LOCAL_FORMATS, validators=[InputRequired(_l("Enter a date and time."))]
    )
    end = DateTimeLocalField(
        _l("Until"), format=LOCAL_FORMATS, validators=[InputRequired(_l("Enter a date and time."))]
    )
    kind = SelectField(_l("Why"), choices=choices(ClosureKind))
    note = StringField(_l("Note"), validators=[Optional(), Length(max=300)])
    # Asked only when the closure covers bookings (the confirmation step).
    on_bookings = RadioField(
        _l("The bookings in this period"),
        choices=[
            ("cancel", _l("Cancel them")),
            ("ask_move", _l("Ask the companies to move them")),
        ],
        validators=[Optional()],
        validate_choice=False,  # the service names a bad choice
    )
    message = TextAreaField(
        _l("Message to the companies"), validators=[Optional(), Length(max=500)]
    )


class QualificationForm(FlaskForm):
    email = EmailField(_l("The user's email"), validators=[_required(), Length(max=254)])
    valid_until = DateField(_l("Valid until (optional)"), validators=[Optional()])


class ImportForm(FlaskForm):
    file = FileField(
        _l("Instrument list (.xlsx or .csv)"),
        validators=[FileRequired(_l("Choose a file."))],
        description=_l("At most 1 MB; the first row names the columns."),
    )


class ConfirmImportForm(FlaskForm):
    token = StringField(validators=[_required(), Length(max=64)])
