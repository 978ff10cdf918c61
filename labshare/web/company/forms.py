"""Forms of the company and staff pages: shape only; the rules live in
accounts.companies and accounts.staff_accounts."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import EqualTo, Length

from labshare.web.auth.forms import LANGUAGE_CHOICES, required


class InviteForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=[required(), Length(max=254)],
        description=_l("The invitation link is sent there; it works once, for 7 days."),
    )


class _NewAccountForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[required(), Length(max=100)])
    email = EmailField(_l("Email"), validators=[required(), Length(max=254)])
    password = PasswordField(
        _l("Password"),
        validators=[required(), Length(max=200)],
        description=_l("At least 10 characters; not your email, not a common password."),
    )
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[required(), EqualTo("password", message=_l("The two passwords do not match."))],
    )
    locale = SelectField(_l("Language"), choices=LANGUAGE_CHOICES, default="zh_CN")


class AcceptInvitationForm(_NewAccountForm):
    pass


class NewStaffForm(_NewAccountForm):
    name = StringField(_l("Full name"), validators=[required(), Length(max=100)])
    password = PasswordField(
        _l("Initial password"),
        validators=[required(), Length(max=200)],
        description=_l("At least 10 characters; not the email, not a common password."),
    )


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), validate_choice=False)
    institute = SelectField(_l("Institute"), coerce=str, validate_choice=False)
    institute_admin = BooleanField(_l("Institute administrator (manages its staff accounts)"))
