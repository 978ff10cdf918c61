"""Helpers shared by the site's forms."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm

from labshare.errors import DomainError


def apply_domain_error(
    form: FlaskForm, exc: DomainError, *, aliases: dict[str, str] | None = None
) -> bool:
    """Show a service's refusal next to the form field it names.

    ``aliases`` maps a service field name to the form's (``{"start": "start_time"}``).
    Returns True when a field took the message; otherwise it is added to
    ``form.form_errors`` (shown above the form).
    """
    name = (aliases or {}).get(exc.field or "", exc.field or "")
    field: Any = form._fields.get(name) if name else None
    message = str(exc.message)
    if field is not None:
        field.errors = [*field.errors, message] if isinstance(field.errors, list) else [message]
        return True
    form.form_errors.append(message)
    return False
