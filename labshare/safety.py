"""Small guards shared by the blueprints."""

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
