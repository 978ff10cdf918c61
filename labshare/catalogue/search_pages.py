"""What the search reads once it knows its matches: the page's resources (with their
institute and booking rules) by id, the facet counts, and, for a page with facets,
the ranked prefix and the counts in one statement (labshare/catalogue/search.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import aliased, contains_eager, noload, with_polymorphic

from labshare.booking.rules import Rules, own_or_lab
from labshare.catalogue import free_candidates
from labshare.extensions import db
from labshare.models import (
    BookingRules,
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
) -> free_candidates.Candidates:
    """The "free this week" candidates: the available matches of the ranked prefix
    (``asked`` long), read by id; only when it holds fewer than ``wanted`` and there
    are more matches are they ranked again, as far as the scan needs."""
    available = [rid for rid, status in prefix if status == ResourceStatus.AVAILABLE]
    if len(available) >= wanted or len(prefix) < asked:  # else: more matches, unread
        return free_candidates.Candidates.of(free_candidates.of_ids(available[:wanted]))
    free = ranked.where(Resource.status == ResourceStatus.AVAILABLE)
    return free_candidates.Candidates(
        lambda start, limit: free_candidates.ranked(
            free.offset(start).limit(limit).subquery("candidates"), [k.name for k in keys]
        )
    )
