"""A pydantic validation error as the API's message: in the user's language,
naming the field. pydantic's own messages are English only ("String should have
at most 100 characters"); the kinds a client meets are translated here, with the
limit the error carries, and any other kind keeps pydantic's text after the
field's name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_babel import gettext as _


def _number(value: Any) -> str:
    """A limit as people write it: 1, not 1.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _choices(expected: Any) -> str:
    """pydantic's "'lab' or 'instrument'" as "'lab', 'instrument'" (no English "or")."""
    return str(expected).replace(" or ", ", ")


def _whole(field: str, _ctx: dict[str, Any]) -> str:
    return _("%(field)s must be a whole number.", field=field)


def _number_of(field: str, _ctx: dict[str, Any]) -> str:
    return _("%(field)s must be a number.", field=field)


def _boolean(field: str, _ctx: dict[str, Any]) -> str:
    return _("%(field)s must be true or false.", field=field)


def _choice(field: str, ctx: dict[str, Any]) -> str:
    choices = _choices(ctx.get("expected", ""))
    return _("%(field)s must be one of %(choices)s.", field=field, choices=choices)


def _date(field: str, _ctx: dict[str, Any]) -> str:
    return _("%(field)s is not a date, e.g. 2026-12-01.", field=field)


#: pydantic's error kind → the message (the field's label, the error's context).
_BY_KIND: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "string_too_long": lambda f, c: _(
        "%(field)s may be at most %(n)s characters.", field=f, n=c.get("max_length")
    ),
    "string_too_short": lambda f, c: _(
        "%(field)s must be at least %(n)s characters.", field=f, n=c.get("min_length")
    ),
    "too_long": lambda f, c: _(
        "%(field)s may have at most %(n)s items.", field=f, n=c.get("max_length")
    ),
    "too_short": lambda f, c: _(
        "%(field)s must have at least %(n)s items.", field=f, n=c.get("min_length")
    ),
    "greater_than_equal": lambda f, c: _(
        "%(field)s must be at least %(n)s.", field=f, n=_number(c.get("ge"))
    ),
    "greater_than": lambda f, c: _(
        "%(field)s must be more than %(n)s.", field=f, n=_number(c.get("gt"))
    ),
    "less_than_equal": lambda f, c: _(
        "%(field)s may be at most %(n)s.", field=f, n=_number(c.get("le"))
    ),
    "less_than": lambda f, c: _(
        "%(field)s must be less than %(n)s.", field=f, n=_number(c.get("lt"))
    ),
    "int_parsing": _whole,
    "int_type": _whole,
    "int_from_float": _whole,
    "float_parsing": _number_of,
    "float_type": _number_of,
    "finite_number": _number_of,
    "bool_parsing": _boolean,
    "bool_type": _boolean,
    "enum": _choice,
    "literal_error": _choice,
    "string_type": lambda f, _c: _("%(field)s must be text.", field=f),
    "list_type": lambda f, _c: _("%(field)s must be a list.", field=f),
    "extra_forbidden": lambda f, _c: _("%(field)s is not a field of this request.", field=f),
    "date_parsing": _date,
    "date_type": _date,
    "date_from_datetime_parsing": _date,
    "date_from_datetime_inexact": _date,
}


def message(kind: str, name: str | None, ctx: dict[str, Any] | None, pydantic_message: str) -> str:
    """The message of one pydantic error of ``kind`` on the field ``name`` (None: the
    body itself)."""
    label = name or _("the request body")
    if kind == "naive_time":
        return _(
            "%(field)s needs a UTC offset, e.g. 2026-12-01T09:00:00+08:00.",
            field=label,
        )
    if kind == "invalid_time":
        return _(
            "%(field)s is not an ISO 8601 time, e.g. 2026-12-01T09:00:00+08:00.",
            field=label,
        )
    if kind == "missing":
        return _("%(field)s is required.", field=label)
    if kind == "json_invalid":
        return _("The request body is not valid JSON.")
    if kind in ("model_type", "dict_type", "model_attributes_type") and name is None:
        return _("The request body must be a JSON object.")
    found = _BY_KIND.get(kind)
    if found is not None and name is not None:
        return found(label, ctx or {})
    return f"{label}: {pydantic_message}"


__all__ = ["message"]
