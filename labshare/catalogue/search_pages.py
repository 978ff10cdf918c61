"""What the search reads once it knows its matches: the page's resources (with their
institute and booking rules) by id, the facet counts, and, for a page with facets,
the ranked prefix and the counts in one statement (labshare/catalogue/search.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import aliased, contains_eager, noload, with_polymorphic

from labshare.booking.rules import DEFAULT, Rules, own_or_lab
from labshare.catalogue import free_candidates, id_lists, row_memo, search_cache
from labshare.catalogue.free_candidates import Candidate
from labshare.extensions import db
from labshare.models import (
    BookingRules,
    CatalogueVersion,
    Institute,
    Instrument,
    Lab,
    Resource,
    ResourceStatus,
)

poly = with_polymorphic(Resource, [Lab, Instrument])
#: Built once: a fresh alias adapts its columns again on every search (~1 ms).
own_rules = aliased(BookingRules, name="own_rules")
lab_rules = aliased(BookingRules, name="lab_rules")


def load_page(ids: Sequence[int]) -> tuple[list[Resource], dict[int, Rules]]:
    """The resources of ``ids`` in that order with their institute and booking rules
    (own, else the lab's, else the defaults): one statement."""
    if not ids:
        return [], {}
    rows = db.session.execute(
        select(poly, own_rules, lab_rules)
        .join(Institute, poly.institute)
        .outerjoin(own_rules, own_rules.resource_id == poly.id)
        .outerjoin(lab_rules, lab_rules.resource_id == poly.Instrument.lab_id)
        .where(poly.id.in_(ids))
        .options(contains_eager(poly.institute), noload(poly.Instrument.lab))
    ).all()
    by_id = {row[0].id: row for row in rows}
    items: list[Resource] = []
    rules: dict[int, Rules] = {}
    for i in ids:
        row = by_id.get(i)
        if row is None:
            continue
        items.append(row[0])
        rules[i] = own_or_lab(row[1], row[2])
    return items, rules


#: A page read as plain rows, for the API's answer (labshare/api/serialize.py,
#: ``resource_row_json``): building 20 polymorphic instances with their institute and
#: two booking-rules rows in the identity map was most of an uncached search's CPU.
#: The first ``ROW_WIDTH`` columns are the resource's, in ``resource_row_json``'s
#: order; then the id of the rules that apply (own, else the lab's; NULL: the
#: defaults) and their fields in ``Rules``' order.
_resource = Resource.__table__
_instrument = Instrument.__table__
_institute = Institute.__table__
_own_row = BookingRules.__table__.alias("own_rules")
_lab_row = BookingRules.__table__.alias("lab_rules")
_has_own = _own_row.c.id.isnot(None)
ROW_COLUMNS: tuple[Any, ...] = (
    _resource.c.id,
    _resource.c.kind,
    _resource.c.name,
    _resource.c.name_en,
    _institute.c.id,
    _institute.c.code,
    _institute.c.name,
    _instrument.c.lab_id,
    _resource.c.field,
    _institute.c.province,
    _instrument.c.measurand,
    _instrument.c.unit,
    _instrument.c.range_min,
    _instrument.c.range_max,
    _instrument.c.accuracy,
    _instrument.c.calibration_valid_until,
    _resource.c.requires_qualification,
    _resource.c.status,
    _resource.c.fee_per_hour,
    _resource.c.fee_waiver_percent,
    _institute.c.timezone,
)
ROW_WIDTH = len(ROW_COLUMNS)
_RULE_COLUMNS = (
    case((_has_own, _own_row.c.id), else_=_lab_row.c.id),
    *(case((_has_own, _own_row.c[f.name]), else_=_lab_row.c[f.name]) for f in fields(Rules)),
)
#: Where ``row_select``'s ``extra`` columns start.
ROW_COLUMNS_AND_RULES = ROW_WIDTH + len(_RULE_COLUMNS)


def row_select(ids: FromClause | None, *extra: Any) -> Select[Any]:
    """The page's plain rows (``ROW_COLUMNS``, its rules, then ``extra``), from the
    subquery ``ids`` (its ``id`` column) when given, else from every resource."""
    source: Any = _resource if ids is None else ids.join(_resource, ids.c.id == _resource.c.id)
    source = (
        source.join(_institute, _institute.c.id == _resource.c.institute_id)
        .outerjoin(_instrument, _instrument.c.id == _resource.c.id)
        .outerjoin(_own_row, _own_row.c.resource_id == _resource.c.id)
        .outerjoin(_lab_row, _lab_row.c.resource_id == _instrument.c.lab_id)
    )
    return select(*ROW_COLUMNS, *_RULE_COLUMNS, *extra).select_from(source)


def row_rules(row: Sequence[Any]) -> Rules:
    """The booking rules of a row of ``row_select``: as ``own_or_lab``."""
    if row[ROW_WIDTH] is None:
        return DEFAULT
    return Rules(*row[ROW_WIDTH + 1 : ROW_COLUMNS_AND_RULES])


#: ``load_rows``' statement: built once, the ids one parameter (id_lists.py), so a
#: search neither renders it nor computes its cache key again.
_rows_by_ids = id_lists.per_dialect(
    lambda dialect: row_select(None).where(id_lists.among(_resource.c.id, "ids", dialect))
)


def load_rows(ids: Sequence[int]) -> tuple[list[Any], dict[int, Rules]]:
    """``load_page`` as plain rows (``row_select``): one statement, sent on the
    session's connection without the ORM's execution (plain columns only). Inside
    ``search_cache.known_version`` (the request read the version first), rows kept
    at that version are served without it (row_memo.py); rows read are kept only
    when read with that version (with the catalogue's version, in the same
    statement): rows read after a change are at a later state than the version the
    request read, and kept under it they would join rows of that state in a page."""
    if not ids:
        return [], {}
    version = search_cache.known()
    memo = row_memo.active() if version is not None else None
    if memo is None:
        rows = db.session.connection().execute(_rows_by_ids(), {"ids": list(ids)}).all()
        return _in_order(rows, ids)
    kept = memo.page(ids)
    if kept is not None and kept[0] == version:
        return _from_kept(kept[1])
    memo.missed(len(ids))
    rows = db.session.connection().execute(_rows_and_version(), {"ids": list(ids)}).all()
    items, rules = _in_order(rows, ids)
    if rows and rows[0][ROW_COLUMNS_AND_RULES] == version:
        memo.put(version, items, rules)
    return items, rules


def _from_kept(kept: Sequence[row_memo.Kept]) -> tuple[list[Any], dict[int, Rules]]:
    return [k.row for k in kept], {k.row[0]: k.rules for k in kept}


def _in_order(rows: Sequence[Any], ids: Sequence[int]) -> tuple[list[Any], dict[int, Rules]]:
    """The rows of ``ids`` found, in that order, and their booking rules."""
    by_id = {row[0]: row for row in rows}
    items = [by_id[i] for i in ids if i in by_id]
    return items, {row[0]: row_rules(row) for row in items}


#: The rows and, in each, the catalogue's version read in the same statement (one
#: snapshot on both databases): ``load_rows_at``'s, and ``load_rows``' when it keeps.
_rows_and_version = id_lists.per_dialect(
    lambda dialect: row_select(
        None,
        select(CatalogueVersion.version)
        .where(CatalogueVersion.id == 1)
        .scalar_subquery()
        .label("catalogue_version"),
    ).where(id_lists.among(_resource.c.id, "ids", dialect))
)


def load_rows_at(
    ids: Sequence[int], expected: Any
) -> tuple[list[Any], dict[int, Rules], int | None] | None:
    """``load_rows`` (``ids`` not empty) with the catalogue's version the rows were
    read at, in one statement: for an answer computed from a snapshot of the catalogue
    at the version ``expected`` (text_index.py, capability_index.plain_page), which is
    right only if the rows are at it (the caller compares). None when no row was found
    (the version then comes from a statement of its own). Rows kept at ``expected``
    (row_memo.py) are not read: the version alone is (when it is no longer
    ``expected``, the snapshot is out of date too: nothing is read for it)."""
    memo = row_memo.active()
    if memo is not None:
        kept = memo.page(ids)
        if kept is not None and kept[0] == expected:
            return (*_from_kept(kept[1]), search_cache.version())
        memo.missed(len(ids))
    rows = db.session.connection().execute(_rows_and_version(), {"ids": list(ids)}).all()
    if not rows:
        return None
    version = rows[0][ROW_COLUMNS_AND_RULES]
    items, rules = _in_order(rows, ids)
    if memo is not None and version is not None:
        memo.put(version, items, rules)
    return items, rules, version


def load_any(ids: Sequence[int], plain: bool) -> tuple[list[Any], dict[int, Rules]]:
    """``load_rows`` when ``plain``, else ``load_page``."""
    return load_rows(ids) if plain else load_page(ids)


def page_select(ids: FromClause, order: Sequence[Any], plain: bool) -> Select[Any]:
    """The rows of the page subquery ``ids`` (its ``id`` and ``matches`` columns) in
    ``order``: plain rows (``row_select``) when ``plain``, else each resource's
    instance with its institute, the count and the own and lab rules' instances."""
    if plain:
        return row_select(ids, ids.c.matches).order_by(*order)
    return (
        select(poly, ids.c.matches, own_rules, lab_rules)
        .join(ids, ids.c.id == poly.id)
        .join(Institute, poly.institute)
        .outerjoin(own_rules, own_rules.resource_id == poly.id)
        .outerjoin(lab_rules, lab_rules.resource_id == poly.Instrument.lab_id)
        .options(contains_eager(poly.institute), noload(poly.Instrument.lab))
        .order_by(*order)
    )


def page_rows(rows: Sequence[Any], plain: bool) -> tuple[list[Any], int, dict[int, Rules]]:
    """(the page's resources, the count its first row carries, their rules) from the
    rows of ``page_select`` (at least one)."""
    if plain:
        rules = {row[0]: row_rules(row) for row in rows}
        return list(rows), int(rows[0][ROW_COLUMNS_AND_RULES]), rules
    rules = {row[0].id: own_or_lab(row[2], row[3]) for row in rows}
    return [row[0] for row in rows], int(rows[0][1]), rules


def load_ids(ids: Sequence[int]) -> list[Resource]:
    """The resources of ``ids`` with their institute, in that order: one statement."""
    if not ids:
        return []
    rows = db.session.scalars(
        select(poly)
        .join(Institute, poly.institute)
        .where(poly.id.in_(ids))
        .options(contains_eager(poly.institute), noload(poly.Instrument.lab))
    ).unique()
    by_id = {r.id: r for r in rows}
    return [by_id[i] for i in ids if i in by_id]


#: Each facet's (value, label) among ``facet_columns()``.
FACET_COLUMNS = {
    "field": (0, 0),
    "kind": (1, 1),
    "province": (2, 3),
    "institute": (4, 5),
}


def facet_columns() -> tuple[Any, ...]:
    """What the matches are counted by (``FACET_COLUMNS`` indexes them), as text."""
    return (
        cast(Resource.field, String),
        cast(Resource.kind, String),
        cast(Institute.province_code, String),
        cast(Institute.province, String),
        cast(Institute.code, String),
        cast(Institute.name, String),
    )


def facet_lists(rows: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """Rows of the six facet columns and a count, summed per facet."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, (value_at, label_at) in FACET_COLUMNS.items():
        counts: dict[tuple[Any, Any], int] = {}
        for row in rows:
            key = (row[value_at], row[label_at])
            counts[key] = counts.get(key, 0) + int(row[-1])
        values = [{"value": v, "label": label, "count": n} for (v, label), n in counts.items()]
        values.sort(key=lambda v: (-v["count"], v["value"]))
        out[name] = values
    return out


def facets(where: Sequence[ColumnElement[bool]]) -> dict[str, list[dict[str, Any]]]:
    """Counts of the matches by field, kind, province and institute: one statement
    that finds the matches ONCE and counts them by all four at the same time (one
    row per combination that occurs, at most one per match), summed here per facet.
    Four GROUP BYs each re-ran the match (a text search: 80 of its 150 ms)."""
    columns = facet_columns()
    rows = db.session.execute(
        select(*columns, func.count())
        .select_from(Resource)
        .join(Institute, Institute.id == Resource.institute_id)
        .where(and_(*where))
        .group_by(*columns)
    ).all()
    return facet_lists(rows)


def prefix_and_facets(
    ranked: Select[Any], keys: list[Any], asked: int
) -> tuple[list[tuple[int, ResourceStatus]], int, dict[str, list[dict[str, Any]]]]:
    """(the first ``asked`` matches' (id, status) in rank order, the number of
    matches, the facet counts): one statement over the matches found once (a CTE,
    which both databases materialise when it is read twice), a UNION ALL of the
    ranked prefix and one GROUP BY by the four facets' columns."""
    columns = [c.label(f"f{n}") for n, c in enumerate(facet_columns())]
    matches = (
        ranked.add_columns(cast(Resource.status, String).label("status"), *columns)
        .order_by(None)
        .cte("matched")
    )
    order = [matches.c[k.name] for k in keys]
    grouped = [matches.c[f"f{n}"] for n in range(len(columns))]
    no_text = cast(null(), String)
    top = (
        select(
            literal(0, Integer).label("part"),
            matches.c.id.label("rid"),
            func.row_number().over(order_by=order).label("n"),
            matches.c.status.label("status"),
            *(no_text.label(f"f{n}") for n in range(len(columns))),
        )
        .order_by(*order)
        .limit(asked)
        .subquery("top")
    )
    counted = select(
        literal(1, Integer), cast(null(), Integer), func.count(), no_text, *grouped
    ).group_by(*grouped)
    rows = db.session.execute(union_all(select(*top.c), counted)).all()
    prefix = sorted((int(r[2]), int(r[1]), ResourceStatus(r[3])) for r in rows if r[0] == 0)
    groups = [(*r[4:], int(r[2])) for r in rows if r[0] == 1]
    total = sum(g[-1] for g in groups)
    return [(rid, status) for _n, rid, status in prefix], total, facet_lists(groups)


def week_candidates(
    prefix: Sequence[tuple[int, ResourceStatus]],
    ranked: Select[Any],
    keys: list[Any],
    wanted: int,
    asked: int,
    of_ids: Callable[[Sequence[int]], list[Candidate]] = free_candidates.of_ids,
) -> free_candidates.Candidates:
    """The "free this week" candidates: the available matches of the ranked prefix
    (``asked`` long), read by id; only when it holds fewer than ``wanted`` and there
    are more matches are they ranked again, as far as the scan needs."""
    available = [rid for rid, status in prefix if status == ResourceStatus.AVAILABLE]
    if len(available) >= wanted or len(prefix) < asked:  # else: more matches, unread
        return free_candidates.Candidates.of(of_ids(available[:wanted]))
    free = ranked.where(Resource.status == ResourceStatus.AVAILABLE)
    return free_candidates.Candidates(
        lambda start, limit: free_candidates.ranked(
            free.offset(start).limit(limit).subquery("candidates"), [k.name for k in keys]
        )
    )
