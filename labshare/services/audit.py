"""The audit log: every state change and admin action, written in the same transaction."""

from __future__ import annotations

from typing import Any

from labshare.extensions import db
from labshare.models import AuditLog, User


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
    )
    db.session.add(entry)
    return entry
