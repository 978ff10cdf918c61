"""Glue the booking and management pages share: local times in forms, and a
service's refusal shown next to the field it concerns."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

from labshare.errors import DomainError, SlotTaken, ValidationFailed
from labshare.timeutil import NonexistentLocalTime, localize, to_local

#: The form field that a rule of the engine concerns, when the error names none.
RULE_FIELDS = {
    "lead_time": "start",
    "horizon": "start",
    "granularity": "start",
    "opening_hours": "start",
    "closure": "start",
    "min_duration": "end",
    "max_duration": "end",
    "calibration_expired": "end",
}

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


def show_error(form: FlaskForm, exc: DomainError, *, aliases: dict[str, str] | None = None) -> str:
    """Attach ``exc``'s message to the field it concerns, else to the form; returns
    the name of the field that took it ("" for the form)."""
    aliases = aliases or {}
    candidates = [exc.field or "", RULE_FIELDS.get(exc.rule or "", "")]
    if isinstance(exc, SlotTaken):
        candidates.append("start")
    message = str(exc.message)
    for name in candidates:
        name = aliases.get(name, name)
        field: Any = form._fields.get(name) if name else None
        if field is not None:
            field.errors = [*list(field.errors or []), message]
            return str(name)
    form.form_errors.append(message)
    return ""


def aware(naive: dt.datetime | None, tz: str, field: str) -> dt.datetime:
    """A wall-clock time typed in the institute's zone, as aware UTC. A time that
    does not exist there (the spring-forward gap) is refused, naming ``field``."""
    if naive is None:
        raise ValidationFailed(_l("A date and time is required."), field=field)
    try:
        return localize(naive.replace(tzinfo=None), tz).astimezone(dt.UTC)
    except NonexistentLocalTime:
        raise ValidationFailed(
            _l(
                "%(time)s does not exist in the time zone %(tz)s (the clocks change); "
                "choose another time.",
                time=naive.strftime("%Y-%m-%d %H:%M"),
                tz=tz,
            ),
            field=field,
        ) from None
    except OverflowError:  # the first or last day of the calendar, shifted past it
        raise ValidationFailed(
            _l("This date is too far in the past or the future."), field=field
        ) from None


def local_input(value: dt.datetime | None, tz: str) -> dt.datetime | None:
    """An aware instant as the naive wall-clock time a datetime-local input shows."""
    if value is None:
        return None
    return to_local(value, tz).replace(tzinfo=None, second=0, microsecond=0)


def parse_local_arg(text: str | None) -> dt.datetime | None:
    """A ``YYYY-MM-DDTHH:MM`` query argument, or None when absent or malformed."""
    if not text:
        return None
    try:
        return dt.datetime.strptime(text.strip()[:16], LOCAL_FORMAT)
    except ValueError:
        return None
