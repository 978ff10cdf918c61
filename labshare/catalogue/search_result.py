"""What a search is asked (``ResourceFilters``) and answers (``SearchResult``), and
``counted``: apart from labshare/catalogue/search.py so that the modules that build
its pages (search_free.py) share them without importing it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from labshare.booking.rules import Rules
from labshare.catalogue import search_tiers, window_cache
from labshare.models import Field, ResourceKind

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


#: The facets of a search: name → (column, label column).
FACETS = ("field", "kind", "province", "institute")
#: The "free this week" count is exact over this many best-ranked available matches (a
#: page of the catalogue), and says "at least" beyond: every match counted is a week of
#: its calendar painted, and the catalogue page asks on every visit.
FREE_WEEK_LIMIT = 20


@dataclass(frozen=True)
class SearchResult:
    #: The page's resources; plain rows of ``search_pages.row_select`` when the search
    #: was asked for ``plain`` rows.
    items: list[Any]
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
    #: what a window search's answer depends on beyond the catalogue, when it may be
    #: kept (window_cache.py)
    guard: window_cache.Guard | None = None


def counted(
    items: list[Any],
    rules: dict[int, Rules],
    *,
    total: int,
    facets: dict[str, list[dict[str, Any]]] | None,
    limit: int | None = None,
) -> SearchResult:
    """The answer of a page of ``total`` matches (the count stops at ``limit``,
    by default COUNT_LIMIT)."""
    limit = search_tiers.COUNT_LIMIT if limit is None else limit
    return SearchResult(
        items=items,
        total=min(total, limit),
        rules=rules,
        total_exact=total <= limit,
        facets=facets,
    )


__all__ = ["FACETS", "FREE_WEEK_LIMIT", "MAX_TERMS", "ResourceFilters", "SearchResult", "counted"]
