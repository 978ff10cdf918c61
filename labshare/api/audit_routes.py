"""The audit log: staff read their institute's rows, admins all; SMEs 403."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from flask import Response, stream_with_context
from pydantic import Field

from labshare.api import bp
from labshare.api.registry import AwareTime, ResponseModel, endpoint
from labshare.api.schemas import MAX_ID, PageQuery
from labshare.api.serialize import page_json
from labshare.models import AuditLog, Role, User
from labshare.ops import audit
from labshare.ops.audit import AuditFilter


class AuditQuery(PageQuery):
    object: Literal["booking", "resource", "user", "company"] | None = Field(
        None,
        description="the kind of object: booking (with series, groups, waitlist), resource "
        "(labs, instruments, their rules, closures, quotas), user, company",
    )
    object_id: int | None = Field(None, ge=1, le=MAX_ID)
    actor: int | None = Field(None, ge=1, le=MAX_ID, description="the acting user's id")
    action: str | None = Field(
        None, max_length=50, description="exact, or a prefix ending in '.' (booking.)"
    )
    from_: AwareTime | None = Field(None, alias="from", description="entries at or after")
    to: AwareTime | None = Field(None, description="entries before this instant")
    institute: int | None = Field(
        None, ge=1, le=MAX_ID, description="admins: one institute's rows; ignored for staff"
    )
    format: Literal["json", "csv"] = Field("json", description="json, or csv (UTF-8 with BOM)")


class AuditEntryOut(ResponseModel):
    id: int
    at: dt.datetime
    actor_id: int | None
    actor_name: str | None
    action: str
    object_type: str
    object_id: int | None
    institute_id: int | None
    from_state: str | None
    to_state: str | None
    reason: str | None
    data: dict[str, Any] | None


def entry_json(e: AuditLog, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat().replace("+00:00", "Z"),
        "actor_id": e.actor_id,
        "actor_name": names.get(e.actor_id) if e.actor_id is not None else None,
        "action": e.action,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "institute_id": e.institute_id,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "reason": e.reason,
        "data": e.data,
    }


@endpoint(
    bp,
    "/audit",
    "GET",
    summary="The audit log",
    description="Who changed what and when, newest first. Staff read their institute's "
    "rows (its bookings, resources, rules, closures, quotas, staff), admins every row; "
    "SME members 403. format=csv gives every matching row as CSV.",
    tag="audit",
    roles=(Role.ADMIN, Role.STAFF),
    query=AuditQuery,
    response=AuditEntryOut,
    paginated=True,
)
def list_audit(user: User, query: AuditQuery) -> Any:
    f = AuditFilter(
        object_kind=query.object,
        object_id=query.object_id,
        actor_id=query.actor,
        action=query.action,
        since=query.from_,
        until=query.to,
        institute_id=query.institute,
    )
    if query.format == "csv":
        return Response(
            stream_with_context(audit.iter_csv(user, f)),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
        )
    rows, total = audit.list_entries(user, f, page=query.page, per_page=query.per_page)
    names = audit.actor_names(rows)
    return page_json([entry_json(e, names) for e in rows], total, query.page, query.per_page)
