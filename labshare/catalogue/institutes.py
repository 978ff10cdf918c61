"""Institutes: an admin creates and edits the institutes that offer resources.

Every function validates its input and raises ``ValidationFailed(field=...)``; nothing
here commits. A refusal happens before any change to the object, so nothing is written.
"""

from __future__ import annotations

import re
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import Institute, InstituteKind, User
from labshare.ops import audit
from labshare.timeutil import is_valid_zone

CODE_RE = re.compile(r"[A-Z0-9_-]{2,32}")
PROVINCE_CODE_RE = re.compile(r"[0-9]{6}")

#: The editable fields and their maximum lengths (None: not a free text).
FIELDS: dict[str, int | None] = {
    "code": 32,
    "name": 200,
    "name_en": 200,
    "kind": None,
    "province_code": 6,
    "province": 50,
    "city": 50,
    "address": 300,
    "contact_phone": 50,
    "contact_email": 254,
    "timezone": 64,
}


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _optional(values: dict[str, Any], field: str) -> str | None:
    text = _text(values.get(field))
    limit = FIELDS[field]
    if limit is not None and len(text) > limit:
        raise ValidationFailed(
            _l("This field may have at most %(n)d characters.", n=limit), field=field
        )
    return text or None


def _required(values: dict[str, Any], field: str, message: Any) -> str:
    text = _optional(values, field)
    if text is None:
        raise ValidationFailed(message, field=field)
    return text


def _check_code(values: dict[str, Any], institute: Institute | None) -> str:
    code = _required(values, "code", _l("Please enter the institute code.")).upper()
    if not CODE_RE.fullmatch(code):
        raise ValidationFailed(
            _l("The code must have 2 to 32 characters: letters A–Z, digits, '_' or '-'."),
            field="code",
        )
    query = select(Institute.id).where(func.upper(Institute.code) == code)
    if institute is not None and institute.id is not None:
        query = query.where(Institute.id != institute.id)
    if db.session.scalar(query) is not None:
        raise ValidationFailed(_l("Another institute already has this code."), field="code")
    return code


def _check_kind(value: Any) -> InstituteKind:
    try:
        return InstituteKind(_text(value))
    except ValueError:
        raise ValidationFailed(_l("Please choose the kind of institute."), field="kind") from None


def _check_email(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(
            _l("This is not a valid email address: %(reason)s", reason=str(exc)),
            field="contact_email",
        ) from None
    return checked.normalized


def _validated(values: dict[str, Any], institute: Institute | None) -> dict[str, Any]:
    """All fields checked and normalised, in the order of the form."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValidationFailed(_l("Unknown field."), field=sorted(unknown)[0])
    clean: dict[str, Any] = {}
    clean["code"] = _check_code(values, institute)
    clean["name"] = _required(values, "name", _l("Please enter the name of the institute."))
    clean["name_en"] = _optional(values, "name_en")
    clean["kind"] = _check_kind(values.get("kind"))
    province_code = _required(values, "province_code", _l("Please enter the province code."))
    if not PROVINCE_CODE_RE.fullmatch(province_code):
        raise ValidationFailed(
            _l("The province code has 6 digits (for example 320000)."), field="province_code"
        )
    clean["province_code"] = province_code
    clean["province"] = _required(values, "province", _l("Please enter the province."))
    clean["city"] = _optional(values, "city")
    clean["address"] = _optional(values, "address")
    clean["contact_phone"] = _optional(values, "contact_phone")
    clean["contact_email"] = _check_email(_optional(values, "contact_email"))
    timezone = _text(values.get("timezone")) or "Asia/Shanghai"
    if len(timezone) > 64 or not is_valid_zone(timezone):
        raise ValidationFailed(
            _l("Unknown time zone; use a name such as Asia/Shanghai."), field="timezone"
        )
    clean["timezone"] = timezone
    return clean


def create_institute(
    actor: User | None,
    *,
    code: str,
    name: str,
    name_en: str | None = None,
    kind: InstituteKind | str,
    province_code: str,
    province: str,
    city: str | None = None,
    address: str | None = None,
    contact_phone: str | None = None,
    contact_email: str | None = None,
    timezone: str = "Asia/Shanghai",
) -> Institute:
    """Create an institute; ``actor`` is the admin (None: CLI)."""
    clean = _validated(
        {
            "code": code,
            "name": name,
            "name_en": name_en,
            "kind": kind,
            "province_code": province_code,
            "province": province,
            "city": city,
            "address": address,
            "contact_phone": contact_phone,
            "contact_email": contact_email,
            "timezone": timezone,
        },
        None,
    )
    institute = Institute(**clean, active=True)
    db.session.add(institute)
    db.session.flush()
    audit.record(
        "institute_created",
        institute,
        actor=actor,
        data={"code": institute.code, "name": institute.name},
    )
    return institute


def update_institute(actor: User | None, institute: Institute, **fields: Any) -> Institute:
    """Change some fields of an institute; the others keep their values. The audit
    row lists the changed fields with their old and new values."""
    current: dict[str, Any] = {name: getattr(institute, name) for name in FIELDS}
    current.update(fields)
    clean = _validated(current, institute)
    changes: dict[str, Any] = {}
    for name, value in clean.items():
        old = getattr(institute, name)
        if old != value:
            changes[name] = [
                None if old is None else str(old),
                None if value is None else str(value),
            ]
    if not changes:
        return institute
    for name in changes:
        setattr(institute, name, clean[name])
    db.session.flush()
    audit.record("institute_updated", institute, actor=actor, data={"changes": changes})
    return institute
