"""The audit log page and its CSV download. Filters come from the query string; a bad
one is shown beside its field (422) and nothing else happens."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask_babel import gettext as _
from flask_login import current_user

from labshare.extensions import db
from labshare.models import AuditLog, Institute, Role
from labshare.ops import audit
from labshare.ops.audit import OBJECT_KINDS, AuditFilter
from labshare.timeutil import zone as zone_info
from labshare.web.auth.decorators import role_required

bp = Blueprint("audit", __name__, url_prefix="/audit")

PER_PAGE = 50
DEFAULT_ZONE = "Asia/Shanghai"
MAX_ID = 2**31 - 1


def _zone() -> str:
    """Dates are the reader's institute's days; an admin's, the platform's zone."""
    if current_user.institute_id is not None:
        institute = db.session.get(Institute, current_user.institute_id)
        if institute is not None:
            return institute.timezone
    return DEFAULT_ZONE


def _int(name: str, errors: dict[str, str]) -> int | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or not 0 < int(text) <= MAX_ID:
        errors[name] = _("Enter a positive whole number.")
        return None
    return int(text)


def _date(name: str, errors: dict[str, str]) -> dt.date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        errors[name] = _("Enter a date as YYYY-MM-DD.")
        return None


def _start_of(day: dt.date, zone: str) -> dt.datetime:
    # fold=0 and no round trip: a day starting in a DST gap starts when the gap ends.
    return dt.datetime.combine(day, dt.time(), tzinfo=zone_info(zone))


def parse_filter() -> tuple[AuditFilter, dict[str, str]]:
    errors: dict[str, str] = {}
    kind = request.args.get("object", "").strip() or None
    if kind is not None and kind not in OBJECT_KINDS:
        errors["object"] = _("Choose one of the listed kinds.")
        kind = None
    action = request.args.get("action", "").strip() or None
    if action is not None and len(action) > 50:
        errors["action"] = _("At most %(n)d characters.", n=50)
        action = None
    since, until = _date("from", errors), _date("to", errors)
    if since is not None and until is not None and until < since:
        errors["to"] = _("The end date is before the start date.")
    zone = _zone()
    f = AuditFilter(
        object_kind=kind,
        object_id=_int("object_id", errors),
        actor_id=_int("actor", errors),
        action=action,
        since=_start_of(since, zone) if since else None,
        until=_start_of(until + dt.timedelta(days=1), zone) if until else None,
        institute_id=_int("institute", errors) if current_user.role == Role.ADMIN else None,
    )
    return f, errors


def _args() -> dict[str, str]:
    keys = ("object", "object_id", "actor", "action", "from", "to", "institute")
    return {k: request.args[k] for k in keys if request.args.get(k, "").strip()}


@bp.get("/")
@role_required(Role.ADMIN, Role.STAFF)
def index() -> Any:
    f, errors = parse_filter()
    page_arg = request.args.get("page", "1")
    page = int(page_arg) if page_arg.isdigit() and 0 < int(page_arg) < 100_000 else 1
    rows: list[AuditLog] = []
    total = 0
    if not errors:
        rows, total = audit.list_entries(current_user, f, page=page, per_page=PER_PAGE)
    return render_template(
        "audit/index.html",
        entries=rows,
        names=audit.actor_names(rows),
        total=total,
        page=page,
        pages=max(1, -(-total // PER_PAGE)),
        args=_args(),
        errors=errors,
        kinds=list(OBJECT_KINDS),
        timezone=_zone(),
        is_admin=current_user.role == Role.ADMIN,
    ), (422 if errors else 200)


@bp.get("/audit.csv")
@role_required(Role.ADMIN, Role.STAFF)
def download() -> Any:
    f, errors = parse_filter()
    if errors:
        field, message = next(iter(errors.items()))
        return Response(f"{field}: {message}\n", status=422, mimetype="text/plain")
    return Response(
        stream_with_context(audit.iter_csv(current_user, f)),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
    )
