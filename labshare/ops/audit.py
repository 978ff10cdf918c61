"""The audit log: every state change and admin action, written in the same transaction,
and its reader: staff read their institute's rows, admins all, SME members none."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, Select, Table, false, func, insert, select, true

from labshare.errors import NotAllowed
from labshare.extensions import db
from labshare.models import AuditLog, Institute, Resource, Role, User
from labshare.safety import spreadsheet_text
from labshare.timeutil import utcnow

#: The reader's object filter: one word for each kind of thing, and the tables whose
#: rows it covers (labs and instruments are resources; rules and closures are theirs).
OBJECT_KINDS: dict[str, tuple[str, ...]] = {
    "booking": ("booking", "booking_series", "booking_group", "waitlist_entry"),
    "resource": ("resource", "lab", "instrument", "booking_rules", "closure", "booking_quota"),
    "user": ("user_account", "api_token", "qualification"),
    "company": ("company", "company_invitation"),
}

CSV_COLUMNS = ("id", "at", "actor", "action", "object", "object_id", "from", "to", "reason")


def _institute_of(obj: Any) -> int | None:
    """The institute whose log shows a change of ``obj``: its own ``institute_id``, its
    resource's, or the institute itself. None for platform rows (companies, SMEs)."""
    if isinstance(obj, Institute):
        return obj.id
    institute_id = getattr(obj, "institute_id", None)
    if isinstance(institute_id, int):
        return institute_id
    resource_id = getattr(obj, "resource_id", None)
    if isinstance(resource_id, int):
        resource = db.session.get(Resource, resource_id)
        return resource.institute_id if resource is not None else None
    return None


def record(
    action: str,
    obj: Any,
    *,
    actor: User | None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(
        actor_id=actor.id if actor is not None else None,
        action=action,
        object_type=type(obj).__tablename__ if hasattr(type(obj), "__tablename__") else str(obj),
        object_id=getattr(obj, "id", None),
        from_state=str(from_state) if from_state is not None else None,
        to_state=str(to_state) if to_state is not None else None,
        reason=reason,
        data=data,
        institute_id=_institute_of(obj),
    )
    db.session.add(entry)
    return entry


#: Built once (``insert_one`` runs on every booking).
_INSERT = insert(cast(Table, AuditLog.__table__)).inline()  # no RETURNING: nobody reads its id


def insert_one(
    action: str,
    object_type: str,
    object_id: int,
    *,
    institute_id: int | None,
    actor_id: int | None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """``record``'s row, inserted at once with one Core INSERT (no unit of work, no
    instance), by a caller that knows the object's table, id and institute."""
    db.session.connection().execute(
        _INSERT,
        row_values(
            action,
            object_type,
            object_id,
            institute_id=institute_id,
            actor_id=actor_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            data=data,
        ),
    )


def row_values(
    action: str,
    object_type: str,
    object_id: int | None,
    *,
    institute_id: int | None,
    actor_id: int | None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The columns of ``insert_one``'s row (for a caller that inserts it itself)."""
    return {
        "at": utcnow(),
        "actor_id": actor_id,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "from_state": str(from_state) if from_state is not None else None,
        "to_state": str(to_state) if to_state is not None else None,
        "reason": reason,
        "data": data,
        "institute_id": institute_id,
    }


def record_many(
    action: str,
    objs: Sequence[Any],
    *,
    actor: User | None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    data_of: Callable[[Any], dict[str, Any]] | None = None,
) -> None:
    """``record`` for many objects of one kind in one INSERT (a change of thousands of
    bookings at once: no round trip per row); ``data_of(obj)``: each row's own data."""
    if not objs:
        return
    db.session.execute(
        insert(AuditLog),
        [
            {
                "actor_id": actor.id if actor is not None else None,
                "action": action,
                "object_type": type(obj).__tablename__,
                "object_id": obj.id,
                "from_state": str(from_state) if from_state is not None else None,
                "to_state": str(to_state) if to_state is not None else None,
                "reason": reason,
                "data": data_of(obj) if data_of is not None else data,
                "institute_id": _institute_of(obj),
            }
            for obj in objs
        ],
    )


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """What the reader asked for; every part optional."""

    object_kind: str | None = None  # a key of OBJECT_KINDS
    object_id: int | None = None
    actor_id: int | None = None
    action: str | None = None  # exact, or a prefix ending in "." (``booking.``)
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive
    institute_id: int | None = None  # admins only; staff always read their own


def visible_entries(user: User) -> ColumnElement[bool]:
    """A WHERE clause on the rows ``user`` may read: admins all, staff their
    institute's. Others get nothing (the views answer 403 first)."""
    if not user.active:
        return false()
    if user.role == Role.ADMIN:
        return true()
    if user.role == Role.STAFF and user.institute_id is not None:
        return AuditLog.institute_id == user.institute_id
    return false()


def require_reader(user: User) -> None:
    if not user.active or user.role not in (Role.ADMIN, Role.STAFF):
        raise NotAllowed(_l("Only institute staff and administrators read the audit log."))


def _where(user: User, f: AuditFilter) -> list[ColumnElement[bool]]:
    where = [visible_entries(user)]
    if f.object_kind is not None:
        where.append(AuditLog.object_type.in_(OBJECT_KINDS[f.object_kind]))
    if f.object_id is not None:
        where.append(AuditLog.object_id == f.object_id)
    if f.actor_id is not None:
        where.append(AuditLog.actor_id == f.actor_id)
    if f.action:
        if f.action.endswith("."):
            where.append(AuditLog.action.startswith(f.action, autoescape=True))
        else:
            where.append(AuditLog.action == f.action)
    if f.since is not None:
        where.append(AuditLog.at >= f.since)
    if f.until is not None:
        where.append(AuditLog.at < f.until)
    if f.institute_id is not None and user.role == Role.ADMIN:
        where.append(AuditLog.institute_id == f.institute_id)
    return where


def _query(user: User, f: AuditFilter) -> Select[tuple[AuditLog]]:
    return select(AuditLog).where(*_where(user, f)).order_by(AuditLog.at.desc(), AuditLog.id.desc())


def list_entries(
    user: User, f: AuditFilter, *, page: int = 1, per_page: int = 50
) -> tuple[list[AuditLog], int]:
    """One page of the rows ``user`` may read, newest first, and how many there are."""
    require_reader(user)
    total = db.session.scalar(select(func.count(AuditLog.id)).where(*_where(user, f))) or 0
    rows = db.session.scalars(_query(user, f).offset((page - 1) * per_page).limit(per_page))
    return list(rows), int(total)


def booking_history(booking_id: int) -> list[AuditLog]:
    """A booking's own rows, oldest first (the booking page: whoever sees the booking)."""
    return list(
        db.session.scalars(
            select(AuditLog)
            .where(AuditLog.object_type == "booking", AuditLog.object_id == booking_id)
            .order_by(AuditLog.at, AuditLog.id)
        )
    )


def actor_names(entries: list[AuditLog]) -> dict[int, str]:
    ids = {e.actor_id for e in entries if e.actor_id is not None}
    if not ids:
        return {}
    rows = db.session.execute(select(User.id, User.name).where(User.id.in_(ids))).tuples()
    return {user_id: name for user_id, name in rows}  # noqa: C416 - a Result has keys()


def iter_csv(user: User, f: AuditFilter, *, batch: int = 2000) -> Iterator[bytes]:
    """The rows as CSV (UTF-8 with BOM, as the usage export), each text cell through
    the export's spreadsheet guard so nothing is read as a formula."""
    require_reader(user)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")
    last: tuple[dt.datetime, int] | None = None
    while True:
        query = _query(user, f)
        if last is not None:  # keyset paging: stable under inserts, cheap at any depth
            query = query.where(
                (AuditLog.at < last[0]) | ((AuditLog.at == last[0]) & (AuditLog.id < last[1]))
            )
        rows = list(db.session.scalars(query.limit(batch)))
        if not rows:
            return
        names = actor_names(rows)
        buffer.seek(0)
        buffer.truncate()
        for e in rows:
            cells: list[Any] = [
                e.id,
                e.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                names.get(e.actor_id, "") if e.actor_id is not None else "",
                e.action,
                e.object_type,
                e.object_id if e.object_id is not None else "",
                e.from_state or "",
                e.to_state or "",
                e.reason or "",
            ]
            writer.writerow([spreadsheet_text(c) for c in cells])
        yield buffer.getvalue().encode("utf-8")
        last = (rows[-1].at, rows[-1].id)
