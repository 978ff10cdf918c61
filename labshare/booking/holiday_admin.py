"""Keeping the calendar of public holidays and make-up workdays, and who follows it.

A year of the national calendar comes from ``labshare/data/holidays_cn.json`` when
the file lists that year (a new State Council notice, a year the library lacks; the
file wins, as it is what an admin edited), else from the ``chinese-calendar``
package. Admins add or replace single days (a province's extra day, a correction);
loading a year again never overwrites a day an admin entered. Institutes (their
administrator, or a platform admin) and labs (the institute's staff) opt out.

Every change of ``calendar_day`` writes a new ``calendar_state.token`` in the same
transaction (``_touch``): each process's copy of the calendar is keyed by it
(``workdays``). Rows are never updated, only deleted and inserted.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import extract, select

from labshare.booking import displaced, holiday_bookings, workdays
from labshare.booking.displaced import OnBookings
from labshare.booking.permissions import is_staff_of
from labshare.booking.workdays import HOLIDAY, KINDS, NATIONAL, STATE_ID, WORKDAY
from labshare.database import begin_write, is_sqlite
from labshare.errors import NotAllowed, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    CalendarDay,
    CalendarState,
    Institute,
    Lab,
    Role,
    User,
)
from labshare.ops import audit
from labshare.timeutil import utcnow, zone

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "holidays_cn.json"
FIRST_YEAR, LAST_YEAR = 2000, 2100
DEFAULT_ZONE = "Asia/Shanghai"
_REGION = re.compile(r"[0-9]{6}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class DaySpec:
    day: dt.date
    kind: str
    name: str
    name_en: str | None = None
    works_as: int | None = None


@dataclass(frozen=True)
class Loaded:
    year: int
    source: str  # 'file' or 'library'
    holidays: int
    workdays: int
    changed: bool
    #: Bookings not yet over that touched a new holiday (made before it was known): now
    #: cancelled, or pending (``on_bookings``).
    bookings_inside: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Added:
    row: CalendarDay
    #: As ``Loaded.bookings_inside``, for a holiday.
    bookings_inside: list[int] = field(default_factory=list)


# -- sources ----------------------------------------------------------------------------


def library_days(year: int) -> list[DaySpec] | None:
    """The year's days from ``chinese-calendar``; None when it does not cover the year."""
    import chinese_calendar

    covered = {d.year for d in chinese_calendar.holidays}
    if year not in covered:
        return None
    names = {h.value: h for h in chinese_calendar.Holiday}
    out: list[DaySpec] = []
    sources = ((chinese_calendar.holidays, HOLIDAY), (chinese_calendar.workdays, WORKDAY))
    for source, kind in sources:
        for day, english in sorted(source.items()):
            if day.year != year:
                continue
            holiday = names.get(english)
            chinese = holiday.chinese if holiday is not None else english
            out.append(DaySpec(day, kind, chinese, english))
    return out


def _data_file() -> Path:
    configured = current_app.config.get("HOLIDAYS_FILE")
    return Path(configured) if configured else DATA_FILE


def file_days(year: int, path: Path | None = None) -> list[DaySpec] | None:
    """The year's days from the data file; None when the file does not list the year.
    The file: ``{"years": {"2027": [{"date": "2027-01-01", "kind": "holiday",
    "name": "元旦", "name_en": "New Year's Day"}, {"date": ..., "kind": "workday",
    "name": ..., "works_as": 0}]}}``."""
    path = path or _data_file()
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data.get("years", {}).get(str(year))
    except (ValueError, AttributeError) as exc:
        raise ValidationFailed(
            _l("The holiday file %(path)s cannot be read: %(error)s", path=path.name, error=exc),
            field="file",
        ) from exc
    if entries is None:
        return None
    out: list[DaySpec] = []
    for n, entry in enumerate(entries, start=1):
        try:
            spec = check_day(
                entry.get("date"),
                entry.get("kind"),
                entry.get("name"),
                entry.get("name_en"),
                entry.get("works_as"),
            )
        except (ValidationFailed, AttributeError) as exc:
            raise ValidationFailed(
                _l(
                    "Entry %(n)d of year %(year)d in %(path)s: %(error)s",
                    n=n,
                    year=year,
                    path=path.name,
                    error=getattr(exc, "message", exc),
                ),
                field="file",
            ) from exc
        if spec.day.year != year:
            raise ValidationFailed(
                _l("Entry %(n)d of year %(year)d is another year's day.", n=n, year=year),
                field="file",
            )
        out.append(spec)
    return out


# -- checks -----------------------------------------------------------------------------


def check_year(year: Any) -> int:
    if isinstance(year, bool) or not isinstance(year, int) or not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValidationFailed(
            _l("The year must be between %(a)d and %(b)d.", a=FIRST_YEAR, b=LAST_YEAR),
            field="year",
        )
    return year


def check_day(day: Any, kind: Any, name: Any, name_en: Any = None, works_as: Any = None) -> DaySpec:
    """One day as given by an admin or the file, checked field by field."""
    if isinstance(day, str):
        # fromisoformat also takes 20301001 and week dates; the form says YYYY-MM-DD
        try:
            day = dt.date.fromisoformat(day) if _DATE.fullmatch(day) else None
        except ValueError:
            day = None
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise ValidationFailed(_l("The date must be a day, YYYY-MM-DD."), field="date")
    check_year(day.year)
    if kind not in KINDS:
        raise ValidationFailed(_l("The kind must be holiday or workday."), field="kind")
    # PostgreSQL refuses a NUL in text
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100 or "\x00" in name:
        raise ValidationFailed(_l("The name is required, at most 100 characters."), field="name")
    if name_en is not None and (
        not isinstance(name_en, str) or len(name_en.strip()) > 100 or "\x00" in name_en
    ):
        raise ValidationFailed(_l("The English name is at most 100 characters."), field="name_en")
    if works_as is not None:
        if kind != WORKDAY:
            raise ValidationFailed(
                _l("Only a make-up workday has the hours of a weekday."), field="works_as"
            )
        if isinstance(works_as, bool) or not isinstance(works_as, int) or not 0 <= works_as <= 6:
            raise ValidationFailed(
                _l("The weekday must be 0 (Monday) to 6 (Sunday)."), field="works_as"
            )
    if kind == WORKDAY and day.weekday() < 5:
        raise ValidationFailed(_l("A make-up workday is a Saturday or a Sunday."), field="date")
    return DaySpec(day, kind, name.strip(), (name_en or "").strip() or None, works_as)


def check_region(region: Any) -> str:
    if region is None or region == NATIONAL:
        return NATIONAL
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ValidationFailed(
            _l("The region is a 6-digit province code, or empty for the national calendar."),
            field="region",
        )
    return region


def _require_admin(actor: User) -> None:
    if actor.role != Role.ADMIN:
        raise NotAllowed(_l("Only an administrator may change the holiday calendar."))


def _touch() -> str:
    """A new token: every process reads the calendar again at its next use. The
    row exists from the start (migration 0024), so a booking being written always
    has it to share-lock; the upsert keeps a database without it working."""
    workdays.token_changed(db.session())
    # One statement that inserts or updates: two first changes at once must not both
    # insert the row (the second would fail on its primary key).
    if is_sqlite():
        from sqlalchemy.dialects.sqlite import insert as upsert
    else:
        from sqlalchemy.dialects.postgresql import insert as upsert  # type: ignore[assignment]
    token = secrets.token_hex(16)
    stmt = upsert(CalendarState).values(id=STATE_ID, token=token)
    db.session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"token": token}))
    return token


def _choice(on_bookings: Any, message: Any) -> tuple[OnBookings, str | None]:
    """What happens to the bookings on a new holiday: ask_move unless cancel is asked
    (never nothing: a holiday leaves no booking approved on it)."""
    return displaced.parse_choice(on_bookings) or OnBookings.ASK_MOVE, displaced.parse_message(
        message
    )


# -- changes ----------------------------------------------------------------------------


def load_year(
    year: int, actor: User | None, *, on_bookings: Any = None, message: Any = None
) -> Loaded:
    """Replace the year's national days from the file or the library (``actor`` None:
    the command line). Days an admin entered stay. Writes nothing when nothing
    changed. Bookings a new holiday covers are dealt with as ``on_bookings`` says
    (``holiday_bookings``), their bookers and staff told once."""
    year = check_year(year)
    if actor is not None:
        _require_admin(actor)
    action, text = _choice(on_bookings, message)
    begin_write()
    specs = file_days(year)
    source = "file"
    if specs is None:
        specs = library_days(year)
        source = "library"
    if specs is None:
        raise ValidationFailed(
            _l(
                "No calendar for %(year)d: neither the chinese-calendar package nor "
                "labshare/data/holidays_cn.json lists it; add the State Council's notice "
                "to the file.",
                year=year,
            ),
            field="year",
        )
    rows = list(
        db.session.scalars(
            select(CalendarDay).where(
                CalendarDay.region == NATIONAL, extract("year", CalendarDay.day) == year
            )
        )
    )
    by_admin = {r.day for r in rows if r.source == "admin"}
    wanted = {
        (s.day, s.kind, s.name, s.name_en, s.works_as, source)
        for s in specs
        if s.day not in by_admin
    }
    have = {
        (r.day, r.kind, r.name, r.name_en, r.works_as, r.source)
        for r in rows
        if r.source != "admin"
    }
    changed = wanted != have
    holidays = sorted({w[0] for w in wanted if w[1] == HOLIDAY})
    inside: list[int] = []
    if changed:
        locked = holiday_bookings.lock_candidates(holidays, NATIONAL)  # resources first
        for row in rows:
            if row.source != "admin":
                db.session.delete(row)
        db.session.flush()
        for day, kind, name, name_en, works_as, src in sorted(wanted):
            db.session.add(
                CalendarDay(
                    region=NATIONAL,
                    day=day,
                    kind=kind,
                    name=name,
                    name_en=name_en,
                    works_as=works_as,
                    source=src,
                )
            )
        token = _touch()
        audit.record(
            "calendar.load",
            "calendar_day",
            actor=actor,
            data={"year": year, "source": source, "days": len(wanted)},
        )
        inside = holiday_bookings.settle_days(
            actor, holidays, NATIONAL, locked=locked, token=token, action=action, text=text
        )
    return Loaded(
        year,
        source,
        len(holidays),
        sum(1 for w in wanted if w[1] == WORKDAY),
        changed,
        inside,
    )


def put_day(actor: User | None, **fields: Any) -> CalendarDay:
    """``add_day``'s row."""
    return add_day(actor, **fields).row


def add_day(
    actor: User | None,
    *,
    day: Any,
    kind: Any,
    name: Any,
    name_en: Any = None,
    works_as: Any = None,
    region: Any = None,
    on_bookings: Any = None,
    message: Any = None,
) -> Added:
    """Add a day, or replace the one of the same region and date (admins). Bookings a
    new holiday covers (of that region's institutes) are cancelled or put back to
    pending as ``on_bookings`` says (default ``ask_move``), with ``message`` to their
    companies; each booker and the institutes' staff are told once."""
    if actor is not None:
        _require_admin(actor)
    spec = check_day(day, kind, name, name_en, works_as)
    region = check_region(region)
    action, text = _choice(on_bookings, message)
    begin_write()
    holiday = [spec.day] if spec.kind == HOLIDAY else []
    locked = holiday_bookings.lock_candidates(holiday, region)  # resources first
    old = db.session.scalars(
        select(CalendarDay).where(CalendarDay.region == region, CalendarDay.day == spec.day)
    ).first()
    if old is not None:
        db.session.delete(old)
        db.session.flush()
    row = CalendarDay(
        region=region,
        day=spec.day,
        kind=spec.kind,
        name=spec.name,
        name_en=spec.name_en,
        works_as=spec.works_as,
        source="admin",
    )
    db.session.add(row)
    db.session.flush()
    token = _touch()
    inside = holiday_bookings.settle_days(
        actor, holiday, region, locked=locked, token=token, action=action, text=text
    )
    audit.record(
        "calendar.put",
        row,
        actor=actor,
        data={"day": spec.day.isoformat(), "kind": spec.kind, "region": region},
    )
    return Added(row, inside)


def remove_day(actor: User | None, day_id: int) -> None:
    if actor is not None:
        _require_admin(actor)
    begin_write()
    row = db.session.get(CalendarDay, day_id)
    if row is None:
        raise NotFound(_l("No calendar day %(id)s.", id=day_id))
    audit.record(
        "calendar.remove",
        row,
        actor=actor,
        data={"day": row.day.isoformat(), "kind": row.kind, "region": row.region},
    )
    db.session.delete(row)
    _touch()


def local_today() -> dt.date:
    """Today in the platform's zone (the institutes are in China)."""
    return utcnow().astimezone(zone(DEFAULT_ZONE)).date()


def holidays_per_year(years: Sequence[int]) -> dict[int, int]:
    """How many national holidays each of ``years`` has (one statement)."""
    first, last = min(years), max(years)
    rows = db.session.scalars(
        select(CalendarDay.day).where(
            CalendarDay.region == NATIONAL,
            CalendarDay.kind == HOLIDAY,
            CalendarDay.day >= dt.date(first, 1, 1),
            CalendarDay.day <= dt.date(last, 12, 31),
        )
    )
    out = dict.fromkeys(years, 0)
    for day in rows:
        if day.year in out:
            out[day.year] += 1
    return out


def uncovered_years(today: dt.date | None = None) -> list[int]:
    """This year and the next, when they have no national holiday: a lab that follows
    the calendar takes bookings through that year's holidays (nothing tells the engine
    they exist). Bookings are not refused for it; admins are told (``flask holidays
    check``, ``GET /api/v1/holidays/coverage``) to load the year or add it to the file."""
    year = (today or local_today()).year
    counts = holidays_per_year([year, year + 1])
    return [y for y, n in sorted(counts.items()) if n == 0]


def gaps_for(*years: int) -> list[int]:
    """:func:`uncovered_years` and any of ``years`` (e.g. the month a page shows) that
    has no national holiday, for a page to tell the reader in words."""
    missing = set(uncovered_years())
    counts = holidays_per_year(sorted(set(years))) if years else {}
    missing.update(y for y, n in counts.items() if n == 0)
    return sorted(missing)


def list_days(year: int, region: str | None = None) -> list[CalendarDay]:
    """The year's national days and, with ``region``, that province's."""
    year = check_year(year)
    regions = [NATIONAL] if not region else [NATIONAL, check_region(region)]
    return list(
        db.session.scalars(
            select(CalendarDay)
            .where(CalendarDay.region.in_(regions), extract("year", CalendarDay.day) == year)
            .order_by(CalendarDay.day, CalendarDay.region)
        )
    )


def set_institute_follows(actor: User | None, institute: Institute, follows: Any) -> None:
    """Admins, or the institute's administrator."""
    if actor is not None and not (
        actor.role == Role.ADMIN or (actor.institute_admin and is_staff_of(actor, institute.id))
    ):
        raise NotAllowed(
            _l("Only the institute's administrator may change whether it follows holidays.")
        )
    if not isinstance(follows, bool):
        raise ValidationFailed(_l("follows must be true or false."), field="follows")
    begin_write()
    if institute.follows_holidays != follows:
        institute.follows_holidays = follows
        audit.record("institute.holidays", institute, actor=actor, to_state=str(follows).lower())


def set_lab_follows(actor: User | None, lab: Lab, follows: Any) -> None:
    """The lab's institute's staff (who keep its opening hours), or admins."""
    if actor is not None and not (actor.role == Role.ADMIN or is_staff_of(actor, lab.institute_id)):
        raise NotFound(_l("No resource %(id)s.", id=lab.id))
    if not isinstance(follows, bool):
        raise ValidationFailed(_l("follows must be true or false."), field="follows")
    begin_write()
    if lab.follows_holidays != follows:
        lab.follows_holidays = follows
        audit.record("resource.holidays", lab, actor=actor, to_state=str(follows).lower())
