"""Finding labs and instruments: text, filters, capability and free time.

One statement ranks the matches, cuts the page and counts them (``_page``), one
loads the page's resources with their institute (no lazy loads) and one their
booking rules, however many resources match.

Text: the resources whose search tokens match, looked up in the index of
labshare/catalogue/search_index.py (GIN on PostgreSQL, FTS5 on SQLite) and joined
with their rank tier (``_ranked``, ``_order``); without window, facets or capability
its tiers are read only as far as the page needs (search_tiers.py). The count the
API shows stops at ``COUNT_LIMIT``; the facet counts are one more statement.

The free-time filter and the "free this week" facet (labshare/catalogue/free_time.py)
check the candidates in rank order, as far as needed: the window filter stops at one
more than the page (``total_exact`` false then), examining at most
``AVAILABILITY_SCAN_LIMIT``; the week is counted over the first ``FREE_WEEK_LIMIT``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    or_,
    select,
)

from labshare.booking.availability import MAX_WINDOW
from labshare.booking.rules import Rules
from labshare.catalogue import (
    capability,
    capability_index,
    free_candidates,
    free_time,
    search_free,
    search_index,
    search_pages,
    search_tiers,
    text_index,
)
from labshare.catalogue.free_time import AVAILABILITY_SCAN_LIMIT
from labshare.catalogue.search_result import (
    FACETS,
    FREE_WEEK_LIMIT,
    MAX_TERMS,
    ResourceFilters,
    SearchResult,
    counted,
)
from labshare.catalogue.search_tiers import COUNT_LIMIT
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import (
    Institute,
    Instrument,
    Resource,
    ResourceKind,
    ResourceStatus,
)

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
        .limit(search_tiers.COUNT_LIMIT + 1)
        .subquery("counted")
    )
    return int(db.session.scalar(select(func.count()).select_from(matching)) or 0)


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
        order.append(search_tiers.near_of(f.near_province))
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
    plain: bool = False,
) -> tuple[list[Any], int, dict[int, Rules]]:
    """The page's resources in rank order, the number of matches and the page's
    booking rules (as ``rules.rules_for``): one statement.

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
    order = [ids.c[k.name] for k in keys]
    rows = db.session.execute(search_pages.page_select(ids, order, plain)).all()
    if not rows:
        return [], _count(where) if page > 1 else 0, {}
    return search_pages.page_rows(rows, plain)


def search_resources(
    f: ResourceFilters, *, page: int, per_page: int, facets: bool = False, plain: bool = False
) -> SearchResult:
    """The page of the matches of ``f``; ``plain``: its resources as plain rows
    (``search_pages.row_select``), not ORM instances (the API's answer)."""
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
    elif not capability_index.validated(f, facets):  # else no SQL filter is needed
        where = _where(f)  # validates the capability too
    window = _window(f, facets)
    query = search_index.parse(f.q) if f.q else None
    if text_only and query and window is None:
        # A text search: its tiers one after the other, as far as the page needs
        # (None: a deep page, ranked in full below).
        tiered = text_index.text_page(f, query, page, per_page, plain)
        if tiered is None:
            tiered = search_tiers.text_page(f, query, page, per_page, _where(f, joined=True), plain)
        if tiered is not None:
            count_to = min(search_tiers.COUNT_LIMIT, search_tiers.count_limit(page, per_page))
            return counted(tiered[0], tiered[2], total=tiered[1], facets=None, limit=count_to)
    if text_only:
        where = _where(f)
    if window is None and not facets and plain:
        # a capability page from the list kept now, read with its rows in one statement
        one_statement = capability_index.plain_page(f, page, per_page)
        if one_statement is not None:
            return counted(one_statement[0], one_statement[1], total=one_statement[2], facets=None)
    if window is not None and not facets and plain:
        # from the list kept now, checked by the version read with the candidates
        early = search_free.from_kept_list(f, window, page, per_page)
        if early is not None:
            return early
    # With a window, the page comes from the free-time scan, which examines at most
    # AVAILABILITY_SCAN_LIMIT available matches (and asks whether there is one more).
    limit = None if window is None else free_time.AVAILABILITY_SCAN_LIMIT + 1
    in_memory = capability_index.search_matches(f, available_only=limit is not None, limit=limit)
    if in_memory is not None:
        counts = search_free.facets_of(f, where) if facets else None
        return search_free.in_memory(in_memory, f, window, counts, page, per_page, plain)
    ranked, keys = _ranked(f)
    if window is None and facets:
        return search_free.page_with_week(ranked, keys, f, page, per_page, plain)
    if window is not None:
        # The best-ranked available candidates, as calendar columns only (no ORM),
        # read in rank order as far as the free-time checks need.
        available = ranked.where(Resource.status == ResourceStatus.AVAILABLE)
        candidates = free_candidates.Candidates(
            lambda offset, limit: free_candidates.ranked(
                available.offset(offset).limit(limit).subquery("candidates"),
                [k.name for k in keys],
            )
        )
        counts = search_free.facets_of(f, where) if facets else None
        return search_free.window_page(candidates, window, f, counts, page, per_page, plain)
    items, total, rules = _page(ranked, keys, where, page, per_page, plain)
    return counted(items, rules, total=total, facets=None)


__all__ = [
    "AVAILABILITY_SCAN_LIMIT",
    "COUNT_LIMIT",
    "FACETS",
    "FREE_WEEK_LIMIT",
    "MAX_TERMS",
    "ResourceFilters",
    "SearchResult",
    "search_resources",
]
