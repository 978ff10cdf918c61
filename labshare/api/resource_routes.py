"""Finding labs and instruments, and their free time."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request
from flask_babel import gettext as _

from labshare.api import bp
from labshare.api.registry import endpoint
from labshare.api.schemas import AvailabilityOut, AvailabilityQuery, ResourceOut, ResourceQuery
from labshare.api.serialize import bundle_json, page_json, resource_json, resource_row_json
from labshare.booking.calendar_cache import calendar_document
from labshare.booking.policies import quotas  # booking policies
from labshare.booking.rules import effective_rules
from labshare.catalogue import search_cache, window_cache
from labshare.catalogue.search import (
    AVAILABILITY_SCAN_LIMIT,
    COUNT_LIMIT,
    FACETS,
    FREE_WEEK_LIMIT,
    ResourceFilters,
    search_resources,
)
from labshare.catalogue.search_reads import autocommit_reads
from labshare.catalogue.search_tiers import TEXT_COUNT_LIMIT
from labshare.errors import NotFound
from labshare.extensions import db
from labshare.models import Resource


def load_resource(resource_id: int) -> Resource:
    """A resource of an active institute, or NotFound (as the web's pages answer)."""
    resource = db.session.get(Resource, resource_id)
    if resource is None or not resource.institute.active:
        raise NotFound(_("No resource %(id)s.", id=resource_id))
    return resource


@endpoint(
    bp,
    "/resources",
    "GET",
    summary="Search labs and instruments",
    description=(
        "Filters combine with AND. measurand + value + unit finds the instruments whose "
        "range covers the value, converting units (8000 kPa finds a 0-10 MPa calibrator). "
        "available_from/available_to keep the resources with at least one bookable slot "
        "in the window (exactly as the availability calendar shows it); that filter checks "
        "the resources matching the other filters in rank order and stops once the page and "
        "one more are found (total is then a lower bound and total_exact: false is added); "
        f"it examines at most the first {AVAILABILITY_SCAN_LIMIT}, and then sets the "
        "response header X-Availability-Truncated: true. Retired resources are not listed. "
        "A text search is ranked: exact name, then name or model, then measurand, then "
        "the rest; a capability search puts the narrowest covering range first. q finds "
        "Chinese by characters, English words by prefix, pinyin (yali, yl) and any name "
        f"of a measurand (压强 = 压力 = pressure). total counts at most {COUNT_LIMIT} "
        f"matches, a text search without facets or window at most {TEXT_COUNT_LIMIT} or "
        "to the end of the next page; beyond, total is that limit (a lower bound) and "
        "total_exact: false is added."
    ),
    tag="resources",
    query=ResourceQuery,
    response=ResourceOut,
    paginated=True,
    page_extra={
        "total_exact": {
            "type": "boolean",
            "description": f"present (false) when the count stopped at {COUNT_LIMIT} (a "
            f"text search's at {TEXT_COUNT_LIMIT} or the end of the next page), or "
            "when the free-window filter stopped after the page and one more",
        },
        "facets": {
            "type": "object",
            "description": "with facets=true: counts of the matches by field, kind, "
            "province and institute, largest first, and free_this_week",
            "additionalProperties": False,
            "properties": {
                name: {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["value", "label", "count"],
                        "additionalProperties": False,
                        "properties": {
                            "value": {"type": "string"},
                            "label": {"type": "string"},
                            "count": {"type": "integer", "minimum": 1},
                        },
                    },
                }
                for name in FACETS
            }
            | {
                "free_this_week": {
                    "type": "array",
                    "maxItems": 1,
                    "description": "the matches with a free slot of duration minutes (else "
                    "their minimum booking) from now to the end of the week in their "
                    f"institute's zone, counted over the first {FREE_WEEK_LIMIT} available "
                    "matches in rank order; beyond, count_exact: false; empty when none",
                    "items": {
                        "type": "object",
                        "required": ["value", "label", "count"],
                        "additionalProperties": False,
                        "properties": {
                            "value": {"type": "string", "enum": ["true"]},
                            "label": {"type": "string"},
                            "count": {"type": "integer", "minimum": 1},
                            "count_exact": {"type": "boolean", "enum": [False]},
                        },
                    },
                }
            },
        },
    },
)
def list_resources(query: ResourceQuery) -> Any:
    with autocommit_reads():  # a search only reads: no BEGIN/ROLLBACK round trips
        return _search(query)


def _search(query: ResourceQuery) -> Response:
    # Without facets the answer is kept per process while catalogue_version stays
    # (labshare/catalogue/search_cache.py), a window search's also while the calendars
    # it examined and the clock leave it alone (window_cache.py); with facets only its
    # catalogue part is kept, at the same version, read once here.
    version = search_cache.kept_version()
    store = search_cache.cache() if version is not None and not query.facets else None
    key: tuple[Any, ...] = ()
    if store is not None and version is not None:
        key = tuple(sorted(query.model_dump(exclude_none=True).items()))
        hit = store.get(key, version, lambda guard: window_cache.holds(guard, db.session))
        if hit is not None:
            _alias(store, key)
            return _json_response(hit.body, hit.truncated)
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
    items = [resource_row_json(r, result.rules[r[0]]) for r in result.items]
    body = page_json(items, result.total, query.page, query.per_page)
    if not result.total_exact:
        body["total_exact"] = False
    if result.facets is not None:
        body["facets"] = result.facets
    response = jsonify(body)
    windowed = query.available_from is not None or query.available_to is not None
    if store is not None and version is not None and (result.guard is not None or not windowed):
        entry = search_cache.Entry(version, response.get_data(), result.truncated, result.guard)
        store.put(key, entry)
        _alias(store, key)
    if result.truncated:
        response.headers["X-Availability-Truncated"] = "true"
    return response


def _alias(store: search_cache.SearchCache, key: Any) -> None:
    """Let the fast path (labshare/fastpath.py) answer this exact query string from
    now on: only a cookie-less request, which is all the fast path answers."""
    if "HTTP_COOKIE" not in request.environ:
        store.alias(request.environ.get("QUERY_STRING", ""), key)


def _json_response(body: bytes, truncated: bool) -> Response:
    response = current_app.response_class(body, mimetype="application/json")
    if truncated:
        response.headers["X-Availability-Truncated"] = "true"
    return response


@endpoint(
    bp,
    "/resources/<int:resource_id>",
    "GET",
    summary="One lab or instrument",
    tag="resources",
    response=ResourceOut,
    errors=(404,),
)
def get_resource(resource_id: int) -> dict[str, Any]:
    resource = load_resource(resource_id)
    out = resource_json(resource, effective_rules(resource))
    out["quotas"] = [quotas.quota_json(q) for q in quotas.applicable(resource)]
    out["bundle"] = bundle_json(resource)  # booking groups
    return out


@endpoint(
    bp,
    "/resources/<int:resource_id>/availability",
    "GET",
    summary="Busy and free time of a resource in a window of at most 31 days",
    description="Times are given in the resource's time zone with its offset.",
    tag="resources",
    query=AvailabilityQuery,
    response=AvailabilityOut,
    errors=(404,),
)
def get_availability(resource_id: int, query: AvailabilityQuery) -> Response:
    # Rendered once per process and version (booking/calendar_cache.py); the ETag
    # changes with anything that changes the calendar, so a client may revalidate.
    doc = calendar_document(resource_id, query.from_, query.to)
    if request.if_none_match.contains(doc.etag):
        response = Response(status=304)
    else:
        response = Response(doc.body, mimetype="application/json")
    response.set_etag(doc.etag)
    response.headers["Cache-Control"] = "no-cache"
    return response
