"""Public holidays and make-up workdays (调休) in the booking engine.

The national calendar (``calendar_day``, region '') and a province's extra days
(region = the institute's ``province_code``; a province's row overrides the national
one of the same day) change the opening hours of every lab that follows them (its
institute's ``follows_holidays`` and the lab's):

- a **holiday** closes the lab for its whole local day [00:00, 24:00) in the
  institute's zone: the opening periods that start on it do not open (nor their
  overnight tail into the next morning), and a period of the evening before that runs
  overnight is cut at midnight; availability paints it ``holiday`` and a booking that
  touches it is refused (rule ``holiday``) with the holiday's name;
- a **make-up workday** opens with the periods of the weekday the notice names
  (``works_as``); where none is named, Monday's, or, for a lab closed on Mondays, those
  of its first weekday (Tuesday to Friday) that has opening hours: the lab's normal
  workday hours. The State Council's notices only say which weekend day is worked.

The calendar is small (a few dozen rows a year) and read on every booking, so each
process keeps a copy keyed by ``calendar_state.token``, a random value every change of
``calendar_day`` writes in the same transaction (``holiday_admin``). The token is read
inside statements the engine sends anyway (the lean path's policy read, the calendar's
subject query), so a current copy costs no statement; a stale one is read again
once. The state row exists from the start (migration 0024) with ``EMPTY_TOKEN``: the
calendar was never written, empty, nothing to read (a missing row, as in a database
emptied by hand, means the same).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import ScalarSelect, select
from sqlalchemy.orm import Session

from labshare.booking.rules import (
    Span,
    closes_next_day,
    local_instant,
    merge,
    opening_spans,
    period_minutes,
    subtract,
)
from labshare.errors import RuleViolation
from labshare.extensions import db
from labshare.models import CalendarDay, CalendarState, Institute, Instrument, Lab, Resource
from labshare.timeutil import zone

HOLIDAY = "holiday"
WORKDAY = "workday"
KINDS = (HOLIDAY, WORKDAY)
NATIONAL = ""
STATE_ID = 1
#: The token of a calendar never changed (no row to read): every change writes a
#: random one, so this value never names a calendar with days.
EMPTY_TOKEN = "0" * 32


@dataclass(frozen=True)
class Day:
    day: dt.date
    kind: str
    name: str
    name_en: str | None
    works_as: int | None
    region: str = NATIONAL

    def label(self) -> str:
        """The name in the request's language (Chinese unless English is asked)."""
        locale = get_locale()
        if locale is not None and locale.language == "en" and self.name_en:
            return self.name_en
        return self.name


class _Label:
    """A day's name chosen when the message is rendered (in the reader's language)."""

    def __init__(self, day: Day) -> None:
        self.day = day

    def __str__(self) -> str:
        return self.day.label()


#: region -> day -> Day
Calendar = Mapping[str, Mapping[dt.date, Day]]
_EMPTY: Calendar = {}

_lock = threading.Lock()
_copy: tuple[str, Calendar] | None = None


def token_column(*, lock: bool = False) -> ScalarSelect[Any]:
    """The calendar's token as a scalar subquery, to add to a statement one sends anyway.

    ``lock`` (a booking about to be written, on PostgreSQL): the row is share-locked
    until the booking commits, so a change of the calendar (``holiday_admin._touch``
    updates the row) waits for the bookings checked against the old one and then sees
    them (its list of bookings on a new holiday), and a booking that starts meanwhile
    waits and reads the new token. SQLite's single writer orders them already."""
    stmt = select(CalendarState.token).where(CalendarState.id == STATE_ID)
    if lock:
        stmt = stmt.with_for_update(read=True)
    return stmt.scalar_subquery()


_SESSION_KEY = "workdays_token"


def read_token(reader: Any = None, *, lock: bool = False) -> str | None:
    """The calendar's token; a session reads it once per transaction (a series books
    each occurrence through ``check_slot``: one read, not one per occurrence).
    ``lock``: share-locked, as ``token_column`` explains (a booking being written)."""
    run = reader if reader is not None else db.session()
    if isinstance(run, Session):
        kept = run.info.get(_SESSION_KEY)
        if kept is not None and kept[0] is run.get_transaction() and (kept[2] or not lock):
            return kept[1]
    stmt = select(CalendarState.token).where(CalendarState.id == STATE_ID)
    if lock:
        stmt = stmt.with_for_update(read=True)
    found: str | None = run.execute(stmt).scalar()
    if isinstance(run, Session):
        run.info[_SESSION_KEY] = (run.get_transaction(), found, lock)
    return found


def token_changed(session: Session) -> None:
    """This transaction wrote a new token: read it again."""
    session.info.pop(_SESSION_KEY, None)


def calendar(token: str | None, reader: Any = None) -> Calendar:
    """Every row of the calendar, by region and day, as of ``token``: the process's copy
    when it was read at that token, else read now (one statement) and kept."""
    global _copy
    if token is None or token == EMPTY_TOKEN:
        return _EMPTY
    with _lock:
        if _copy is not None and _copy[0] == token:
            return _copy[1]
    run = reader if reader is not None else db.session()
    out: dict[str, dict[dt.date, Day]] = {}
    rows = run.execute(
        select(
            CalendarDay.region,
            CalendarDay.day,
            CalendarDay.kind,
            CalendarDay.name,
            CalendarDay.name_en,
            CalendarDay.works_as,
        )
    )
    for region, day, kind, name, name_en, works_as in rows:
        out.setdefault(region or NATIONAL, {})[day] = Day(
            day,
            kind,
            name,
            name_en,
            None if works_as is None else int(works_as),
            region or NATIONAL,
        )
    with _lock:
        _copy = (token, out)
    return out


def forget() -> None:
    """Drop the process's copy (tests; never needed for correctness)."""
    global _copy
    with _lock:
        _copy = None


@dataclass(frozen=True)
class Days:
    """The calendar as one institute's province sees it."""

    calendar: Calendar
    region: str

    def key(self) -> tuple[int, str]:
        """Equal for the same calendar object and region: a cheap key for memos that
        live no longer than the caller holds this (the calendar's id is not reused
        while it is alive; hashing the calendar itself would read every day)."""
        return id(self.calendar), self.region

    def get(self, day: dt.date) -> Day | None:
        own = self.calendar.get(self.region)
        if own is not None and self.region:
            found = own.get(day)
            if found is not None:
                return found
        national = self.calendar.get(NATIONAL)
        return national.get(day) if national is not None else None


def days_for(
    token: str | None,
    *,
    institute_follows: bool,
    lab_follows: bool | None,
    region: str | None,
    reader: Any = None,
) -> Days | None:
    """The calendar a lab follows, or None (opted out, or no calendar at all)."""
    if not institute_follows or lab_follows is False or token in (None, EMPTY_TOKEN):
        return None
    cal = calendar(token, reader)
    if not cal:
        return None
    return Days(cal, region or NATIONAL)


def days_of_resource(
    resource: Resource, session: Session | None = None, *, lock: bool = False
) -> Days | None:
    """``days_for`` of a loaded resource (its institute and lab may be lazy-loaded; the
    token is read: one statement). For the paths that are not counted statement by
    statement (``check_slot``, availability). ``lock``: see ``read_token``."""
    institute = resource.institute
    if not institute.follows_holidays:
        return None
    lab: Lab | None
    if isinstance(resource, Instrument):
        lab = resource.lab
    else:
        lab = resource if isinstance(resource, Lab) else None
    return days_for(
        read_token(session, lock=lock),
        institute_follows=True,
        lab_follows=None if lab is None else bool(lab.follows_holidays),
        region=institute.province_code,
        reader=session,
    )


# -- opening hours -------------------------------------------------------------------------


def _usual_workday(periods: Sequence[tuple[int, dt.time, dt.time]]) -> int:
    """Monday, or the lab's first weekday (Tuesday to Friday) with opening hours."""
    open_days = {w for w, _o, _c in periods}
    for weekday in range(5):
        if weekday in open_days:
            return weekday
    return 0


def weekday_rule(
    days: Days, periods: Sequence[tuple[int, dt.time, dt.time]]
) -> Callable[[dt.date], int | None]:
    """For ``rules.opening_spans``: the weekday whose periods start on a local day, or
    None for a holiday (no period starts)."""
    usual = _usual_workday(periods)

    def weekday_of(day: dt.date) -> int | None:
        found = days.get(day)
        if found is None:
            return day.weekday()
        if found.kind == HOLIDAY:
            return None
        return found.works_as if found.works_as is not None else usual

    return weekday_of


def holidays_between(
    days: Days | None, tz: str, start: dt.datetime, end: dt.datetime
) -> list[tuple[Day, Span]]:
    """The holidays whose local day overlaps [start, end), each with its day's span."""
    if days is None:
        return []
    z = zone(tz)
    day = start.astimezone(z).date()
    last = end.astimezone(z).date()
    out: list[tuple[Day, Span]] = []
    while day <= last:
        found = days.get(day)
        if found is not None and found.kind == HOLIDAY:
            span = (
                local_instant(day, dt.time(0), tz),
                local_instant(day + dt.timedelta(days=1), dt.time(0), tz),
            )
            if span[0] < end and span[1] > start:
                out.append((found, span))
        day += dt.timedelta(days=1)
    return out


def open_spans(
    periods: Sequence[tuple[int, dt.time, dt.time]],
    tz: str,
    start: dt.datetime,
    end: dt.datetime,
    days: Days | None,
) -> list[Span]:
    """``rules.opening_spans`` with the holidays and make-up workdays of ``days``."""
    if days is None:
        return opening_spans(periods, tz, start, end)
    spans = opening_spans(periods, tz, start, end, weekday_of=weekday_rule(days, periods))
    # a day's margin as opening_spans has: overnight periods of the day before
    window_start = start - dt.timedelta(days=2)
    window_end = end + dt.timedelta(days=2)
    closed = merge([span for _d, span in holidays_between(days, tz, window_start, window_end)])
    return subtract(spans, closed) if closed else spans


def check_holiday(days: Days | None, tz: str, start: dt.datetime, end: dt.datetime) -> None:
    """Refuse a booking that touches a holiday of the calendar its lab follows."""
    found = holidays_between(days, tz, start, end)
    if not found:
        return
    day = found[0][0]
    raise RuleViolation(
        _l(
            "The lab is closed on %(day)s for the public holiday %(name)s.",
            day=day.day.isoformat(),
            name=_Label(day),
        ),
        rule="holiday",
        field="start",
        details={"holiday": day.day.isoformat(), "holiday_name": day.name},
    )


def notes_of(resource: Resource, days: Sequence[dt.date]) -> list[Day | None]:
    """For a calendar page: each day's holiday or make-up workday, as the lab sees it."""
    found = days_of_resource(resource)
    return [found.get(d) if found is not None else None for d in days]


# -- statistics: open hours --------------------------------------------------------------


def days_of_labs(lab_ids: Iterable[int]) -> dict[int, Days]:
    """The calendar each of ``lab_ids`` follows (labs that follow none are left out):
    two statements, the token and the labs' flags (plus the calendar, when stale)."""
    ids = sorted(set(lab_ids))
    token = read_token()
    if not ids or token is None:
        return {}
    cal = calendar(token)
    if not cal:
        return {}
    rows = db.session.execute(
        select(Lab.id, Institute.province_code)
        .join(Institute, Institute.id == Lab.institute_id)
        .where(
            Lab.id.in_(ids),
            Lab.follows_holidays.is_(True),
            Institute.follows_holidays.is_(True),
        )
    )
    return {int(lab_id): Days(cal, region or NATIONAL) for lab_id, region in rows}


def _entries(days: Days, first: dt.date, end: dt.date) -> list[dt.date]:
    found: set[dt.date] = set()
    for region in {NATIONAL, days.region}:
        for day in days.calendar.get(region, {}):
            if first <= day < end:
                found.add(day)
    return sorted(found)


def minutes_changed(
    first: dt.date,
    end: dt.date,
    week: Mapping[int, Sequence[tuple[dt.time, dt.time]]],
    days: Days,
) -> float:
    """How many minutes of weekly opening hours the holidays and make-up workdays in
    the local days [first, end) take away (negative) or add: each such day has the
    periods that start on it replaced (``weekday_rule``), and an overnight period of the
    evening before a holiday cut at midnight, as ``open_spans`` does."""
    periods = [(wd, o, c) for wd, spans in week.items() for o, c in spans]
    rule = weekday_rule(days, periods)

    def minutes(weekday: int | None) -> int:
        if weekday is None:
            return 0
        return sum(period_minutes(o, c) for o, c in week.get(weekday, ()))

    def tail(weekday: int | None) -> int:
        """The minutes of ``weekday``'s overnight periods after midnight."""
        if weekday is None:
            return 0
        return sum(
            c.hour * 60 + c.minute for o, c in week.get(weekday, ()) if closes_next_day(o, c)
        )

    total = 0
    for d in _entries(days, first, end + dt.timedelta(days=1)):
        if d < end:
            total += minutes(rule(d)) - minutes(d.weekday())
        before = d - dt.timedelta(days=1)
        found = days.get(d)
        if found is not None and found.kind == HOLIDAY and first <= before:
            # a period of the evening before runs on into the holiday: cut at midnight
            total -= tail(rule(before))
    return float(total)
