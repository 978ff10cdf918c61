"""What an order's callers send, checked: the length limits of its texts, no
control characters, money to the cent, ids that fit the columns."""

from __future__ import annotations

import unicodedata
from decimal import ROUND_HALF_UP, Decimal

from flask_babel import lazy_gettext as _l

from labshare.errors import ValidationFailed

#: An order carries at most this many item lines (a line may have a quantity).
MAX_ITEMS = 200
MAX_QUANTITY = 10_000
TEXT_MAX = 200
SHORT_MAX = 100
NOTES_MAX = 2000
REASON_MAX = 500
CENT = Decimal("0.01")
#: The money columns are NUMERIC(12, 2): larger would overflow on PostgreSQL.
MAX_MONEY = Decimal("9999999999.99")
#: Ids are 32-bit INTEGER columns; a larger one names no row (and SQLite cannot bind it).
MAX_ID = 2**31 - 1


def clean_text(value: str | None, field: str, limit: int, *, required: bool = False) -> str | None:
    text = (value or "").strip()
    check_no_control(text, field)
    if not text:
        if required:
            raise ValidationFailed(_l("This field is required."), field=field)
        return None
    if len(text) > limit:
        raise ValidationFailed(_l("At most %(n)d characters are allowed.", n=limit), field=field)
    return text


def check_no_control(text: str, field: str) -> None:
    """PostgreSQL refuses a NUL in text; no other control character belongs in an
    order either (line breaks and tabs in notes do)."""
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text):
        raise ValidationFailed(_l("Control characters are not allowed."), field=field)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
