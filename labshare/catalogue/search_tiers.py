"""A text search's page, read tier by tier as far as the page needs.

The ranking (labshare/catalogue/search.py, ``_order``) is the tier (exact name,
then name or model, then measurand, then the rest), the searcher's province, the
id. Ranking every match to show 20 read all 42,000 matches of 计; here each tier is
an index probe in that order that stops at the page (migration 0028 indexes the
name tokens and the lower-cased names), and the next tier is read only when the
page is not full (tests/catalogue/test_search_tiers.py: every page is the full
ranking's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)

from labshare.booking.rules import Rules
from labshare.catalogue import search_index, search_pages
from labshare.extensions import db
from labshare.models import Institute, Resource, SearchDoc

if TYPE_CHECKING:
    from labshare.catalogue.search import ResourceFilters

#: Beyond this many matches the count stops and says "more than".
COUNT_LIMIT = 1000
#: A text search counts its matches up to this many, or up to the page after the
#: one asked when that is further (``count_limit``), and says "more than" beyond:
#: each match counted is a visit of its search, resource and institute rows, so
#: counting 1,001 of 压 cost 8 ms of a 10 ms search; 101 cost 1 ms. A client paging
#: on is always promised the next page: a "more" link, not a count of every match.
TEXT_COUNT_LIMIT = 100
#: The later tiers leave out by id the matches of the tiers read before, a bound
#: parameter each, up to the page's end: a page that the exact and name tiers do
#: not fill and that ends past this many matches is ranked in full (``text_page``
#: answers None). Page 1,000,000 of 计 sent 9,000 (past 65,535, PostgreSQL refuses
#: the statement); so deep, the earlier tiers are most of the matches anyway.
TIERED_LIMIT = 1000

#: A page: its resources in rank order (plain rows of ``search_pages.row_select`` when
#: asked so), the matches counted up to COUNT_LIMIT + 1, the page's booking rules.
Page = tuple[list[Any], int, dict[int, Rules]]


def text_page(
    f: ResourceFilters,
    query: search_index.Query,
    page: int,
    per_page: int,
    where: list[Any],
    plain: bool = False,
) -> Page | None:
    """The page of a text search with the filters ``where`` (``_where(f,
    joined=True)``: without the token lookup), as plain rows when ``plain``; None
    for a page that the exact and name tiers do not fill and that ends past
    TIERED_LIMIT matches (the full ranking answers it: the later tiers would leave
    out too many ids)."""
    answer = _name_page(f, query, page, per_page, where, plain)
    if answer is not None:
        return answer
    offset = (page - 1) * per_page
    if offset + per_page > TIERED_LIMIT:
        return None
    ranked_ids, complete = _tiered(f, query, offset + per_page, where)
    items, rules = search_pages.load_any(ranked_ids[offset:], plain)
    if complete:
        return items, len(ranked_ids), rules
    return items, _count_text(query, where, count_limit(page, per_page), simple(f)), rules


def simple(f: ResourceFilters) -> bool:
    """Whether ``f`` is a search by words alone (and the searcher's province, which
    only orders): its statements are built once."""
    return f.kind is None and f.field is None and not f.province and not f.institute


def count_limit(page: int, per_page: int) -> int:
    """How far the matches of a text search's ``page`` are counted (the count
    returns one more when there are more): TEXT_COUNT_LIMIT, or to the end of the
    next page, at most COUNT_LIMIT."""
    return min(COUNT_LIMIT, max(TEXT_COUNT_LIMIT, (page + 1) * per_page))


def _near(f: ResourceFilters) -> ColumnElement[Any] | None:
    return near_of(f.near_province) if f.near_province else None


def near_of(province: Any) -> ColumnElement[Any]:
    """0 for a resource in the searcher's province (code or name), else 1."""
    return case(
        (or_(Institute.province_code == province, Institute.province == province), 0), else_=1
    )


def _tiered(
    f: ResourceFilters, query: search_index.Query, wanted: int, where: list[Any]
) -> tuple[list[int], bool]:
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
    f: ResourceFilters,
    query: search_index.Query,
    page: int,
    per_page: int,
    where: list[Any],
    plain: bool,
) -> Page | None:
    """The page of a text search whose exact and name tiers fill it, with its
    rows, booking rules and count, in one statement (a round trip is a wait for the
    database on a loaded machine); None when they do not fill it (``_tiered``)."""
    dialect = db.engine.dialect.name
    words_only = simple(f)
    # A search by words alone (and the searcher's province) sends one of two
    # statements built once: building and keying it cost more than running it.
    near = bool(f.near_province)
    stmt = _STATEMENTS.get((dialect, near, plain)) if words_only else None
    if stmt is None:
        stmt = _build_name_page(dialect, where, near, plain)
        if words_only:
            _STATEMENTS[(dialect, near, plain)] = stmt
    params: dict[str, Any] = {
        "exact_name": f.q.strip().lower() if f.q else "",
        "near": f.near_province or "",
        "wanted": page * per_page,
        "first_limit": page * per_page * 2 + 10,
        "page_offset": (page - 1) * per_page,
        "page_limit": per_page,
        "count_limit": count_limit(page, per_page) + 1,
        **_match_params(query, dialect),
    }
    rows = db.session.execute(stmt, params).all()
    if len(rows) >= per_page:
        return search_pages.page_rows(rows, plain)
    if rows:
        # The last rows of the exact and name tiers: when they are all the matches
        # (the count says so), they are the page, and no other tier has a row.
        answer = search_pages.page_rows(rows, plain)
        return answer if answer[1] == params["page_offset"] + len(rows) else None
    if page == 1 and not _count_text(query, where, 0, words_only):
        # Nothing matches (硬度 at the bench): one lookup, not the four probes.
        return [], 0, {}
    return None


#: The statements of a search by words alone (and the searcher's province):
#: (database, province given, plain rows) → statement.
_STATEMENTS: dict[tuple[str, bool, bool], Any] = {}


def _build_name_page(dialect: str, where: list[Any], near_given: bool, plain: bool) -> Any:
    """The statement of ``_name_page`` for the filters ``where`` (its words, and the
    searcher's province, as the parameters ``search_tsquery`` or ``search_fts``,
    ``exact_name``, ``near``; the page as ``wanted``, ``first_limit``,
    ``page_offset``, ``page_limit``).

    The first ``wanted`` exact names (by name, and by English name) and the first
    ``wanted`` name matches in (province, id) order, each an index probe that stops
    there; sorted together by tier they are the full ranking's first rows as soon as
    they are that many, for every other match ranks after them. (An exact name left
    out of its probe is found again by the name probe at tier 1 only when the exact
    probe filled the page with rows that rank before it.)"""
    query = search_index.parse("x")  # its words are the parameter
    names = search_index.tier_source(query, dialect, names=True)
    near = near_of(bindparam("near", type_=String)) if near_given else None
    wanted_name = bindparam("exact_name", type_=String)
    by_name = [
        func.lower(Resource.name) == wanted_name,
        func.lower(Resource.name_en) == wanted_name,
    ]
    # On PostgreSQL each through its index of (lower-cased name, id), migration 0029:
    # in id order, so that the probe stops at the page (666 named 恒温油槽 were all
    # read and sorted: 5,600 buffers for a page of 20; as one OR, the two indexes'
    # rows came as one bitmap, in no order). SQLite looks the name matches up once
    # per branch (below): one branch there, unordered, as before.
    exact_names = by_name if dialect == "postgresql" else [or_(*by_name)]

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
            # match's name instead: 计, 9,000 of them). PostgreSQL probes each one's
            # row; SQLite's FTS5 evaluated the whole MATCH once per exact name (666
            # named 恒温油槽: 90 ms), so it looks the name matches up once. (``OFFSET
            # 0``: made a semi-join, PostgreSQL drove it from the tokens' index, which
            # it believed few, and read and sorted all 666 rows of 恒温油槽.)
            has: Any = (
                select(literal(1))
                .select_from(names.table)
                .where(names.match, names.resource_id == Resource.id)
                .offset(0)
                .exists()
                if dialect == "postgresql"
                else Resource.id.in_(
                    select(names.resource_id).select_from(names.table).where(names.match)
                )
            )
            stmt = (
                select(Resource.id.label("id"), literal(tier).label("t"), *keys)
                .join(Institute, Institute.id == Resource.institute_id)
                .where(*where, cond, has)
            )
        if limited or dialect == "postgresql":
            # (SQLite, asked for the exact names in id order, walked the ids of
            # every name match instead of the names' index: 计, 9,000 of them.)
            stmt = stmt.order_by(*(k for k in (near, Resource.id) if k is not None))
            stmt = stmt.limit(bindparam("wanted", type_=Integer))
        # A subquery: SQLite allows no LIMIT in a member of a UNION.
        inner = stmt.subquery()
        return select(*inner.c)

    # The name probe also finds the exact names among its first rows (leaving them
    # out costs a lower() of every row it walks): each id once, at its best tier.
    # Of E exact names, k among the name probe's first N rows, there are
    # E + N - k >= N distinct rows, the first N of the ranking among them.
    both = union_all(
        *(branch(0, exact, False) for exact in exact_names), branch(1, true(), True)
    ).subquery("both")
    tiers = (
        select(both.c.id, func.min(both.c.t).label("t"), *([both.c.n] if near is not None else []))
        .group_by(both.c.id, *([both.c.n] if near is not None else []))
        .subquery("tiers")
    )
    order = [tiers.c.t, *([tiers.c.n] if near is not None else []), tiers.c.id]
    ids = (
        select(
            tiers.c.id,
            *order[:-1],
            _count_text_stmt(query, where, bindparam("count_limit", type_=Integer)).label(
                "matches"
            ),
        )
        .order_by(*order)
        .offset(bindparam("page_offset", type_=Integer))
        .limit(bindparam("page_limit", type_=Integer))
        .subquery("page_ids")
    )
    return search_pages.page_select(ids, [ids.c[c.name] for c in order], plain)


def _count_text_stmt(query: search_index.Query, where: list[Any], limit: Any) -> Any:
    """The count of ``_count_text`` as a scalar subquery (``limit``: a number or a
    bound parameter).

    On PostgreSQL the index lookup is a subquery of its own (``OFFSET 0``): one
    bitmap scan of the GIN index, then only the rows it found are joined. Joined in
    the same query, PostgreSQL walked search_doc in id order to meet resource's,
    testing every row's tokens (压: 12,000 rows, 25,000 buffers, 80 ms for 1,001).
    SQLite would materialize such a subquery whole (计: 42,000 rows for 101), and
    reads FTS5's matches as they come when joined."""
    dialect = db.engine.dialect.name
    every = search_index.tier_source(query, dialect, names=False)
    lookup = select(every.resource_id.label("id")).select_from(every.table).where(every.match)
    found = (lookup.offset(0) if dialect == "postgresql" else lookup).subquery("found")
    matching = (
        select(Resource.id)
        .join(found, found.c.id == Resource.id)
        .join(Institute, Institute.id == Resource.institute_id)
        .where(*where)
        .limit(limit)
        .subquery("counted")
    )
    return select(func.count()).select_from(matching).scalar_subquery()


def _count_text(
    query: search_index.Query, where: list[Any], limit: int, simple: bool = False
) -> int:
    """The matches of a text search, counted up to ``limit`` + 1 (``count_limit``);
    ``simple``: ``where`` are the filters of a search by words alone (the statement
    is built once, as ``_name_page``'s)."""
    dialect = db.engine.dialect.name
    stmt = _COUNTS.get(dialect) if simple else None
    if stmt is None:
        words = search_index.parse("x")  # its words are the parameter
        limited = bindparam("count_limit", type_=Integer)
        stmt = select(_count_text_stmt(words, where, limited))
        if simple:
            _COUNTS[dialect] = stmt
    params = {**_match_params(query, dialect), "count_limit": limit + 1}
    return int(db.session.scalar(stmt, params) or 0)


#: The count statement of a search by words alone, per database.
_COUNTS: dict[str, Any] = {}


def _match_params(query: search_index.Query, dialect: str) -> dict[str, str]:
    """The parameter that carries the words of ``query`` in the statements built
    with ``search_index.parse("x")``."""
    if dialect == "postgresql":
        return {"search_tsquery": search_index.tsquery_text(query)}
    return {"search_fts": search_index.fts_text(query)}
