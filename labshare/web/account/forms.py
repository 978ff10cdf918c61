"""Forms of the token page: shape only; the rules live in accounts.tokens."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class CreateTokenForm(FlaskForm):
    name = StringField(
        _l("Name"),
        validators=[
            DataRequired(message=_l("Please fill in this field.")),
            Length(max=100, message=_l("At most %(max)d characters.")),
        ],
        description=_l("What the token is for, e.g. “LIMS sync”."),
    )


class ConfirmForm(FlaskForm):
    """A button that only carries the CSRF token (revoke, reset link)."""
