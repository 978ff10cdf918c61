"""The candidates of the search's free-time checks: for each ranked id, what its
calendar depends on besides bookings, closures and opening periods (status, lab, zone,
calibration, capacity, the holidays its lab follows) and its booking rules (own, else
its lab's, else the defaults), read as plain columns in ONE statement, no ORM.

``Candidates`` reads them in rank order only as far as a scan asks, at least doubling
each time, and keeps them for the next scan of the same request (the window filter
and the "free this week" facet share them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, func, select

from labshare.booking import workdays
from labshare.booking.availability import CalendarSubject
from labshare.booking.rules import DEFAULT, Rules
from labshare.catalogue import id_lists
from labshare.extensions import db
from labshare.models import BookingRules, Institute, Instrument, Lab, Resource, ResourceKind

_resource = Resource.__table__
_instrument = Instrument.__table__
_its_lab = Lab.__table__.alias("its_lab")
_institute = Institute.__table__
_lab_resource = Resource.__table__.alias("lab_resource")
_own_rules = BookingRules.__table__.alias("own_rules")
_lab_rules = BookingRules.__table__.alias("lab_rules")
_RULES = [f.name for f in fields(Rules)]


@dataclass(frozen=True)
class Candidate:
    #: without ``buffer_minutes``: ``subject_with_buffer`` adds the rules' one
    subject: CalendarSubject
    rules: Rules
    #: its row of ``search_pages.row_select``, when read with it (free_page.py)
    page_row: Any = None
    #: (its calendar_version, its lab's, the holidays' token) read with it: what its
    #: free time depends on besides the catalogue and the clock (window_cache.py)
    stamp: tuple[Any, Any, Any] | None = None


def of_its_lab(name: str) -> Any:
    """The column ``name`` of the resource's lab (itself for a lab): its capacity, whether it
    follows the holidays. A correlated subquery, one index probe a row: as outer joins
    (one for the lab's own row, one for the instrument's lab) PostgreSQL hashed the
    whole lab table twice for 34 candidates (1.5 of the statement's 1.6 ms)."""
    return (
        select(_its_lab.c[name])
        .where(_its_lab.c.id == func.coalesce(_instrument.c.lab_id, _resource.c.id))
        .scalar_subquery()
    )


def lab_version() -> Any:
    """The ``calendar_version`` of the resource's lab (its own for a lab): changed with
    the lab's opening periods and closures, which its instruments' free time shows."""
    return (
        select(_lab_resource.c.calendar_version)
        .where(_lab_resource.c.id == func.coalesce(_instrument.c.lab_id, _resource.c.id))
        .scalar_subquery()
    )


def stamp_columns() -> list[Any]:
    """The columns of ``Candidate.stamp`` (with ``calendar_token``, read anyway)."""
    return [_resource.c.calendar_version.label("own_version"), lab_version().label("lab_version")]


def stamps_of_ids(dialect: str, *extra: Any) -> Select[Any]:
    """Each resource of the parameter ``ids`` with its stamp (id, own_version,
    lab_version, calendar_token; then ``extra``), in id order: what a kept answer
    (window_cache.py) or kept rows (free_memo.py) are checked against."""
    return (
        select(
            _resource.c.id,
            *stamp_columns(),
            workdays.token_column().label("calendar_token"),
            *extra,
        )
        .select_from(_resource.outerjoin(_instrument, _instrument.c.id == _resource.c.id))
        .where(id_lists.among(_resource.c.id, "ids", dialect))
        .order_by(_resource.c.id)
    )


def _select(source: FromClause | None, on: ColumnElement[bool] | None) -> Select[Any]:
    """The candidates' columns, from resources joined to ``source`` by ``on`` (from
    every resource when None)."""
    first: Any = _resource if source is None else source.join(_resource, on)
    return select(
        _resource.c.id,
        _resource.c.kind,
        _resource.c.status,
        _instrument.c.lab_id,
        _instrument.c.calibration_valid_until,
        of_its_lab("capacity").label("capacity"),
        _institute.c.timezone,
        _institute.c.follows_holidays.label("institute_follows"),
        _institute.c.province_code,
        of_its_lab("follows_holidays").label("lab_follows"),
        workdays.token_column().label("calendar_token"),
        *stamp_columns(),
        _own_rules.c.id.label("own_rules_id"),
        _lab_rules.c.id.label("lab_rules_id"),
        *(_own_rules.c[name].label(f"own_{name}") for name in _RULES),
        *(_lab_rules.c[name].label(f"lab_{name}") for name in _RULES),
    ).select_from(
        first.join(_institute, _institute.c.id == _resource.c.institute_id)
        .outerjoin(_instrument, _instrument.c.id == _resource.c.id)
        .outerjoin(_own_rules, _own_rules.c.resource_id == _resource.c.id)
        .outerjoin(_lab_rules, _lab_rules.c.resource_id == _instrument.c.lab_id)
    )


def _rows(source: FromClause, on: ColumnElement[bool], order: Sequence[Any]) -> Any:
    return db.session.execute(_select(source, on).order_by(*order))


#: ``of_ids``' statement: built once, the ids one parameter (id_lists.py).
_by_ids = id_lists.per_dialect(
    lambda dialect: _select(None, None).where(id_lists.among(_resource.c.id, "ids", dialect))
)


def _candidate(row: Any) -> Candidate:
    values = row._mapping
    if row.own_rules_id is not None:
        rules = Rules(**{name: values[f"own_{name}"] for name in _RULES})
    elif row.lab_rules_id is not None:
        rules = Rules(**{name: values[f"lab_{name}"] for name in _RULES})
    else:
        rules = DEFAULT
    return candidate_of(row, rules)


def candidate_of(row: Any, rules: Rules, page_row: Any = None) -> Candidate:
    """The candidate of a row with the calendar columns by name (id, kind, status,
    lab_id, capacity, calibration_valid_until, timezone, institute_follows,
    province_code, lab_follows, calendar_token, own_version, lab_version) and its
    ``rules``."""
    is_lab = row.kind == ResourceKind.LAB
    subject = CalendarSubject(
        id=int(row.id),
        lab_id=int(row.id) if is_lab else int(row.lab_id),
        status=row.status,
        capacity=int(row.capacity) if is_lab else 1,
        calibration_valid_until=row.calibration_valid_until,
        timezone=row.timezone or "Asia/Shanghai",
        buffer_minutes=rules.buffer_minutes,
        days=workdays.days_for(
            row.calendar_token,
            institute_follows=bool(row.institute_follows),
            lab_follows=None if row.lab_follows is None else bool(row.lab_follows),
            region=row.province_code,
        ),
    )
    return Candidate(
        subject, rules, page_row, (row.own_version, row.lab_version, row.calendar_token)
    )


def ranked(source: Any, keys: Sequence[str]) -> list[Candidate]:
    """The candidates of the ids of ``source`` (a subquery with ``id`` and the order
    ``keys``), in that order: one statement."""
    order = [source.c[k] for k in keys]
    return [_candidate(row) for row in _rows(source, source.c.id == _resource.c.id, order)]


def of_ids(ids: Sequence[int]) -> list[Candidate]:
    """The candidates of ``ids``, in that order: one statement."""
    if not ids:
        return []
    rows = db.session.execute(_by_ids(), {"ids": ids})
    by_id = {c.subject.id: c for c in map(_candidate, rows)}
    return [by_id[i] for i in ids if i in by_id]


class Candidates:
    """Ranked candidates, read (``read(offset, limit)``, one statement) only as far as
    asked."""

    def __init__(self, read: Callable[[int, int], list[Candidate]]) -> None:
        self._read = read
        self.rows: list[Candidate] = []
        self.exhausted = False

    @classmethod
    def of(cls, candidates: Sequence[Candidate]) -> Candidates:
        out = cls(lambda _offset, _limit: [])
        out.rows, out.exhausted = list(candidates), True
        return out

    def first(self, n: int) -> list[Candidate]:
        """The first ``n`` (fewer when there are not as many)."""
        if len(self.rows) < n and not self.exhausted:
            # at least doubling: a scan that goes on reads few, growing statements
            asked = max(n - len(self.rows), len(self.rows))
            got = self._read(len(self.rows), asked)
            self.rows += got
            self.exhausted = len(got) < asked
        return self.rows[:n]
