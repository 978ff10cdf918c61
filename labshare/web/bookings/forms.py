"""Forms of the SME pages: shape only (types, lengths); the rules live in labshare/booking."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]


def _required() -> DataRequired:
    return DataRequired(message=_l("Please fill in this field."))


class BookingForm(FlaskForm):
    start = DateTimeLocalField(
        _l("Start"),
        format=LOCAL_FORMATS,
        validators=[InputRequired(message=_l("Enter a date and time."))],
    )
    end = DateTimeLocalField(
        _l("End"),
        format=LOCAL_FORMATS,
        validators=[InputRequired(message=_l("Enter a date and time."))],
    )
    purpose = TextAreaField(
        _l("Purpose"),
        validators=[_required(), Length(max=500)],
        description=_l("What do you need to measure, and why?"),
    )
    samples = TextAreaField(
        _l("Samples"),
        validators=[Optional(), Length(max=5000)],
        description=_l("What you bring: kind, number, size (optional)."),
    )


class CancelForm(FlaskForm):
    reason = StringField(_l("Reason (optional)"), validators=[Optional(), Length(max=500)])


class ConfirmForm(FlaskForm):
    """A button that changes something: CSRF only."""
