"""The search's answer (``GET /api/v1/resources``), computed in one place for
Flask's handler (resource_routes.list_resources) and for the fast path
(labshare/fastpath.py), which answers a cookie-less search before Flask: the same
function, so the same bytes.

Without facets the answer is kept per process while catalogue_version stays
(labshare/catalogue/search_cache.py), a window search's also while the calendars it
examined and the clock leave it alone (window_cache.py); with facets only its
catalogue part is kept, at the same version, read once here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, jsonify

from labshare.api.schemas import ResourceQuery
from labshare.api.serialize import page_json, resource_row_json
from labshare.booking.rules import Rules
from labshare.catalogue import row_memo, search_cache, window_cache
from labshare.catalogue.search import ResourceFilters, search_resources
from labshare.catalogue.search_reads import autocommit_reads
from labshare.catalogue.search_result import SearchResult
from labshare.extensions import db
from labshare.jsonio import OrjsonProvider


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes  # the JSON document
    truncated: bool  # the free-window scan stopped: X-Availability-Truncated: true


def answer(query: ResourceQuery, alias: str | None) -> Answer:
    """The answer to ``query``, from the cache or computed (and kept). ``alias``: the
    request's raw query string, for the fast path to find the kept answer by from
    now on; None for a request with a cookie (which the fast path never answers).
    Raises what the search raises on bad input (ValidationFailed)."""
    with autocommit_reads():  # a search only reads: no BEGIN/ROLLBACK round trips
        return _answer(query, alias)


def _answer(query: ResourceQuery, alias: str | None) -> Answer:
    version = search_cache.kept_version()
    store = search_cache.cache() if version is not None and not query.facets else None
    key: tuple[Any, ...] = ()
    if store is not None and version is not None:
        key = tuple(sorted(query.model_dump(exclude_none=True).items()))
        hit = store.get(key, version, lambda guard: window_cache.holds(guard, db.session))
        if hit is not None:
            if alias is not None:
                store.alias(alias, key)
            return Answer(hit.body, hit.truncated)
    filters = ResourceFilters(
        q=query.q,
        kind=query.kind,
        field=query.field,
        province=query.province,
        institute=query.institute,
        measurand=query.measurand,
        value=query.value,
        unit=query.unit,
        available_from=query.available_from,
        available_to=query.available_to,
        duration=query.duration,
        near_province=query.near,
    )
    # The page as plain rows: no ORM instance built (most of an uncached search's CPU).
    with search_cache.known_version(version):  # read once per request
        result = search_resources(
            filters, page=query.page, per_page=query.per_page, facets=query.facets, plain=True
        )
    body = _body(result, query)
    windowed = query.available_from is not None or query.available_to is not None
    if store is not None and version is not None and (result.guard is not None or not windowed):
        store.put(key, search_cache.Entry(version, body, result.truncated, result.guard))
        if alias is not None:
            store.alias(alias, key)
    return Answer(body, result.truncated)


def _body(result: SearchResult, query: ResourceQuery) -> bytes:
    """The answer's JSON document: ``page_json`` of the items, with ``total_exact``
    and the facets when there are some. Without facets, from each item's bytes kept
    with its row (row_memo.py) where the encoder is orjson's compact one, as it would
    encode the whole document: its keys sorted ("items" first of them)."""
    provider = current_app.json
    memo = row_memo.active()
    rest: dict[str, Any] = {"page": query.page, "per_page": query.per_page, "total": result.total}
    if not result.total_exact:
        rest["total_exact"] = False
    if (
        isinstance(provider, OrjsonProvider)
        and not provider.indented()
        and result.facets is None
        and memo is not None
    ):
        encode = provider.encode

        def item(row: Any, rules: Rules) -> bytes:
            return encode(resource_row_json(row, rules))

        encoded = [memo.item(r, result.rules[r[0]], item) for r in result.items]
        # the rest's keys all sort after "items", as the whole document's are written
        return b'{"items":[' + b",".join(encoded) + b"]," + encode(rest)[1:] + b"\n"
    items = [resource_row_json(r, result.rules[r[0]]) for r in result.items]
    doc = page_json(items, result.total, query.page, query.per_page)
    doc.update(rest)
    if result.facets is not None:
        doc["facets"] = result.facets
    if isinstance(provider, OrjsonProvider):
        return provider.body(doc)
    return bytes(jsonify(doc).get_data())


__all__ = ["Answer", "answer"]
