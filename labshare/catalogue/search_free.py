"""The pages of searches that look at free time: a window (``window_page``), the
"free this week" facet with or without a page ranked in SQL (``page_with_week``),
and both over matches ranked in memory (``in_memory``). The catalogue's part of a
page with facets (its ranked prefix and counts) is kept per catalogue version
(``search_cache.remembered``); the week's count is computed every time."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select

from labshare.catalogue import (
    capability_index,
    free_candidates,
    free_memo,
    free_page,
    free_time,
    search_cache,
    search_pages,
    search_result,
    window_cache,
)
from labshare.catalogue.search_result import ResourceFilters, SearchResult, counted
from labshare.models import ResourceStatus
from labshare.timeutil import utcnow


def window_page(
    candidates: free_candidates.Candidates,
    window: tuple[dt.datetime, dt.datetime],
    f: ResourceFilters,
    facet_counts: dict[str, list[dict[str, Any]]] | None,
    page: int,
    per_page: int,
    plain: bool,
) -> SearchResult:
    """The page of the candidates free in ``window`` (and the "free this week" facet
    over the same candidates when ``facet_counts`` are asked)."""
    if facet_counts is not None:
        facet_counts["free_this_week"] = _free_week_facet(candidates, f.duration)
    offset = (page - 1) * per_page
    # Stops at one more than this page needs: a scan that stopped promises a
    # next page, and its total is a lower bound.
    found = free_time.scan(
        candidates,
        lambda _s: window,
        f.duration,
        limit=free_time.AVAILABILITY_SCAN_LIMIT,
        wanted=offset + per_page + 1,
    )
    ids = found.found[offset : offset + per_page]
    if plain:  # the page's rows: read with the candidates where they were (free_page.py)
        items: list[Any] = free_page.rows_of(candidates, ids) or search_pages.load_rows(ids)[0]
    else:
        items = search_pages.load_ids(ids)
    got = [r[0] for r in items] if plain else [r.id for r in items]
    return SearchResult(
        items=items,
        total=len(found.found),
        rules={rid: found.rules[rid] for rid in got},
        truncated=found.complete and found.beyond,
        total_exact=found.complete,
        facets=facet_counts,
        # the "free this week" count starts now: an answer with it is never kept
        # (nor one without the cache: its guard would only cost)
        guard=window_cache.guard_of(found.examined, found.at, found.stable_until)
        if facet_counts is None and search_cache.cache() is not None
        else None,
    )


def facets_of(f: ResourceFilters, where: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """``search_pages.facets(where)`` (``where``: ``_where(f)``), computed once per
    catalogue version; a copy, to which the week's count is added."""
    key = ("facets", _catalogue_key(f))
    counts: dict[str, list[dict[str, Any]]] = search_cache.remembered(
        key, lambda: search_pages.facets(where), lambda c: _bytes((), c)
    )
    return dict(counts)


def _bytes(prefix: Sequence[Any], counts: dict[str, list[dict[str, Any]]]) -> int:
    """What a kept prefix and facet counts hold, roughly: a tuple of two per match
    (about 100 bytes), a dict of three per facet value (about 300 with its text)."""
    return 200 + 100 * len(prefix) + 300 * sum(len(v) for v in counts.values())


def _catalogue_key(f: ResourceFilters) -> ResourceFilters:
    """``f`` without what only the free time depends on (the window, the duration)."""
    return dataclasses.replace(f, available_from=None, available_to=None, duration=None)


def page_with_week(
    ranked: Select[Any],
    keys: list[Any],
    f: ResourceFilters,
    page: int,
    per_page: int,
    plain: bool,
) -> SearchResult:
    """A page with the facets but no window: the page, the "free this week"
    candidates (its best-ranked available matches) and the facet counts come from
    ONE statement that finds the matches once (``search_pages.prefix_and_facets``:
    ranking a text search is most of its cost, and the page, the week and the
    facets each ran it); then the page's rows and the candidates' calendar columns
    are read by id."""
    offset = (page - 1) * per_page
    wanted = search_result.FREE_WEEK_LIMIT + 1  # the week's scan asks one more than its limit
    asked = offset + per_page + 2 * wanted
    # the catalogue's part (most of the work): computed once per catalogue version
    prefix, total, counts = search_cache.remembered(
        ("prefix_and_facets", _catalogue_key(f), asked),
        lambda: search_pages.prefix_and_facets(ranked, keys, asked),
        lambda part: _bytes(part[0], part[2]),
    )
    facet_counts = dict(counts)  # shared: the week's count is this request's
    candidates = search_pages.week_candidates(prefix, ranked, keys, wanted, asked, free_memo.of_ids)
    facet_counts["free_this_week"] = _free_week_facet(candidates, f.duration)
    ids = [rid for rid, _status in prefix[offset : offset + per_page]]
    return counted(*free_page.load(candidates, ids, plain), total=total, facets=facet_counts)


def in_memory(
    matches: Sequence[capability_index.Entry],
    f: ResourceFilters,
    window: tuple[dt.datetime, dt.datetime] | None,
    facet_counts: dict[str, list[dict[str, Any]]] | None,
    page: int,
    per_page: int,
    plain: bool,
) -> SearchResult:
    """``search_resources`` over matches ranked in memory: only the page's rows (and,
    for the free-time checks, the candidates' calendar columns, by id) are read."""
    offset = (page - 1) * per_page
    if window is None and facet_counts is None:
        ids = [e.id for e in matches[offset : offset + per_page]]
        return counted(*search_pages.load_any(ids, plain), total=len(matches), facets=None)
    if window is not None:
        # ``matches`` are the available ones already, found only as far as read
        # (capability_matches.Walk): the scan reads the first few dozen
        candidates = free_candidates.Candidates(
            lambda start, limit: free_memo.of_ids([e.id for e in matches[start : start + limit]])
        )
        return window_page(candidates, window, f, facet_counts, page, per_page, plain)
    available = [e.id for e in matches if e.status == ResourceStatus.AVAILABLE]
    candidates = free_candidates.Candidates(
        lambda start, limit: free_memo.of_ids(available[start : start + limit])
    )
    assert facet_counts is not None
    facet_counts["free_this_week"] = _free_week_facet(candidates, f.duration)
    ids = [e.id for e in matches[offset : offset + per_page]]
    return counted(*search_pages.load_any(ids, plain), total=len(matches), facets=facet_counts)


def from_kept_list(
    f: ResourceFilters, window: tuple[dt.datetime, dt.datetime], page: int, per_page: int
) -> SearchResult | None:
    """The API's page of a capability search with a window (no facets), ranked from
    the list kept now without reading the catalogue's version first: the candidates'
    stamps are read with the version (free_memo.py), and the page is given only if
    that is the list's version. None when the request has read the version already
    (the answer cache is on), the free-time memo is off, no list is kept, no
    candidate was read (nothing checked the version) or the version moved on: the
    usual path then reads it first."""
    if search_cache.known() is not None or not free_memo.enabled():
        return None  # without the memo no stamps are read: nothing would check it
    found = capability_index.kept_matches(
        f, available_only=True, limit=free_time.AVAILABILITY_SCAN_LIMIT + 1
    )
    if found is None:
        return None
    with free_memo.expecting(found[1]) as expected:
        try:
            result = in_memory(found[0], f, window, None, page, per_page, True)
        except free_memo.VersionMoved:
            return None
    return result if expected.checked else None


def _free_week_facet(
    candidates: free_time.Candidates, duration: int | None
) -> list[dict[str, Any]]:
    """How many matches have a free slot (of ``duration`` minutes, else their
    minimum booking) between now and the end of this week in their institute's
    zone; counted exactly over the first FREE_WEEK_LIMIT available matches in rank
    order, beyond which the count is a lower bound (``count_exact: false``)."""
    now = utcnow()
    week = free_time.scan(
        candidates,
        lambda s: free_time.this_week(s, now),
        duration,
        limit=search_result.FREE_WEEK_LIMIT,
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


__all__ = ["facets_of", "from_kept_list", "in_memory", "page_with_week", "window_page"]
