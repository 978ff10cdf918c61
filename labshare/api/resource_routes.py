"""Finding labs and instruments, and their free time."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask_babel import gettext as _

from labshare.api import bp, search_answer
from labshare.api.registry import endpoint
from labshare.api.schemas import AvailabilityOut, AvailabilityQuery, ResourceOut, ResourceQuery
from labshare.api.serialize import bundle_json, resource_json
from labshare.booking.calendar_cache import calendar_document
from labshare.booking.policies import quotas  # booking policies
from labshare.booking.rules import effective_rules
from labshare.catalogue.search import (
    AVAILABILITY_SCAN_LIMIT,
    COUNT_LIMIT,
    FACETS,
    FREE_WEEK_LIMIT,
)
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
    # A cookie-less request's query string is kept for the fast path to answer from
    # the cache (labshare/fastpath.py), which answers only cookie-less requests.
    environ = request.environ
    alias = None if "HTTP_COOKIE" in environ else environ.get("QUERY_STRING", "")
    found = search_answer.answer(query, alias)
    return _json_response(found.body, found.truncated)


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
