"""The machine-readable contract."""

from __future__ import annotations

from typing import Any

from labshare.api import bp
from labshare.api.registry import endpoint, openapi_document

CALENDAR_PATH = {
    "/calendar/{feed_token}.ics": {
        "get": {
            "operationId": "calendar_feed",
            "summary": "The user's bookings as an iCalendar feed (RFC 5545)",
            "description": "The link is secret (GET /api/v1/me gives it); an SME sees their own "
            "bookings, staff their institute's. Not under /api/v1 so calendar apps can "
            "subscribe to it.",
            "tags": ["calendar"],
            "security": [{}],
            "parameters": [
                {"name": "feed_token", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"text/calendar": {"schema": {"type": "string"}}},
                },
                "404": {"description": "no such feed"},
            },
        }
    }
}


@endpoint(bp, "/openapi.json", "GET", summary="This API's OpenAPI 3.1 document", tag="meta")
def openapi() -> dict[str, Any]:
    return openapi_document(extra_paths=CALENDAR_PATH)
