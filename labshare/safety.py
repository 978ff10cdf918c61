"""Small guards shared by the blueprints, services and jobs."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_next(target: str | None) -> str | None:
    """Return ``target`` only if it is a path on this site, else None.

    Refuses ``//evil``, ``/\\evil``, ``////evil``, schemes and control characters.
    """
    if not target:
        return None
    if any(ord(c) < 32 for c in target):
        return None
    normalized = target.replace("\\", "/")
    if not normalized.startswith("/") or normalized.startswith("//"):
        return None
    parts = urlsplit(normalized)
    if parts.scheme or parts.netloc:
        return None
    return normalized


#: A cell starting with one of these is read as a formula by Excel, LibreOffice and
#: Google Sheets (OWASP "CSV injection"); a tab or CR start is stripped then evaluated.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: a string starting like a formula
    gets a leading single quote (OWASP's advice); anything else is unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
