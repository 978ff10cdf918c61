"""Finding labs and instruments: text, filters, capability and free time.

One query for the page (resources with their institute, no lazy loads) plus one
count and one query for the page's booking rules, however many resources match.

Text: each term is ``resource.id IN (a UNION ALL of one SELECT per searched
column)``, so that on PostgreSQL every branch can use its own pg_trgm GIN index
(migrations 0004, 0005) instead of an ILIKE over every resource (see
``_text_clause`` for terms too short for a trigram index). SQLite runs the same
statement with LIKE.

The free-time filter examines at most ``AVAILABILITY_SCAN_LIMIT`` candidates (the
first ones matching the other filters, in id order), with two queries for all of
them (bookings and closures; opening periods), not several per candidate.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    and_,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import contains_eager, noload, with_polymorphic

from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingRules,
    Closure,
    Field,
    Institute,
    Instrument,
    Lab,
    OpeningPeriod,
    Resource,
    ResourceKind,
    ResourceStatus,
)
from labshare.services import capability
from labshare.services.availability import (
    MAX_WINDOW,
    OpeningPeriods,
    availability,
    capacity_of,
    saturated,
)
from labshare.services.rules import (
    DEFAULT,
    MAX_BOOKING_SPAN,
    Rules,
    Span,
    clip,
    institute_zone,
    lab_id_of,
    local_midnight_after,
    merge,
    opening_spans,
    scope_ids,
    subtract,
)
from labshare.timeutil import utcnow, zone

AVAILABILITY_SCAN_LIMIT = 200
MAX_TERMS = 5


@dataclass(frozen=True)
class ResourceFilters:
    q: str | None = None
    kind: ResourceKind | None = None
    field: Field | None = None
    province: str | None = None
    institute: str | None = None
    measurand: str | None = None
    value: float | None = None
    unit: str | None = None
    available_from: dt.datetime | None = None
    available_to: dt.datetime | None = None


@dataclass(frozen=True)
class SearchResult:
    items: list[Resource]
    total: int
    rules: dict[int, Rules]
    #: True when the free-time filter stopped at AVAILABILITY_SCAN_LIMIT candidates.
    truncated: bool = False


_poly = with_polymorphic(Resource, [Lab, Instrument])
#: The instrument table alone: its filters need no join to resource.
_instrument = Instrument.__table__


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, pattern: str, *, cased: bool = True) -> ColumnElement[bool]:
    """Case-insensitive match of a ``_like`` pattern. SQLite's LIKE already ignores
    ASCII case (and Chinese has none), so it is spared ILIKE's per-row lower() calls.
    On PostgreSQL a pattern without cased letters (``cased=False``: Chinese, digits,
    punctuation) uses LIKE too: lower() changes no character such a pattern could
    match, so the rows are the same, and LIKE costs a fifth of ILIKE (42k names
    ``'%压力%'``: 8 ms against 41 ms). gin_trgm_ops serves both operators."""
    if db.engine.dialect.name == "sqlite" or not cased:
        return column.like(pattern, escape="\\")
    return column.ilike(pattern, escape="\\")


def _instrument_ids(*where: ColumnElement[bool]) -> ColumnElement[bool]:
    """Resources that are instruments matching ``where``: a subquery, so that the
    filters and the count never need the lab/instrument outer joins."""
    return Resource.id.in_(select(_instrument.c.id).where(*where))


#: Aliases for the text subqueries: the page query already has ``resource`` (and
#: ``instrument``) in its FROM, which plain tables would correlate to.
_r = Resource.__table__.alias("text_r")
_i = Instrument.__table__.alias("text_i")
_inst = Institute.__table__.alias("text_inst")

#: pg_trgm (ctype C.UTF-8: CJK characters count as letters) extracts trigrams from
#: ``%term%`` only out of runs of at least 3 letters or digits.
_TRIGRAM_RUN = re.compile(r"[^\W_]{3}")


def _indexable(term: str) -> bool:
    """Whether a trigram index can narrow ``ILIKE '%term%'``."""
    return _TRIGRAM_RUN.search(term) is not None


def _term_ids(term: str) -> CompoundSelect:
    """Ids of the resources where ``term`` occurs in the name (either language),
    the instrument's model, manufacturer or measurand, or the institute's name.

    Terms with a run of 3 letters or digits: one branch per column, each a bitmap
    scan of its trigram GIN index on PostgreSQL (0004: resource.name, name_en,
    instrument.model, manufacturer; 0005: instrument.measurand; the institute
    table has a few hundred rows and is scanned).

    Shorter terms (two-character Chinese words such as 压力, "UV", "M-8"): pg_trgm
    extracts no trigram from them, so its GIN index can only return every row for
    a recheck. Measured on 42k resources, ``name ILIKE '%压力%'`` took 26 ms as a
    sequential scan and 62 ms when forced through the index (the planner rightly
    prefers the scan). So these terms get one sequential scan per table (resource,
    instrument; no join) testing all its columns at once, instead of one scan per
    column. Same rows either way, only the plan differs.
    """
    p = _like(term)
    cased = term.lower() != term.upper()

    def has(*columns: Any) -> ColumnElement[bool]:
        return or_(*(_contains(c, p, cased=cased) for c in columns))

    by_institute = select(_r.c.id).where(
        _r.c.institute_id.in_(select(_inst.c.id).where(has(_inst.c.name, _inst.c.name_en)))
    )
    if _indexable(term):
        return union_all(
            select(_r.c.id).where(has(_r.c.name)),
            select(_r.c.id).where(has(_r.c.name_en)),
            select(_i.c.id).where(has(_i.c.model)),
            select(_i.c.id).where(has(_i.c.manufacturer)),
            select(_i.c.id).where(has(_i.c.measurand)),
            by_institute,
        )
    return union_all(
        select(_r.c.id).where(has(_r.c.name, _r.c.name_en)),
        select(_i.c.id).where(has(_i.c.model, _i.c.manufacturer, _i.c.measurand)),
        by_institute,
    )


def _text_clause(q: str) -> list[ColumnElement[bool]]:
    return [Resource.id.in_(_term_ids(term)) for term in q.split()[:MAX_TERMS]]


def _capability_clause(f: ResourceFilters) -> list[ColumnElement[bool]]:
    if f.measurand is None:
        if f.value is not None:
            raise ValidationFailed(_l("Give the measurand of the value."), field="measurand")
        if f.unit is not None:
            raise ValidationFailed(_l("Give the measurand of the unit."), field="measurand")
        return []
    name = capability.get_measurand(f.measurand).name
    match: list[ColumnElement[bool]] = [_instrument.c.measurand == name]
    if f.value is None:
        if f.unit is not None:
            raise ValidationFailed(_l("Give the value to measure."), field="value")
    else:
        if f.unit is None:
            raise ValidationFailed(_l("Give the unit of the value."), field="unit")
        low, high = capability.search_bounds(f.value, f.unit, name)
        # ix_instrument_capability: measurand, range_min_base, range_max_base
        match += [_instrument.c.range_min_base <= high, _instrument.c.range_max_base >= low]
    return [Resource.kind == ResourceKind.INSTRUMENT, _instrument_ids(*match)]


def _window(f: ResourceFilters) -> tuple[dt.datetime, dt.datetime] | None:
    if f.available_from is None and f.available_to is None:
        return None
    if f.available_from is None:
        raise ValidationFailed(_l("Give the start of the window too."), field="available_from")
    if f.available_to is None:
        raise ValidationFailed(_l("Give the end of the window too."), field="available_to")
    if f.available_to <= f.available_from:
        raise ValidationFailed(_l("The window must end after it starts."), field="available_to")
    if f.available_to - f.available_from > MAX_WINDOW:
        raise ValidationFailed(_l("The window may span at most 31 days."), field="available_to")
    return f.available_from, f.available_to


def _where(f: ResourceFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [
        Institute.active.is_(True),
        Resource.status != ResourceStatus.RETIRED,
    ]
    if f.q:
        clauses += _text_clause(f.q)
    if f.kind is not None:
        clauses.append(Resource.kind == f.kind)
    if f.field is not None:
        clauses.append(Resource.field == f.field)
    if f.province:
        clauses.append(
            or_(
                Institute.province_code == f.province,
                Institute.province.startswith(f.province, autoescape=True),
            )
        )
    if f.institute:
        clauses.append(Institute.code == f.institute)
    clauses += _capability_clause(f)
    return clauses


def _count(where: Sequence[ColumnElement[bool]]) -> int:
    stmt = (
        select(func.count(Resource.id))
        .select_from(Resource)
        .join(Institute, Institute.id == Resource.institute_id)
        .where(and_(*where))
    )
    return int(db.session.scalar(stmt) or 0)


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


def _grid_start(value: dt.datetime, slot_minutes: int, tz: str) -> dt.datetime:
    """The first instant at or after ``value`` on the resource's slot grid."""
    local = value.astimezone(zone(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = (local - midnight).total_seconds() / 60
    steps = -(-minutes // slot_minutes)  # ceiling
    return (midnight + dt.timedelta(minutes=steps * slot_minutes)).astimezone(dt.UTC)


def _fits(free: Sequence[Span], rules: Rules, tz: str) -> bool:
    """Whether a booking of the minimum length fits on the grid in one of ``free``."""
    need = dt.timedelta(minutes=rules.min_minutes)
    for s, e in free:
        begin = _grid_start(s, rules.slot_minutes, tz)
        if begin + need <= e:
            return True
    return False


def _bookable(rules: Rules, start: dt.datetime, end: dt.datetime) -> Span | None:
    """[start, end) cut to the lead time and horizon; None when nothing is left."""
    now = utcnow()
    start = max(start, now + dt.timedelta(hours=rules.lead_time_hours))
    end = min(end, now + dt.timedelta(days=rules.horizon_days))
    return (start, end) if start < end else None


def has_free_slot(resource: Resource, rules: Rules, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether a booking of the minimum length fits on the grid somewhere in
    [start, end), within the lead time and horizon."""
    span = _bookable(rules, start, end)
    if span is None:
        return False
    free = [(i.start, i.end) for i in availability(resource, *span).free]
    return _fits(free, rules, institute_zone(resource))


@dataclass
class _Calendars:
    """Bookings, closures and opening periods of many resources over one window."""

    held: dict[int, list[Span]]  # by resource id
    closed: dict[int, list[Span]]  # by resource id (closures of labs too)
    periods: dict[int, OpeningPeriods]  # by lab id


def _calendars(resources: Sequence[Resource], start: dt.datetime, end: dt.datetime) -> _Calendars:
    """Two queries for all of ``resources``: their holding bookings and the closures
    of them and their labs (one UNION ALL, the same conditions as
    ``availability``), and their labs' opening periods."""
    ids = [r.id for r in resources]
    lab_ids = sorted({lab_id_of(r) for r in resources})
    out = _Calendars(held={}, closed={}, periods={})
    if not ids:
        return out
    rows = db.session.execute(
        union_all(
            select(
                literal(0, Integer).label("k"),
                Booking.resource_id,
                Booking.start_at,
                Booking.end_at,
            ).where(
                Booking.resource_id.in_(ids),
                Booking.start_at < end,
                Booking.start_at > start - MAX_BOOKING_SPAN,
                Booking.end_at > start,
                Booking.status.in_(HOLDING_STATUSES),
            ),
            select(
                literal(1, Integer), Closure.resource_id, Closure.start_at, Closure.end_at
            ).where(
                Closure.resource_id.in_(sorted({*ids, *lab_ids})),
                Closure.start_at < end,
                Closure.end_at > start,
            ),
        )
    )
    for k, rid, s, e in rows:
        (out.closed if k else out.held).setdefault(rid, []).append((s, e))
    for lab_id, weekday, opens, closes in db.session.execute(
        select(
            OpeningPeriod.lab_id, OpeningPeriod.weekday, OpeningPeriod.opens, OpeningPeriod.closes
        ).where(OpeningPeriod.lab_id.in_(lab_ids))
    ):
        out.periods.setdefault(lab_id, []).append((int(weekday), opens, closes))
    return out


def _free(resource: Resource, cal: _Calendars, start: dt.datetime, end: dt.datetime) -> list[Span]:
    """``availability(resource, start, end).free`` from prefetched calendars: the
    window minus everything ``availability_of`` paints busy (the reasons' order
    only decides labels, not what is free)."""
    if resource.status != ResourceStatus.AVAILABLE:
        return []
    tz = institute_zone(resource)
    busy: list[Span] = []
    if isinstance(resource, Instrument) and resource.calibration_valid_until is not None:
        cutoff = local_midnight_after(resource.calibration_valid_until, tz)
        if cutoff < end:
            busy.append((max(start, cutoff), end))
    for rid in scope_ids(resource):
        busy += cal.closed.get(rid, [])
    opening = opening_spans(cal.periods.get(lab_id_of(resource), []), tz, start, end)
    busy += subtract([(start, end)], opening)
    busy += saturated(cal.held.get(resource.id, []), capacity_of(resource))
    return subtract([(start, end)], merge(clip(busy, start, end)))


def with_free_slot(
    resources: Sequence[Resource], rules: dict[int, Rules], start: dt.datetime, end: dt.datetime
) -> list[Resource]:
    """``[r for r in resources if has_free_slot(r, rules[r.id], start, end)]`` in
    two queries however many resources there are (``has_free_slot`` runs two per
    resource)."""
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    spans = {r.id: _bookable(rules[r.id], start, end) for r in resources}
    cal = _calendars([r for r in resources if spans[r.id] is not None], start, end)
    out: list[Resource] = []
    for r in resources:
        span = spans[r.id]
        if span is not None and _fits(_free(r, cal, *span), rules[r.id], institute_zone(r)):
            out.append(r)
    return out


def search_resources(f: ResourceFilters, *, page: int, per_page: int) -> SearchResult:
    where = _where(f)
    window = _window(f)
    stmt = (
        select(_poly)
        .join(Institute, _poly.institute)
        .where(and_(*where))
        .options(contains_eager(_poly.institute), noload(_poly.Instrument.lab))
        .order_by(_poly.id)
    )
    if window is not None:
        candidates = list(
            db.session.scalars(
                stmt.where(_poly.status == ResourceStatus.AVAILABLE).limit(
                    AVAILABILITY_SCAN_LIMIT + 1
                )
            ).unique()
        )
        truncated = len(candidates) > AVAILABILITY_SCAN_LIMIT
        candidates = candidates[:AVAILABILITY_SCAN_LIMIT]
        rules = rules_for(candidates)
        matching = with_free_slot(candidates, rules, *window)
        offset = (page - 1) * per_page
        items = matching[offset : offset + per_page]
        return SearchResult(
            items=items,
            total=len(matching),
            rules={r.id: rules[r.id] for r in items},
            truncated=truncated,
        )
    total = _count(where)
    # The page's ids are found over resource and institute alone (like the count),
    # then only those rows go through the polymorphic joins. Filtering the joined
    # rows and stopping at the page made PostgreSQL walk thousands of them in id
    # order (q=Fluke on 42k resources: 44 ms against 19 ms).
    page_ids = (
        select(Resource.id)
        .join(Institute, Institute.id == Resource.institute_id)
        .where(and_(*where))
        .order_by(Resource.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
        .subquery("page_ids")
    )
    items = list(
        db.session.scalars(
            select(_poly)
            .join(page_ids, page_ids.c.id == _poly.id)
            .join(Institute, _poly.institute)
            .options(contains_eager(_poly.institute), noload(_poly.Instrument.lab))
            .order_by(_poly.id)
        ).unique()
    )
    return SearchResult(items=items, total=int(total), rules=rules_for(items))
