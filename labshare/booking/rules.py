"""Booking rules of a resource, and the calendar arithmetic the rules and the
availability share: opening hours, the slot grid and calibration expiry, all in
the institute's local zone, returned as aware UTC instants."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields

from sqlalchemy import select

from labshare.extensions import db
from labshare.models import DEFAULT_RULES, BookingRules, Instrument, Lab, OpeningPeriod, Resource
from labshare.timeutil import NonexistentLocalTime, localize, zone

#: No booking may be longer than this, whatever a resource's rules say. It bounds
#: the availability query (``start_at > from - MAX_BOOKING_SPAN``) so that a
#: resource's old history is never scanned.
MAX_BOOKING_SPAN = dt.timedelta(days=31)


@dataclass(frozen=True)
class Rules:
    slot_minutes: int
    min_minutes: int
    max_minutes: int
    lead_time_hours: int
    horizon_days: int
    requires_approval: bool
    max_active_per_company: int
    cancel_deadline_hours: int
    # -- waitlist --
    waitlist_enabled: bool = True
    waitlist_offer_minutes: int = 120
    # -- end waitlist --
    # -- booking policies --
    buffer_minutes: int = 0
    late_cancel_hours: int = 0
    no_show_approval_threshold: int | None = None
    # -- end booking policies --
    # -- check-in --
    checkin_required: bool = False
    checkin_opens_minutes: int = 15
    checkin_release_minutes: int = 15
    # -- end check-in --

    @classmethod
    def from_row(cls, row: BookingRules) -> Rules:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


DEFAULT = Rules(**DEFAULT_RULES)  # type: ignore[arg-type]


def lab_id_of(resource: Resource) -> int:
    """The lab whose opening hours and closures apply to ``resource``."""
    if isinstance(resource, Instrument):
        return resource.lab_id
    return resource.id


def scope_ids(resource: Resource) -> list[int]:
    """The resource itself and, for an instrument, its lab: closures of either apply."""
    lab_id = lab_id_of(resource)
    return [resource.id] if lab_id == resource.id else [resource.id, lab_id]


def effective_rules(resource: Resource) -> Rules:
    """The instrument's own rules, else its lab's, else the defaults. One query."""
    ids = scope_ids(resource)
    rows = {
        r.resource_id: r
        for r in db.session.scalars(select(BookingRules).where(BookingRules.resource_id.in_(ids)))
    }
    for rid in ids:
        if rid in rows:
            return Rules.from_row(rows[rid])
    return DEFAULT


def institute_zone(resource: Resource) -> str:
    return resource.institute.timezone or "Asia/Shanghai"


# -- local-time arithmetic ---------------------------------------------------------------


def local_instant(day: dt.date, at: dt.time, tz: str) -> dt.datetime:
    """``day`` at wall-clock ``at`` in ``tz``, as aware UTC. A wall time inside a
    spring-forward gap maps to the instant the gap ends (the clock jumps over it);
    an ambiguous one (autumn) to its first occurrence."""
    naive = dt.datetime.combine(day, at)
    try:
        return localize(naive, tz).astimezone(dt.UTC)
    except NonexistentLocalTime:
        # fold=0 reads the wall time with the offset in force before the gap, which
        # lands after the gap; step back to the gap's end, the first valid instant.
        z = zone(tz)
        after = naive.replace(tzinfo=z, fold=0).astimezone(dt.UTC)
        probe = after
        while probe.astimezone(z).replace(tzinfo=None) > naive:
            probe -= dt.timedelta(minutes=15)
        while probe.astimezone(z).replace(tzinfo=None) < naive:
            probe += dt.timedelta(minutes=1)
        return probe


def local_midnight_after(day: dt.date, tz: str) -> dt.datetime:
    """The end of local ``day`` (the start of the next one), aware UTC."""
    return local_instant(day + dt.timedelta(days=1), dt.time(0, 0), tz)


def on_grid(value: dt.datetime, slot_minutes: int, tz: str) -> bool:
    """Whether ``value`` falls on the slot grid: wall-clock minutes since local
    midnight divisible by ``slot_minutes`` (so 09:00 stays on the grid on DST days)."""
    local = value.astimezone(zone(tz))
    if local.second or local.microsecond:
        return False
    return (local.hour * 60 + local.minute) % slot_minutes == 0


Span = tuple[dt.datetime, dt.datetime]


def merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted, non-overlapping; touching spans are joined."""
    out: list[Span] = []
    for s, e in sorted(spans):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def subtract(spans: Sequence[Span], cut: Sequence[Span]) -> list[Span]:
    """``spans`` minus ``cut``; both sorted and merged."""
    out: list[Span] = []
    j = 0
    for s, e in spans:
        cur = s
        while j < len(cut) and cut[j][1] <= cur:
            j += 1
        k = j
        while k < len(cut) and cut[k][0] < e:
            cs, ce = cut[k]
            if cs > cur:
                out.append((cur, cs))
            cur = max(cur, ce)
            if cur >= e:
                break
            k += 1
        if cur < e:
            out.append((cur, e))
    return out


def clip(spans: Iterable[Span], start: dt.datetime, end: dt.datetime) -> list[Span]:
    return [(max(s, start), min(e, end)) for s, e in spans if s < end and e > start]


def load_opening_periods(resource: Resource) -> list[tuple[int, dt.time, dt.time]]:
    """(weekday, opens, closes) of the lab that ``resource`` is or belongs to. One
    query, no lazy loads."""
    if isinstance(resource, Lab) and "opening_periods" in resource.__dict__:
        return [(p.weekday, p.opens, p.closes) for p in resource.opening_periods]
    rows = db.session.execute(
        select(OpeningPeriod.weekday, OpeningPeriod.opens, OpeningPeriod.closes).where(
            OpeningPeriod.lab_id == lab_id_of(resource)
        )
    )
    return [(int(w), o, c) for w, o, c in rows]


def closes_next_day(opens: dt.time, closes: dt.time) -> bool:
    """An opening period is the half-open local interval [opens, closes) from its
    weekday on; ``closes <= opens`` closes on the next day (00:00 is 24:00, 22:00-06:00
    runs overnight, 00:00-00:00 is the whole day)."""
    return closes <= opens


def period_minutes(opens: dt.time, closes: dt.time) -> int:
    """How long a weekly opening period lasts on the wall clock, in minutes."""
    minutes = (closes.hour - opens.hour) * 60 + closes.minute - opens.minute
    return minutes + 24 * 60 if closes_next_day(opens, closes) else minutes


def format_period(opens: dt.time, closes: dt.time) -> str:
    """``08:00-12:00``; ``09:00-24:00``; ``22:00-06:00`` (overnight)."""
    end = "24:00" if closes == dt.time(0, 0) else closes.strftime("%H:%M")
    return f"{opens.strftime('%H:%M')}-{end}"


def opening_spans(
    periods: Sequence[tuple[int, dt.time, dt.time]],
    tz: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    weekday_of: Callable[[dt.date], int | None] | None = None,
) -> list[Span]:
    """The lab's open time around [start, end), computed per local day in ``tz`` (so
    each DST day gets its own offsets), merged. Touching periods count as one, so
    a lab open 00:00-24:00 every day is one span, and 22:00-06:00 runs into the
    next day (``closes_next_day``). ``weekday_of``: whose periods start on a local
    day, None for none (holidays and make-up workdays, ``workdays.open_spans``)."""
    if not periods:
        return []
    z = zone(tz)
    first = start.astimezone(z).date() - dt.timedelta(days=1)
    last = end.astimezone(z).date() + dt.timedelta(days=1)
    by_day: dict[int, list[tuple[dt.time, dt.time]]] = {}
    for weekday, opens, closes in periods:
        by_day.setdefault(weekday, []).append((opens, closes))
    spans: list[Span] = []
    day = first
    while day <= last:
        starts: int | None = day.weekday() if weekday_of is None else weekday_of(day)
        for opens, closes in by_day.get(starts, ()) if starts is not None else ():
            closing_day = day + dt.timedelta(days=1) if closes_next_day(opens, closes) else day
            spans.append((local_instant(day, opens, tz), local_instant(closing_day, closes, tz)))
        day += dt.timedelta(days=1)
    return merge(spans)


def calibration_cutoff(resource: Resource, tz: str) -> dt.datetime | None:
    """The instant after which an instrument is out of calibration: the end of the
    local day ``calibration_valid_until``. None: no limit."""
    if not isinstance(resource, Instrument) or resource.calibration_valid_until is None:
        return None
    return local_midnight_after(resource.calibration_valid_until, tz)


def rules_for(resources: Sequence[Resource]) -> dict[int, Rules]:
    """``effective_rules`` of many resources in one query: own rules, else the lab's,
    else the defaults."""
    wanted = {rid for r in resources for rid in scope_ids(r)}
    rows = (
        {
            row.resource_id: Rules.from_row(row)
            for row in db.session.scalars(
                select(BookingRules).where(BookingRules.resource_id.in_(wanted))
            )
        }
        if wanted
        else {}
    )
    out: dict[int, Rules] = {}
    for r in resources:
        out[r.id] = next((rows[i] for i in scope_ids(r) if i in rows), DEFAULT)
    return out


def own_or_lab(own: BookingRules | None, of_lab: BookingRules | None) -> Rules:
    """A resource's rules from its own row, else its lab's, else the defaults."""
    if own is not None:
        return Rules.from_row(own)
    return Rules.from_row(of_lab) if of_lab is not None else DEFAULT
