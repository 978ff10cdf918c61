"""The recurrence rule of a series: what a request may ask for
(:func:`validate_spec`) and the occurrences it expands to (:func:`expand`,
python-dateutil's ``rrule``), as wall-clock times in the institute's zone, so a
09:00-11:00 slot stays 09:00-11:00 local across a DST switch. Expansion stops at
the resource's booking horizon and is capped at ``MAX_OCCURRENCES``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, rrule
from flask_babel import lazy_gettext as _l

from labshare.booking.rules import local_instant
from labshare.errors import (
    RuleViolation,
    ValidationFailed,
)
from labshare.timeutil import zone

MAX_OCCURRENCES = 100
MAX_INTERVAL = 99
FREQUENCIES = {"daily": DAILY, "weekly": WEEKLY, "monthly": MONTHLY}


# -- the recurrence rule ------------------------------------------------------------------


@dataclass(frozen=True)
class RecurrenceSpec:
    """A checked recurrence rule. ``weekdays``: Monday = 0 (weekly only; empty means
    the first occurrence's weekday). Exactly one of ``until`` (a local date,
    inclusive) and ``count``."""

    freq: str
    interval: int = 1
    weekdays: tuple[int, ...] = ()
    until: dt.date | None = None
    count: int | None = None


def validate_spec(
    freq: Any,
    *,
    interval: Any = 1,
    weekdays: Any = None,
    until: Any = None,
    count: Any = None,
) -> RecurrenceSpec:
    """Check a rule as typed; ValidationFailed names the field."""
    if freq not in FREQUENCIES:
        raise ValidationFailed(
            _l("Choose how often: daily, weekly or monthly."), field="recurrence.freq"
        )
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int)
        or not (1 <= interval <= MAX_INTERVAL)
    ):
        raise ValidationFailed(
            _l("The interval must be a whole number from 1 to %(n)d.", n=MAX_INTERVAL),
            field="recurrence.interval",
        )
    days: tuple[int, ...] = ()
    if weekdays:
        if freq != "weekly":
            raise ValidationFailed(
                _l("Weekdays can only be chosen for a weekly series."),
                field="recurrence.weekdays",
            )
        if not isinstance(weekdays, (list, tuple)) or any(
            isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6 for d in weekdays
        ):
            raise ValidationFailed(
                _l("Weekdays are numbers from 0 (Monday) to 6 (Sunday)."),
                field="recurrence.weekdays",
            )
        days = tuple(sorted(set(weekdays)))
    if (until is None) == (count is None):
        raise ValidationFailed(
            _l("Give either an end date or a number of occurrences, not both."),
            field="recurrence.until" if until is None else "recurrence.count",
        )
    if count is not None and (
        isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_OCCURRENCES
    ):
        raise ValidationFailed(
            _l("The number of occurrences must be from 1 to %(n)d.", n=MAX_OCCURRENCES),
            field="recurrence.count",
        )
    if until is not None and (not isinstance(until, dt.date) or isinstance(until, dt.datetime)):
        raise ValidationFailed(_l("The end date must be a date."), field="recurrence.until")
    return RecurrenceSpec(freq, interval, days, until, count)


@dataclass(frozen=True)
class Expansion:
    occurrences: list[tuple[dt.datetime, dt.datetime]]
    #: Some occurrences of the rule lay beyond the booking horizon and were left out.
    cut_at_horizon: bool


def expand(
    spec: RecurrenceSpec,
    start: dt.datetime,
    end: dt.datetime,
    tz: str,
    horizon: dt.datetime,
) -> Expansion:
    """The occurrences of ``spec`` whose first one is [start, end) (aware), as aware
    UTC spans, computed in wall-clock time of ``tz``; those starting after
    ``horizon`` are cut. ValidationFailed when there are none, too many, or they
    overlap one another."""
    z = zone(tz)
    local_start = start.astimezone(z).replace(tzinfo=None)
    local_end = end.astimezone(z).replace(tzinfo=None)
    wall = local_end - local_start
    if spec.until is not None and spec.until < local_start.date():
        raise ValidationFailed(
            _l("The end date must not be before the first occurrence."),
            field="recurrence.until",
        )
    kwargs: dict[str, Any] = {"dtstart": local_start, "interval": spec.interval}
    if spec.freq == "weekly":
        kwargs["byweekday"] = spec.weekdays or (local_start.weekday(),)
    if spec.count is not None:
        kwargs["count"] = spec.count
    else:
        assert spec.until is not None
        kwargs["until"] = dt.datetime.combine(spec.until, dt.time(23, 59, 59))
    occurrences: list[tuple[dt.datetime, dt.datetime]] = []
    cut = False
    for naive in rrule(FREQUENCIES[spec.freq], **kwargs):
        occ_start = local_instant(naive.date(), naive.time(), tz)
        if occ_start > horizon:
            cut = True
            break
        if len(occurrences) >= MAX_OCCURRENCES:
            raise ValidationFailed(
                _l(
                    "A series may have at most %(n)d occurrences; choose an earlier end date.",
                    n=MAX_OCCURRENCES,
                ),
                field="recurrence.until",
            )
        naive_end = naive + wall
        occ_end = local_instant(naive_end.date(), naive_end.time(), tz)
        if occurrences and occ_start < occurrences[-1][1]:
            raise ValidationFailed(
                _l("The occurrences would overlap one another; shorten the booking."),
                field="end",
            )
        occurrences.append((occ_start, occ_end))
    if not occurrences:
        if cut:
            raise RuleViolation(
                _l("The series starts beyond the booking horizon."),
                rule="horizon",
                field="start",
            )
        raise ValidationFailed(
            _l("No occurrence falls on the chosen days before the end date."),
            field="recurrence.until",
        )
    return Expansion(occurrences, cut)
