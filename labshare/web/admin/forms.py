"""Admin forms: shape only; the rules live in accounts.accounts."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import EqualTo, Length

from labshare.labels import ROLE_LABELS, choices
from labshare.models import InstituteKind, Role
from labshare.web.auth.forms import LANGUAGE_CHOICES, required


class NewUserForm(FlaskForm):
    role = SelectField(
        _l("Role"),
        choices=[
            SelectChoice(Role.STAFF.value, ROLE_LABELS[Role.STAFF]),
            SelectChoice(Role.ADMIN.value, ROLE_LABELS[Role.ADMIN]),
        ],
    )
    institute = SelectField(
        _l("Institute"),
        coerce=str,
        description=_l("Required for institute staff."),
        validate_choice=True,
    )
    name = StringField(_l("Full name"), validators=[required(), Length(max=100)])
    email = EmailField(_l("Email"), validators=[required(), Length(max=254)])
    password = PasswordField(
        _l("Initial password"),
        validators=[required(), Length(max=200)],
        description=_l("At least 10 characters; not the email, not a common password."),
    )
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[required(), EqualTo("password", message=_l("The two passwords do not match."))],
    )
    locale = SelectField(_l("Language"), choices=LANGUAGE_CHOICES, default="zh_CN")


class UserFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Length(max=100)])
    role = SelectField(
        _l("Role"),
        choices=[
            SelectChoice("", _l("All roles")),
            *(SelectChoice(r.value, ROLE_LABELS[r]) for r in Role),
        ],
        validate_choice=False,
    )


class InstituteForm(FlaskForm):
    """An institute's fields; catalogue.institutes checks them and names the field."""

    code = StringField(
        _l("Code"),
        description=_l("2 to 32 characters: letters A–Z, digits, '_' or '-'; stored upper-case."),
    )
    name = StringField(_l("Name"))
    name_en = StringField(_l("English name"))
    kind = SelectField(_l("Kind"), choices=choices(InstituteKind), validate_choice=False)
    province_code = StringField(
        _l("Province code"),
        description=_l("The 6-digit administrative division code, for example 320000."),
    )
    province = StringField(_l("Province"))
    city = StringField(_l("City"))
    address = StringField(_l("Address"))
    contact_phone = StringField(_l("Contact phone"))
    contact_email = EmailField(_l("Contact email"))
    timezone = StringField(
        _l("Time zone"),
        default="Asia/Shanghai",
        description=_l("An IANA time zone name, for example Asia/Shanghai."),
    )
