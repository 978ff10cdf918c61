"""Finding labs and instruments: text, filters, capability and free time.

One statement ranks the matches, cuts the page and counts them (``_page``), one
loads the page's resources with their institute (no lazy loads) and one their
booking rules, however many resources match.

Text: the resources whose search tokens match, looked up in the index of
labshare/catalogue/search_index.py (GIN on PostgreSQL, FTS5 on SQLite) and joined
with their rank tier (``_ranked``, ``_order``); the count the API shows stops at
``COUNT_LIMIT``, and the facet counts are one more statement when asked for.

The free-time filter and the "free this week" facet (labshare/catalogue/free_time.py)
check the candidates in rank order, as far as needed: the window filter stops at one
more than the page (``total_exact`` false then), examining at most
``AVAILABILITY_SCAN_LIMIT``; the week is counted over the first ``FREE_WEEK_LIMIT``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import aliased, contains_eager, noload, with_polymorphic

from labshare.booking.availability import MAX_WINDOW
from labshare.booking.rules import DEFAULT, Rules, scope_ids
from labshare.catalogue import capability, free_candidates, free_time, search_index
from labshare.catalogue.free_time import AVAILABILITY_SCAN_LIMIT
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import (
    BookingRules,
    Field,
    Institute,
    Instrument,
    Lab,
    Resource,
    ResourceKind,
    ResourceStatus,
    SearchDoc,
)
from labshare.timeutil import utcnow

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
    #: Minutes the free slot must last (the window filter and the week facet);
    #: None: the resource's minimum booking.
    duration: int | None = None
    #: The searcher's province (GB/T 2260 code or name): breaks ties in its favour.
    near_province: str | None = None


#: Beyond this many matches the count stops and says "more than".
COUNT_LIMIT = 1000
#: The facets of a search: name → (column, label column).
FACETS = ("field", "kind", "province", "institute")
#: The "free this week" count is exact over this many best-ranked available matches (a
#: page of the catalogue), and says "at least" beyond: every match counted is a week of
#: its calendar painted, and the catalogue page asks on every visit.
FREE_WEEK_LIMIT = 20


@dataclass(frozen=True)
class SearchResult:
    items: list[Resource]
    total: int
    rules: dict[int, Rules]
    #: True when the free-time filter examined AVAILABILITY_SCAN_LIMIT candidates and
    #: there were more.
    truncated: bool = False
    #: False when the count stopped at COUNT_LIMIT, or the free-time filter after the
    #: page and one more: ``total`` is then a lower bound.
    total_exact: bool = True
    #: field/kind/province/institute → [{"value", "label", "count"}] (when asked).
    facets: dict[str, list[dict[str, Any]]] | None = None


_poly = with_polymorphic(Resource, [Lab, Instrument])
#: The instrument table alone: its filters need no join to resource.
_instrument = Instrument.__table__


def _instrument_ids(*where: ColumnElement[bool]) -> ColumnElement[bool]:
    """Resources that are instruments matching ``where``: a subquery, so that the
    filters and the count never need the lab/instrument outer joins."""
    return Resource.id.in_(select(_instrument.c.id).where(*where))


def _text_clause(query: search_index.Query) -> list[ColumnElement[bool]]:
    if not query:
        # Punctuation alone (``%``, ``"``, ``*``) has no word to look for: nothing matches.
        return [false()]
    return [Resource.id.in_(search_index.match_ids(query, db.engine.dialect.name))]


def _capability_match(f: ResourceFilters) -> list[ColumnElement[bool]] | None:
    """The conditions on the instrument table of a capability search (None without
    a measurand), after checking that measurand, value and unit come together."""
    if f.measurand is None:
        if f.value is not None:
            raise ValidationFailed(_l("Give the measurand of the value."), field="measurand")
        if f.unit is not None:
            raise ValidationFailed(_l("Give the measurand of the unit."), field="measurand")
        return None
    name = capability.get_measurand(search_index.resolve_measurand(f.measurand)).name
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
    return match


def _capability_clause(f: ResourceFilters) -> list[ColumnElement[bool]]:
    match = _capability_match(f)
    if match is None:
        return []
    return [Resource.kind == ResourceKind.INSTRUMENT, _instrument_ids(*match)]


def _window(f: ResourceFilters, facets: bool) -> tuple[dt.datetime, dt.datetime] | None:
    if f.duration is not None and f.duration < 1:
        raise ValidationFailed(_l("The free time must last at least a minute."), field="duration")
    if f.available_from is None and f.available_to is None:
        if f.duration is not None and not facets:
            raise ValidationFailed(
                _l("Give the window (available_from, available_to) of the free time."),
                field="duration",
            )
        return None
    if f.available_from is None:
        raise ValidationFailed(_l("Give the start of the window too."), field="available_from")
    if f.available_to is None:
        raise ValidationFailed(_l("Give the end of the window too."), field="available_to")
    if f.available_to <= f.available_from:
        raise ValidationFailed(_l("The window must end after it starts."), field="available_to")
    if f.available_to - f.available_from > MAX_WINDOW:
        raise ValidationFailed(_l("The window may span at most 31 days."), field="available_to")
    if f.duration is not None and dt.timedelta(minutes=f.duration) > (
        f.available_to - f.available_from
    ):
        raise ValidationFailed(
            _l("The free time asked for is longer than the window."), field="duration"
        )
    return f.available_from, f.available_to


def _where(f: ResourceFilters, *, joined: bool = False) -> list[ColumnElement[bool]]:
    """The filters; ``joined``: without the token lookup of a query that has words
    and the capability's instrument conditions (the ranked statement joins them
    instead: ``_ranked``)."""
    clauses: list[ColumnElement[bool]] = [
        Institute.active.is_(True),
        Resource.status != ResourceStatus.RETIRED,
    ]
    if f.q:
        query = search_index.parse(f.q)
        if not joined or not query:
            clauses += _text_clause(query)
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
    if not joined:
        clauses += _capability_clause(f)
    return clauses


def _count(where: Sequence[ColumnElement[bool]]) -> int:
    """The matches, counted up to COUNT_LIMIT + 1 (a count of 30,000 one-character
    matches costs more than the page)."""
    matching = (
        select(Resource.id)
        .join(Institute, Institute.id == Resource.institute_id)
        .where(and_(*where))
        .limit(COUNT_LIMIT + 1)
        .subquery("counted")
    )
    return int(db.session.scalar(select(func.count()).select_from(matching)) or 0)


def _facets(where: Sequence[ColumnElement[bool]]) -> dict[str, list[dict[str, Any]]]:
    """Counts of the matches by field, kind, province and institute: one statement
    (a UNION ALL of four GROUP BYs over the same filters)."""

    def grouped(facet: str, value: Any, label: Any) -> Any:
        return (
            select(
                literal(facet).label("facet"),
                cast(value, String).label("value"),
                cast(label, String).label("label"),
                func.count().label("n"),
            )
            .select_from(Resource)
            .join(Institute, Institute.id == Resource.institute_id)
            .where(and_(*where))
            .group_by(value, label)
        )

    rows = db.session.execute(
        union_all(
            grouped("field", Resource.field, Resource.field),
            grouped("kind", Resource.kind, Resource.kind),
            grouped("province", Institute.province_code, Institute.province),
            grouped("institute", Institute.code, Institute.name),
        )
    )
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in FACETS}
    for facet, value, label, n in rows:
        out[facet].append({"value": value, "label": label, "count": int(n)})
    for values in out.values():
        values.sort(key=lambda v: (-v["count"], v["value"]))
    return out


def _order(f: ResourceFilters, matches: Any) -> list[Any]:
    """The ORDER BY of the page (over the joins of ``_ranked``): for a text search, the
    exact name, then name or model tokens, then measurand tokens, then the rest
    (``matches.c.tier``, search_index.match_tiers); for a capability search, the
    narrowest range that covers the value first (the finest resolution); then the
    searcher's province; then the id."""
    order: list[Any] = []
    if matches is not None:
        wanted = f.q.strip().lower() if f.q else ""
        exact = or_(func.lower(Resource.name) == wanted, func.lower(Resource.name_en) == wanted)
        order.append(case((exact, 0), else_=matches.c.tier))
    if f.measurand is not None and f.value is not None:
        order.append(_instrument.c.range_max_base - _instrument.c.range_min_base)
    if f.near_province:
        near = or_(
            Institute.province_code == f.near_province, Institute.province == f.near_province
        )
        order.append(case((near, 0), else_=1))
    order.append(Resource.id)
    return order


def _ranked(f: ResourceFilters) -> tuple[Select[Any], list[Any]]:
    """The ids of the matches with their sort keys (``k0``, ``k1``…), ordered.

    Found and ranked over resource and institute alone (and the matching tokens'
    rows), then only the page's rows are loaded. Filtering the joined polymorphic
    rows and stopping at the page made PostgreSQL walk thousands of them in id
    order (q=Fluke on 42k resources: 44 ms against 19 ms)."""
    query = search_index.parse(f.q) if f.q else None
    matches = (
        search_index.match_tiers(query, db.engine.dialect.name).subquery("matches")
        if query
        else None
    )
    keys = [expr.label(f"k{n}") for n, expr in enumerate(_order(f, matches))]
    ranked = select(Resource.id, *keys).join(Institute, Institute.id == Resource.institute_id)
    if matches is not None:
        ranked = ranked.join(matches, matches.c.resource_id == Resource.id)
    where = _where(f, joined=True)
    capable = _capability_match(f)
    if capable is not None:
        # The instrument row that passes the capability test also gives the range
        # width to rank by: joined once, not looked up again for the ORDER BY.
        ranked = ranked.join(_instrument, _instrument.c.id == Resource.id)
        where += capable
    return ranked.where(and_(*where)).order_by(*(k.name for k in keys)), keys


def _page(
    ranked: Select[Any],
    keys: list[Any],
    where: Sequence[ColumnElement[bool]],
    page: int,
    per_page: int,
) -> tuple[list[Resource], int, dict[int, Rules]]:
    """The page's resources in rank order, the number of matches and the page's
    booking rules (as ``rules_for``): one statement.

    Its inner part ranks the matches, cuts the page and counts them (``count(*)
    OVER ()``: the ranking reads every match anyway, so the count costs nothing
    more); its outer part loads only the page's rows with their institute and the
    own and lab booking rules. On a loaded machine every round trip waits for the
    database to be scheduled, so the count, the page and the rules are not
    statements of their own. A page past the end has no row to carry the count:
    it is counted apart (up to COUNT_LIMIT + 1)."""
    ids = (
        ranked.add_columns(func.count().over().label("matches"))
        .offset((page - 1) * per_page)
        .limit(per_page)
        .subquery("page_ids")
    )
    own, of_lab = aliased(BookingRules), aliased(BookingRules)
    rows = db.session.execute(
        select(_poly, ids.c.matches, own, of_lab)
        .join(ids, ids.c.id == _poly.id)
        .join(Institute, _poly.institute)
        .outerjoin(own, own.resource_id == _poly.id)
        .outerjoin(of_lab, of_lab.resource_id == _poly.Instrument.lab_id)
        .options(contains_eager(_poly.institute), noload(_poly.Instrument.lab))
        .order_by(*(ids.c[k.name] for k in keys))
    ).all()
    if not rows:
        return [], _count(where) if page > 1 else 0, {}
    rules = {
        row[0].id: Rules.from_row(row[2])
        if row[2] is not None
        else Rules.from_row(row[3])
        if row[3] is not None
        else DEFAULT
        for row in rows
    }
    return [row[0] for row in rows], int(rows[0][1]), rules


def _near(f: ResourceFilters) -> ColumnElement[Any] | None:
    return _near_of(f.near_province) if f.near_province else None


def _near_of(province: Any) -> ColumnElement[Any]:
    """0 for a resource in the searcher's province (code or name), else 1."""
    return case(
        (or_(Institute.province_code == province, Institute.province == province), 0), else_=1
    )


def _tiered(f: ResourceFilters, query: search_index.Query, wanted: int) -> tuple[list[int], bool]:
    """The first ``wanted`` matches of a text search in rank order (as ``_order``
    ranks them), and whether they are all the matches.

    The order is the tier (exact name 0, name or model 1, measurand 2, the rest 3),
    the searcher's province, the id. Each tier is one probe in that order that stops
    at what the page still needs, and the next tier is asked only when the page is
    not full; so a one-character query (计: 42,000 matches, 9,000 of them by name)
    reads about 20 name matches instead of ranking every match. Ranked in full,
    the same rows come first: the probes are the tiers' conditions themselves (the
    indexed name tokens are the tokens ``_has`` tests; an exact name's tokens are
    its name tokens, so the exact tier is part of the name tier), and a later
    tier is asked only after the earlier ones were read to their end, so it
    leaves their rows out by id (tests/catalogue/test_search_tiers.py)."""
    dialect = db.engine.dialect.name
    where = _where(f, joined=True)
    near = _near(f)
    order = ([near] if near is not None else []) + [Resource.id]

    def probe(
        source: search_index.Source, *cond: ColumnElement[bool] | None, limit: int | None
    ) -> list[int]:
        stmt = (
            select(Resource.id)
            .join(source.table, source.resource_id == Resource.id)
            .join(Institute, Institute.id == Resource.institute_id)
        )
        if not source.doc and any(c is measurand for c in cond):
            doc = SearchDoc.__table__
            stmt = stmt.join(doc, doc.c.resource_id == Resource.id)
        stmt = stmt.where(source.match, *where, *(c for c in cond if c is not None))
        stmt = stmt.order_by(*order)
        return list(db.session.scalars(stmt.limit(limit) if limit is not None else stmt))

    measurand = search_index.measurand_tier(query)
    names = search_index.tier_source(query, dialect, names=True)
    exact, _not_exact = _exact(f)
    # Few rows have the very name: all of them, found through the lower-cased names'
    # indexes (a LIMIT made PostgreSQL walk every resource in id order for them).
    found = probe(names, exact, limit=None)[:wanted]
    seen = set(found)
    found += [i for i in probe(names, limit=wanted + len(found)) if i not in seen][
        : wanted - len(found)
    ]
    if len(found) >= wanted:
        return found, False
    # The name tier was read to its end: the measurand tier, then the rest.
    every = search_index.tier_source(query, dialect, names=False)
    for tier in (measurand, None):
        before = Resource.id.notin_(found) if found else None
        more = probe(every, before, tier, limit=wanted - len(found))
        found += more
        if len(found) >= wanted:
            return found, False
    return found, True


def _exact(f: ResourceFilters) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The exact-name condition of ``_order`` and its negation (a missing English
    name is not the query: NOT of NULL would drop the row)."""
    wanted = f.q.strip().lower() if f.q else ""
    name, name_en = func.lower(Resource.name), func.lower(Resource.name_en)
    return (
        or_(name == wanted, name_en == wanted),
        and_(name != wanted, or_(Resource.name_en.is_(None), name_en != wanted)),
    )


def _name_page(
    f: ResourceFilters, query: search_index.Query, page: int, per_page: int
) -> SearchResult | None:
    """The page of a text search whose exact and name tiers fill it, with its
    rows, booking rules and count, in one statement (a round trip is a wait for the
    database on a loaded machine); None when they do not fill it (``_tiered``)."""
    dialect = db.engine.dialect.name
    plain = f.kind is None and f.field is None and not f.province and not f.institute
    # A search by words alone (and the searcher's province) sends one of two
    # statements built once: building and keying it cost more than running it.
    stmt = (
        _name_page_stmt(dialect, bool(f.near_province)) if plain else _build_name_page(dialect, f)
    )
    params: dict[str, Any] = {
        "exact_name": f.q.strip().lower() if f.q else "",
        "near": f.near_province or "",
        "wanted": page * per_page,
        "first_limit": page * per_page * 2 + 10,
        "page_offset": (page - 1) * per_page,
        "page_limit": per_page,
    }
    if dialect == "postgresql":
        params["search_tsquery"] = search_index.tsquery_text(query)
    else:
        params["search_fts"] = search_index.fts_text(query)
    rows = db.session.execute(stmt, params).all()
    if len(rows) < per_page:
        return None
    total = int(rows[0][1])
    return SearchResult(
        items=[row[0] for row in rows],
        total=min(total, COUNT_LIMIT),
        rules={
            row[0].id: Rules.from_row(row[2])
            if row[2] is not None
            else Rules.from_row(row[3])
            if row[3] is not None
            else DEFAULT
            for row in rows
        },
        total_exact=total <= COUNT_LIMIT,
    )


@cache
def _name_page_stmt(dialect: str, near: bool) -> Any:
    return _build_name_page(dialect, ResourceFilters(q="x", near_province="x" if near else None))


def _build_name_page(dialect: str, f: ResourceFilters) -> Any:
    """The statement of ``_name_page`` for the filters of ``f`` (its words, and the
    searcher's province, as the parameters ``search_tsquery`` or ``search_fts``,
    ``exact_name``, ``near``; the page as ``wanted``, ``first_limit``,
    ``page_offset``, ``page_limit``).

    The exact names (few: no LIMIT, which made PostgreSQL walk every resource in id
    order for them) and the first ``wanted`` name matches in (province, id) order,
    an index probe that stops there; sorted together by tier they are the full
    ranking's first rows as soon as they are that many, for every other match ranks
    after them."""
    query = search_index.parse(f.q or "x")
    names = search_index.tier_source(query, dialect, names=True)
    where = _where(f, joined=True)
    near = _near_of(bindparam("near", type_=String)) if f.near_province else None
    wanted_name = bindparam("exact_name", type_=String)
    exact = or_(
        func.lower(Resource.name) == wanted_name, func.lower(Resource.name_en) == wanted_name
    )

    def branch(tier: int, cond: ColumnElement[bool], limited: bool) -> Select[Any]:
        keys = [near.label("n")] if near is not None else []
        source: Any = names.table
        source_id: Any = names.resource_id
        match: Any = names.match
        if limited and near is None:
            # In id order: the first name matches from the token index alone (twice
            # the page and some: a retired resource or a filter drops a few), then
            # joined and filtered. Those that pass are the first that pass (any
            # other has a larger id), and when fewer than the page pass, ``_tiered``
            # answers. Joined before the LIMIT, PostgreSQL walked resource from its
            # first id alongside (计: 5,300 rows for 20).
            first = (
                select(names.resource_id.label("id"))
                .select_from(names.table)
                .where(names.match)
                .order_by(names.resource_id)
                .limit(bindparam("first_limit", type_=Integer))
                .subquery("first")
            )
            source, source_id, match = first, first.c.id, true()
        stmt = (
            select(Resource.id.label("id"), literal(tier).label("t"), *keys)
            .join(source, source_id == Resource.id)
            .join(Institute, Institute.id == Resource.institute_id)
            .where(match, *where, cond)
        )
        if not limited:
            # The exact names: found through the lower-cased names' indexes, each
            # tested against the name tokens (joined, SQLite tested every name
            # match's name instead: 计, 9,000 of them).
            has = (
                select(literal(1))
                .select_from(names.table)
                .where(names.match, names.resource_id == Resource.id)
                .exists()
            )
            stmt = (
                select(Resource.id.label("id"), literal(tier).label("t"), *keys)
                .join(Institute, Institute.id == Resource.institute_id)
                .where(*where, cond, has)
            )
        else:
            stmt = stmt.order_by(*(k for k in (near, Resource.id) if k is not None))
            stmt = stmt.limit(bindparam("wanted", type_=Integer))
        # A subquery: SQLite allows no LIMIT in a member of a UNION.
        inner = stmt.subquery()
        return select(*inner.c)

    # The name probe also finds the exact names among its first rows (leaving them
    # out costs a lower() of every row it walks): each id once, at its best tier.
    # Of E exact names, k among the name probe's first N rows, there are
    # E + N - k >= N distinct rows, the first N of the ranking among them.
    both = union_all(branch(0, exact, False), branch(1, true(), True)).subquery("both")
    tiers = (
        select(both.c.id, func.min(both.c.t).label("t"), *([both.c.n] if near is not None else []))
        .group_by(both.c.id, *([both.c.n] if near is not None else []))
        .subquery("tiers")
    )
    order = [tiers.c.t, *([tiers.c.n] if near is not None else []), tiers.c.id]
    ids = (
        select(tiers.c.id, *order[:-1], _count_text_stmt(f, query).label("matches"))
        .order_by(*order)
        .offset(bindparam("page_offset", type_=Integer))
        .limit(bindparam("page_limit", type_=Integer))
        .subquery("page_ids")
    )
    own, of_lab = aliased(BookingRules), aliased(BookingRules)
    return (
        select(_poly, ids.c.matches, own, of_lab)
        .join(ids, ids.c.id == _poly.id)
        .join(Institute, _poly.institute)
        .outerjoin(own, own.resource_id == _poly.id)
        .outerjoin(of_lab, of_lab.resource_id == _poly.Instrument.lab_id)
        .options(contains_eager(_poly.institute), noload(_poly.Instrument.lab))
        .order_by(*(ids.c[c.name] for c in order))
    )


def _count_text_stmt(f: ResourceFilters, query: search_index.Query) -> Any:
    """The count of ``_count_text`` as a scalar subquery."""
    every = search_index.tier_source(query, db.engine.dialect.name, names=False)
    matching = (
        select(Resource.id)
        .join(every.table, every.resource_id == Resource.id)
        .join(Institute, Institute.id == Resource.institute_id)
        .where(every.match, *_where(f, joined=True))
        .limit(COUNT_LIMIT + 1)
        .subquery("counted")
    )
    return select(func.count()).select_from(matching).scalar_subquery()


def _count_text(f: ResourceFilters, query: search_index.Query) -> int:
    """The matches of a text search, counted up to COUNT_LIMIT + 1 (as ``_count``),
    joined to the token index: the lookup as a subquery of its own made PostgreSQL
    fetch all 42,000 matches of 计 before counting 1,001 of them (138 ms against 2)."""
    return int(db.session.scalar(select(_count_text_stmt(f, query))) or 0)


def _load_page(ids: Sequence[int]) -> tuple[list[Resource], dict[int, Rules]]:
    """The resources of ``ids`` in that order with their institute, and their
    booking rules (as ``rules_for``): one statement."""
    if not ids:
        return [], {}
    own, of_lab = aliased(BookingRules), aliased(BookingRules)
    rows = db.session.execute(
        select(_poly, own, of_lab)
        .join(Institute, _poly.institute)
        .outerjoin(own, own.resource_id == _poly.id)
        .outerjoin(of_lab, of_lab.resource_id == _poly.Instrument.lab_id)
        .where(_poly.id.in_(ids))
        .options(contains_eager(_poly.institute), noload(_poly.Instrument.lab))
    ).all()
    by_id = {row[0].id: row for row in rows}
    items: list[Resource] = []
    rules: dict[int, Rules] = {}
    for i in ids:
        row = by_id.get(i)
        if row is None:
            continue
        items.append(row[0])
        rules[i] = (
            Rules.from_row(row[1])
            if row[1] is not None
            else Rules.from_row(row[2])
            if row[2] is not None
            else DEFAULT
        )
    return items, rules


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


def search_resources(
    f: ResourceFilters, *, page: int, per_page: int, facets: bool = False
) -> SearchResult:
    for name in ("q", "province", "institute", "measurand", "unit", "near_province"):
        if "\x00" in (getattr(f, name) or ""):  # PostgreSQL refuses a NUL in any text
            raise ValidationFailed(
                _l("This field contains a NUL character, which is not allowed."),
                field="near" if name == "near_province" else name,
            )
    if f.q is not None and len(f.q) > search_index.MAX_QUERY:
        raise ValidationFailed(
            _l("The search may be at most %(n)s characters.", n=search_index.MAX_QUERY),
            field="q",
        )
    text_only = f.measurand is None and not facets
    if text_only:
        # What _where would refuse (a value or unit without a measurand), refused
        # first as there: a text search builds no _where of its own.
        _capability_match(f)
    else:
        where = _where(f)
    window = _window(f, facets)
    query = search_index.parse(f.q) if f.q else None
    if text_only and query and window is None:
        # A text search: its tiers one after the other, as far as the page needs.
        answer = _name_page(f, query, page, per_page)
        if answer is not None:
            return answer
        offset = (page - 1) * per_page
        ranked_ids, complete = _tiered(f, query, offset + per_page)
        items, rules = _load_page(ranked_ids[offset:])
        total = len(ranked_ids) if complete else _count_text(f, query)
        return SearchResult(
            items=items,
            total=min(total, COUNT_LIMIT),
            rules=rules,
            total_exact=total <= COUNT_LIMIT,
        )
    if text_only:
        where = _where(f)
    facet_counts = _facets(where) if facets else None
    ranked, keys = _ranked(f)

    def load(ids: Any) -> list[Resource]:
        return list(
            db.session.scalars(
                select(_poly)
                .join(ids, ids.c.id == _poly.id)
                .join(Institute, _poly.institute)
                .options(contains_eager(_poly.institute), noload(_poly.Instrument.lab))
                .order_by(*(ids.c[k.name] for k in keys))
            ).unique()
        )

    if window is not None or facets:
        # The best-ranked available candidates, as calendar columns only (no ORM),
        # read in rank order as far as the free-time checks need.
        available = ranked.where(Resource.status == ResourceStatus.AVAILABLE)
        candidates = free_candidates.Candidates(
            lambda offset, limit: free_candidates.ranked(
                available.offset(offset).limit(limit).subquery("candidates"),
                [k.name for k in keys],
            )
        )
        if facet_counts is not None:
            facet_counts["free_this_week"] = _free_week_facet(candidates, f.duration)
    if window is not None:
        offset = (page - 1) * per_page
        asked = window
        # Stops at one more than this page needs: a scan that stopped promises a
        # next page, and its total is a lower bound.
        found = free_time.scan(
            candidates,
            lambda _s: asked,
            f.duration,
            limit=AVAILABILITY_SCAN_LIMIT,
            wanted=offset + per_page + 1,
        )
        items = _load_ids(found.found[offset : offset + per_page])
        return SearchResult(
            items=items,
            total=len(found.found),
            rules={r.id: found.rules[r.id] for r in items},
            truncated=found.complete and found.beyond,
            total_exact=found.complete,
            facets=facet_counts,
        )
    items, total, rules = _page(ranked, keys, where, page, per_page)
    return SearchResult(
        items=items,
        total=min(total, COUNT_LIMIT),
        rules=rules,
        total_exact=total <= COUNT_LIMIT,
        facets=facet_counts,
    )


def _load_ids(ids: Sequence[int]) -> list[Resource]:
    """The resources of ``ids`` with their institute, in that order: one statement."""
    if not ids:
        return []
    rows = db.session.scalars(
        select(_poly)
        .join(Institute, _poly.institute)
        .where(_poly.id.in_(ids))
        .options(contains_eager(_poly.institute), noload(_poly.Instrument.lab))
    ).unique()
    by_id = {r.id: r for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def _free_week_facet(
    candidates: free_time.Candidates, duration: int | None
) -> list[dict[str, Any]]:
    """How many matches have a free slot (of ``duration`` minutes, else their
    minimum booking) between now and the end of this week in their institute's
    zone; counted exactly over the first FREE_WEEK_LIMIT available matches in rank
    order, beyond which the count is a lower bound (``count_exact: false``)."""
    now = utcnow()
    week = free_time.scan(
        candidates, lambda s: free_time.this_week(s, now), duration, limit=FREE_WEEK_LIMIT
    )
    if not week.found:
        return []
    entry: dict[str, Any] = {
        "value": "true",
        "label": str(_l("Free this week")),
        "count": len(week.found),
    }
    if week.beyond:
        entry["count_exact"] = False
    return [entry]
