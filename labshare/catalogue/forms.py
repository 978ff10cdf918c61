"""The catalogue's filter form (GET, no CSRF: it changes nothing)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from labshare.labels import choices
from labshare.models import Field, ResourceKind


class CatalogueFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=100)])
    field = SelectField(
        _l("Measurement field"),
        choices=[SelectChoice("", _l("All fields")), *choices(Field)],
        validate_choice=False,
    )
    kind = SelectField(
        _l("Type"),
        choices=[SelectChoice("", _l("Labs and instruments")), *choices(ResourceKind)],
        validate_choice=False,
    )
    province = SelectField(_l("Province"), choices=[], validate_choice=False)
    institute = SelectField(_l("Institute"), choices=[], validate_choice=False)
