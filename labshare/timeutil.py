"""The one source of the current time, and conversions at the edges.

Times are UTC inside the system. ``utcnow`` can be moved by tests through
``set_clock`` so that jobs and rules are tested without sleeping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_clock: Callable[[], dt.datetime] | None = None


def utcnow() -> dt.datetime:
    if _clock is not None:
        return _clock().astimezone(dt.UTC)
    return dt.datetime.now(dt.UTC)


def set_clock(clock: Callable[[], dt.datetime] | None) -> None:
    """Replace the clock (tests); ``None`` restores the real one."""
    global _clock
    _clock = clock


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_valid_zone(name: str) -> bool:
    try:
        zone(name)
    except ValueError:
        return False
    return True


def to_local(value: dt.datetime, tz: str) -> dt.datetime:
    return value.astimezone(zone(tz))


def localize(naive: dt.datetime, tz: str) -> dt.datetime:
    """Attach ``tz`` to a naive local time, refusing times that do not exist
    (spring-forward gap) and picking the first of an ambiguous pair."""
    z = zone(tz)
    aware = naive.replace(tzinfo=z, fold=0)
    roundtrip = aware.astimezone(dt.UTC).astimezone(z).replace(tzinfo=None)
    if roundtrip != naive:
        raise NonexistentLocalTime(naive, tz)
    return aware


class NonexistentLocalTime(ValueError):
    def __init__(self, naive: dt.datetime, tz: str) -> None:
        super().__init__(f"{naive.isoformat()} does not exist in {tz}")
        self.naive = naive
        self.tz = tz


def parse_aware(text: str, tz: str | None = None) -> dt.datetime:
    """Parse ISO 8601. With an offset: that instant. Without one: only when ``tz``
    (the resource's zone) is given; otherwise ValueError."""
    if not text.isprintable():  # fromisoformat lets a NUL or other control through
        raise ValueError(f"{text!r} is not a time")
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        if value.tzinfo is None or value.utcoffset() is None:
            if tz is None:
                raise NaiveTime(text)
            return localize(value, tz).astimezone(dt.UTC)
        return value.astimezone(dt.UTC)
    except OverflowError as exc:  # year 1 or 9999 shifted past the calendar's ends
        raise ValueError(f"{text!r} is out of range") from exc


class NaiveTime(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__(f"{text!r} has no UTC offset")


def isoformat_local(value: dt.datetime, tz: str) -> str:
    return to_local(value, tz).isoformat()
